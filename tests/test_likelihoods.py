"""The log-likelihoods agree with scipy reference densities; count validation explains errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from course import likelihoods

RNG = np.random.default_rng(0)
COUNTS = RNG.poisson(RNG.gamma(0.5, 6.0, size=(20, 8))).astype(np.float32)
MU = RNG.uniform(0.05, 30.0, size=(20, 8)).astype(np.float32)
THETA = RNG.uniform(0.1, 10.0, size=8).astype(np.float32)  # One per gene, broadcast.
DROPOUT_LOGITS = RNG.normal(0.0, 2.0, size=(20, 8)).astype(np.float32)


def test_bernoulli_matches_scipy():
    x = RNG.integers(0, 2, size=(10, 6)).astype(np.float32)
    logits = RNG.normal(0.0, 3.0, size=(10, 6)).astype(np.float32)
    expected = stats.bernoulli.logpmf(x, expit(logits))
    np.testing.assert_allclose(likelihoods.bernoulli(x, logits), expected, rtol=1e-4, atol=1e-5)


def test_bernoulli_accepts_grey_pixels_as_cross_entropy():
    x = np.array([0.3, 0.8], np.float32)
    logits = np.array([0.5, -1.0], np.float32)
    p = expit(logits)
    expected = x * np.log(p) + (1 - x) * np.log(1 - p)
    np.testing.assert_allclose(likelihoods.bernoulli(x, logits), expected, rtol=1e-5)


def test_gaussian_matches_scipy():
    x = RNG.normal(size=(10, 6)).astype(np.float32)
    mean = RNG.normal(size=(10, 6)).astype(np.float32)
    log_variance = RNG.normal(size=(10, 6)).astype(np.float32)
    expected = stats.norm.logpdf(x, mean, np.exp(0.5 * log_variance))
    np.testing.assert_allclose(
        likelihoods.gaussian(x, mean, log_variance), expected, rtol=1e-4, atol=1e-5
    )


def test_poisson_matches_scipy():
    expected = stats.poisson.logpmf(COUNTS, MU)
    np.testing.assert_allclose(likelihoods.poisson(COUNTS, MU), expected, rtol=1e-4, atol=1e-4)


def test_negative_binomial_matches_scipy_with_mean_and_inverse_dispersion():
    # scipy's nbinom(n, p) has mean n (1 - p) / p: n = theta and p = theta / (theta + mu).
    expected = stats.nbinom.logpmf(COUNTS, THETA, THETA / (THETA + MU))
    np.testing.assert_allclose(
        likelihoods.negative_binomial(COUNTS, MU, THETA), expected, rtol=1e-4, atol=1e-4
    )


def test_zero_inflated_negative_binomial_matches_mixture_of_scipy_densities():
    dropout = expit(DROPOUT_LOGITS)
    nb = stats.nbinom.pmf(COUNTS, THETA, THETA / (THETA + MU))
    expected = np.log(dropout * (COUNTS == 0) + (1 - dropout) * nb)
    np.testing.assert_allclose(
        likelihoods.zero_inflated_negative_binomial(COUNTS, MU, THETA, DROPOUT_LOGITS),
        expected,
        rtol=1e-4,
        atol=1e-4,
    )


def test_count_likelihoods_stay_finite_for_tiny_means_and_large_counts():
    x = np.array([0.0, 0.0, 500.0], np.float32)
    mu = np.array([1e-12, 0.0, 1e4], np.float32)
    theta = np.array([1e-3, 1e4, 0.5], np.float32)
    for values in (
        likelihoods.negative_binomial(x, mu, theta),
        likelihoods.zero_inflated_negative_binomial(x, mu, theta, np.zeros(3, np.float32)),
        likelihoods.poisson(x, mu),
    ):
        assert np.all(np.isfinite(values))


def test_likelihoods_return_float32_for_float16_inputs():
    x = COUNTS.astype(np.float16)
    assert likelihoods.negative_binomial(x, MU.astype(np.float16), THETA).dtype == np.float32


def test_validate_counts_accepts_integer_counts():
    counts = np.array([[0, 3], [7, 1]], np.int32)
    np.testing.assert_array_equal(likelihoods.validate_counts(counts), counts)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.log1p(np.array([[0.0, 3.0], [7.0, 1.0]])), "log-normalized X"),
        (np.array([[0.0, -1.0]]), "negative"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.zeros((0, 5)), "empty"),
    ],
)
def test_validate_counts_rejects_non_counts_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        likelihoods.validate_counts(data)
