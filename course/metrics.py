"""Evaluation: ELBO and importance-weighted log-likelihood, latent-space quality (kNN accuracy,
ARI/NMI), regression quality (MAE, concordance correlation), and generated-sample quality
(real-vs-generated classifier AUC, MMD, digit-classifier scores)."""

from __future__ import annotations

import numpy as np
