"""Checks of lab 3, a VAE for single-cell counts (solutions/03_vae_counts.py)."""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import expect_finite, expect_shape, to_numpy
from course.grading.registry import CheckFailed, exercise

# Counts per gene (columns), means per cell (rows) and one inverse dispersion per gene: small
# and large counts, means and thetas, so every term of the formula matters somewhere.
NB_COUNTS = np.array([[0, 1, 2, 5, 30]] * 3, dtype="float32")
NB_MEANS = np.array([[0.1], [2.0], [50.0]], dtype="float32") * np.ones((1, 5), dtype="float32")
NB_THETAS = np.array([0.5, 1.0, 5.0, 20.0, 100.0], dtype="float32")


def _scipy_nb(x, mu, theta) -> np.ndarray:
    from scipy import stats

    x, mu, theta = np.broadcast_arrays(*(np.float64(a) for a in (x, mu, theta)))
    return stats.nbinom.logpmf(x, theta, theta / (theta + mu))


def _log_binomial_coefficient(x, theta) -> np.ndarray:
    from scipy.special import gammaln

    x, theta = np.float64(x), np.float64(theta)
    return gammaln(x + theta) - gammaln(theta) - gammaln(x + 1.0)


@exercise("3.1", points=4, title="The negative binomial log-likelihood")
def nb_log_likelihood_matches_scipy(ns):
    import tensorflow as tf

    x, mu, theta = NB_COUNTS, NB_MEANS, NB_THETAS
    result = ns["nb_log_likelihood"](tf.constant(x), tf.constant(mu), tf.constant(theta))
    values = to_numpy(result, "nb_log_likelihood")
    expect_shape(values, x.shape, f"nb_log_likelihood of {x.shape[0]} cells x {x.shape[1]} "
                 "genes", "return one value per cell and gene; do not sum")
    expect_finite(values, "nb_log_likelihood",
                  "add a small EPSILON inside the logarithms (mu can be close to 0)")
    expected = _scipy_nb(x, mu, theta)
    close = dict(rtol=1e-4, atol=2e-3)
    if np.allclose(values, expected, **close):
        return
    binomial = _log_binomial_coefficient(x, theta)
    if np.allclose(values, expected - binomial, **close):
        raise CheckFailed(
            "you left out the log binomial coefficient: add tf.math.lgamma(x + theta) - "
            "tf.math.lgamma(theta) - tf.math.lgamma(x + 1)"
        )
    if np.allclose(values, expected + _gammaln(x + 1.0), **close):
        raise CheckFailed("the - lgamma(x + 1) term is missing (or has the wrong sign)")
    if np.allclose(values, _scipy_nb(x, theta, mu), **close):
        raise CheckFailed("mu and theta have swapped places: mu is the mean, theta the inverse "
                          "dispersion")
    if np.any(values > 1e-4):
        raise CheckFailed("some log-probabilities are positive: the probability of a count "
                          "cannot exceed 1; check the signs of the terms")
    row, column = np.unravel_index(np.argmax(np.abs(values - expected)), x.shape)
    raise CheckFailed(
        f"nb_log_likelihood(x={x[row, column]:g}, mu={mu[row, column]:g}, "
        f"theta={theta[column]:g}) is {values[row, column]:.4g}; scipy.stats.nbinom gives "
        f"{expected[row, column]:.4g}"
    )


def _gammaln(values) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(np.float64(values))


def _softmax(logits, axis=-1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


@exercise("3.2", points=2, title="Scale the decoder by the library size")
def expected_counts_sum_to_each_library_size(ns):
    rng = np.random.default_rng(5)
    gene_logits = rng.normal(size=(4, 6)).astype("float32")
    counts = rng.poisson(rng.uniform(0.5, 100.0, (4, 1)) * np.ones((1, 6))).astype("float32")
    counts[:, 0] += 1.0  # no empty cells
    library = counts.sum(axis=1, keepdims=True).astype(np.float64)
    mu = to_numpy(ns["expected_counts"](gene_logits, counts), "expected_counts")
    expect_shape(mu, counts.shape, "expected_counts for 4 cells x 6 genes",
                 "return one expected count per cell and gene")
    expected = library * _softmax(np.float64(gene_logits))
    close = dict(rtol=1e-4, atol=1e-4)
    if np.allclose(mu, expected, **close):
        return
    totals = mu.sum(axis=1)
    if np.allclose(totals, 1.0, rtol=1e-4):
        raise CheckFailed(
            "library size ignored: each cell's expected counts sum to 1. Multiply the gene "
            "shares by the cell's library size, ops.sum(counts, axis=-1, keepdims=True)"
        )
    if np.allclose(totals, library.sum(), rtol=1e-4):
        raise CheckFailed(
            "every cell's expected counts sum to the total count of the whole batch: use each "
            "cell's own library size, ops.sum(counts, axis=-1, keepdims=True)"
        )
    if np.allclose(mu, library * _softmax(np.float64(gene_logits), axis=0), **close):
        raise CheckFailed("the softmax runs over the cells (axis 0): take it over the genes, "
                          "axis=-1, so that each cell's shares sum to 1")
    if np.allclose(mu, library * np.exp(np.float64(gene_logits)), **close):
        raise CheckFailed("exp(gene_logits) are not shares: normalize them with ops.softmax")
    raise CheckFailed(
        f"the expected counts of the first cell sum to {totals[0]:.4g}, but its library size is "
        f"{library[0, 0]:.4g}: mu = library size * softmax(gene_logits)"
    )


class _FakeCountModel:
    """A stand-in trained VAE whose reconstruction is known."""

    def __init__(self, expected_counts: np.ndarray):
        self.expected_counts = expected_counts

    def reconstruct(self, counts):
        return self.expected_counts.copy()


@exercise("3.3", points=2, title="Denoised expression")
def denoised_expression_is_log_normalized_reconstruction(ns):
    rng = np.random.default_rng(6)
    counts = rng.poisson(5.0, (5, 7)).astype("float32")
    reconstructed = (rng.gamma(2.0, 3.0, (5, 7)) * rng.uniform(0.5, 4.0, (5, 1))).astype("float32")
    result = ns["denoised_expression"](_FakeCountModel(reconstructed), counts)
    values = to_numpy(result, "denoised_expression")
    expect_shape(values, counts.shape, "denoised_expression for 5 cells x 7 genes")

    def per_10k(matrix):
        matrix = np.float64(matrix)
        return matrix / matrix.sum(axis=1, keepdims=True) * 1e4

    close = dict(rtol=1e-4, atol=1e-4)
    if np.allclose(values, np.log1p(per_10k(reconstructed)), **close):
        return
    mistakes = [
        (np.log1p(per_10k(counts)), "this is the log-normalized input: start from the model's "
                                    "reconstruction, vae.reconstruct(counts)"),
        (np.log1p(reconstructed), "scale each cell to 10,000 counts in total before log1p, "
                                  "like adata.X"),
        (per_10k(reconstructed), "take np.log1p of the scaled counts"),
        (np.log(per_10k(reconstructed)), "use np.log1p (log of 1 + x), not np.log"),
    ]
    for expected, message in mistakes:
        if expected.shape == values.shape and np.allclose(values, expected, **close):
            raise CheckFailed(message)
    raise CheckFailed("the values differ from log1p(reconstruction / its row sum * 1e4)")
