"""Log-likelihoods of the VAE decoders, per element (callers sum them over features).

- Images: Bernoulli from logits (pixels in [0, 1]) or Gaussian (mean, log-variance).
- Counts (scRNA-seq): Poisson, negative binomial (NB) and zero-inflated NB (ZINB), with the
  scVI parameterization: mean ``mu``, gene-wise inverse dispersion ``theta`` (variance
  ``mu + mu**2 / theta``) and dropout logits ``pi`` for the extra zeros.

Every function is backed by a ``tfp.distributions`` object and returns float32 values, also
under mixed precision. TFP is used here, in loss code only, never inside a model's ``call()``:
TFP stays on Keras 2 and cannot take Keras 3 symbolic tensors.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# Keeps log(mu) and log(theta) finite when a decoder outputs an exact zero.
EPSILON = 1e-8


def _float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def bernoulli(x, logits) -> tf.Tensor:
    """log p(x) of Bernoulli pixels given logits (x may be grey values in [0, 1])."""
    x, logits = _float32(x, logits)
    return tfd.Bernoulli(logits=logits, dtype=tf.float32).log_prob(x)


def gaussian(x, mean, log_variance) -> tf.Tensor:
    """log N(x; mean, exp(log_variance))."""
    x, mean, log_variance = _float32(x, mean, log_variance)
    return tfd.Normal(loc=mean, scale=tf.exp(0.5 * log_variance)).log_prob(x)


def poisson(x, rate) -> tf.Tensor:
    """log Poisson(x; rate)."""
    x, rate = _float32(x, rate)
    return tfd.Poisson(log_rate=tf.math.log(rate + EPSILON)).log_prob(x)


def _negative_binomial(mu, theta) -> tfd.NegativeBinomial:
    # TFP counts successes before ``total_count`` failures, with mean total_count * exp(logits):
    # total_count = theta and logits = log(mu) - log(theta) give mean mu, without forming
    # the probability theta / (theta + mu), which rounds to 1 for small mu.
    return tfd.NegativeBinomial(
        total_count=theta, logits=tf.math.log(mu + EPSILON) - tf.math.log(theta + EPSILON)
    )


def negative_binomial(x, mu, theta) -> tf.Tensor:
    """log NB(x; mean mu, inverse dispersion theta), as scVI's ``log_nb_positive``.

    ``theta`` may be one value per gene; it broadcasts over cells.
    """
    x, mu, theta = _float32(x, mu, theta)
    return _negative_binomial(mu, theta).log_prob(x)


def zero_inflated_negative_binomial(x, mu, theta, dropout_logits) -> tf.Tensor:
    """log ZINB(x; mu, theta, pi), as scVI's ``log_zinb_positive``.

    A zero comes from dropout with probability ``sigmoid(dropout_logits)``, otherwise from
    NB(mu, theta).
    """
    x, mu, theta, dropout_logits = _float32(x, mu, theta, dropout_logits)
    theta = tf.broadcast_to(theta, tf.shape(mu))
    return tfd.ZeroInflatedNegativeBinomial(
        # TFP turns these logits l into category logits [l, -l], i.e. a dropout probability
        # of sigmoid(2 l): halve ours so that the dropout probability is sigmoid(pi).
        inflated_loc_logits=0.5 * dropout_logits,
        total_count=theta,
        logits=tf.math.log(mu + EPSILON) - tf.math.log(theta + EPSILON),
    ).log_prob(x)


def validate_counts(x, name: str = "x") -> np.ndarray:
    """Check that ``x`` holds raw counts (finite, non-negative integers); return it as an array.

    Raises:
        ValueError: if ``x`` is empty, has NaN/infinite, negative or non-integer values.
    """
    array = np.asarray(x)
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass at least one cell.")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric counts, got dtype {array.dtype}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} contains NaN or infinite values; count likelihoods need raw integer counts."
        )
    if np.any(array < 0):
        raise ValueError(
            f"{name} contains negative values (minimum {array.min():g}); count likelihoods need "
            "raw integer counts. Scaled or centred data cannot be used."
        )
    if not np.all(array == np.round(array)):
        raise ValueError(
            f"{name} contains non-integer values: it looks normalized. Count likelihoods need "
            "raw integer counts: pass raw integer counts, e.g. adata.layers['counts'] / "
            "course.datasets.counts(adata), not log-normalized X."
        )
    return array
