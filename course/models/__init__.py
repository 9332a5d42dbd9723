"""The generative models: one file per family.

- ``vae.py``: VAE and ConditionalVAE (image and count likelihoods).
- ``gan.py``: GAN and ConditionalGAN.
- ``landmark.py``: LandmarkGAN (landmark -> target genes) and the MLP regression baseline.
"""
from course.models.gan import GAN, ConditionalGAN  # noqa: E402, F401
from course.models.landmark import LandmarkGAN, MLPRegressor  # noqa: E402, F401
from course.models.vae import VAE, ConditionalVAE  # noqa: E402,F401
