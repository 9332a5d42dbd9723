"""Training callbacks: KL warm-up, sample monitor (saves image grids), live history plot."""

from __future__ import annotations

import keras
