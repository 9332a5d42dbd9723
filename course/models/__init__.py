"""The generative models: one file per family.

- ``vae.py``: VAE (LDVAE with decoder='linear') and ConditionalVAE (image and count
  likelihoods).
- ``adversarial.py``: what every GAN shares (two optimizers, trackers, checks, latent
  noise, the one-hot condition); ``gan.py``: GAN and ConditionalGAN.
- ``dca.py``: DCA, the deep count autoencoder (ZINB denoising).
- ``scgen.py``: ScGen, a VAE with latent arithmetic (perturbation responses).
- ``landmark.py``: LandmarkGAN (landmark -> target genes) and the MLP regression baseline.
- ``wgan.py``: the WGAN-GP base; ``scgan.py``: ScGAN and ConditionalScGAN (cscGAN);
  ``dnagan.py``: DNAGAN (one-hot DNA) with design by activation maximization.
- ``dgd.py``: DGD, the Deep Generative Decoder (no encoder; MAP representations per cell).
- ``vega.py``: VEGA, a VAE whose masked linear decoder makes latent variables gene-module
  activities; ``gmvae.py``: GMVAE, scVAE's Gaussian-mixture VAE (clusters in the latent space).
- ``saving.py``: ``load(path)``, ``keras.models.load_model`` with clear errors on bad files.
"""
from course.models.dca import DCA  # noqa: E402, F401
from course.models.dgd import DGD  # noqa: E402, F401
from course.models.dnagan import DNAGAN  # noqa: E402, F401
from course.models.gan import GAN, ConditionalGAN  # noqa: E402, F401
from course.models.gmvae import GMVAE  # noqa: E402, F401
from course.models.landmark import LandmarkGAN, MLPRegressor  # noqa: E402, F401
from course.models.saving import load  # noqa: E402,F401
from course.models.scgan import ConditionalScGAN, ScGAN  # noqa: E402, F401
from course.models.scgen import ScGen  # noqa: E402, F401
from course.models.vae import VAE, ConditionalVAE  # noqa: E402,F401
from course.models.vega import VEGA  # noqa: E402,F401
