"""Lab 3's checks: each realistic mistake loses the exercise's points with a hint that names the
mistake, and the lab's functions are the toolkit's (that the solution passes, for every lab:
tests/test_lab_structure.py)."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    solution_namespace,
    with_mistake,
)

from course import likelihoods
from course.models import VAE


@pytest.fixture(scope="module")
def lab3():
    return solution_namespace(3)


NB = """
def nb_log_likelihood(x, mu, theta):
    log_theta_mu = ops.log(theta + mu + EPSILON)
    return {coefficient} + {theta_term} * (ops.log({theta} + EPSILON) - log_theta_mu) \\
        + {x_term} * (ops.log({mu} + EPSILON) - log_theta_mu)
"""
COEFFICIENT = "tf.math.lgamma(x + theta) - tf.math.lgamma(theta) - tf.math.lgamma(x + 1.0)"
RIGHT_NB = {"coefficient": COEFFICIENT, "theta_term": "theta", "x_term": "x", "theta": "theta",
            "mu": "mu"}
NB_MISTAKES = {
    "no log-gamma terms": ({"coefficient": "0.0"}, "the log binomial coefficient"),
    "no lgamma(x + 1)": ({"coefficient": "tf.math.lgamma(x + theta) - tf.math.lgamma(theta)"},
                         "the -lgamma(x + 1) term (log x!) is missing"),
    "lgamma(x)": ({"coefficient": COEFFICIENT.replace("x + 1.0", "x")},
                  "lgamma(0) is infinite"),
    "sign of lgamma(theta)": ({"coefficient": COEFFICIENT.replace("- tf.math.lgamma(theta)",
                                                                  "+ tf.math.lgamma(theta)")},
                              "the -lgamma(theta) term has the wrong sign"),
    "fractions swapped": ({"theta_term": "x", "x_term": "theta"},
                          "paired with the wrong fractions"),
    "no epsilon": ({"mu": "mu - EPSILON"}, "add the tiny EPSILON inside"),
}


@pytest.mark.parametrize("mistake", list(NB_MISTAKES))
def test_nb_log_likelihood_mistakes_lose_the_points(lab3, mistake):
    change, hint = NB_MISTAKES[mistake]
    source = NB.format(**(RIGHT_NB | change))
    assert hint in failure_message("3.1", with_mistake(lab3, source))


def test_the_nb_template_is_right(lab3):
    assert_passes("3.1", with_mistake(lab3, NB.format(**RIGHT_NB)), seeds=[0])


WRAPPED_NB = """
_right = nb_log_likelihood
def nb_log_likelihood(x, mu, theta):
    return {}
"""
WRAPPED_NB_MISTAKES = {
    "mu and theta swapped": ("_right(x, theta, mu)", "mu and theta have swapped places"),
    "theta as dispersion": ("_right(x, mu, 1.0 / theta)", "you used theta as the dispersion"),
    "summed over genes": ("ops.sum(_right(x, mu, theta), axis=-1)", "do not sum"),
    "negative log-likelihood": ("-_right(x, mu, theta)", "minus the log-likelihood"),
    "poisson": ("x * ops.log(mu + EPSILON) - mu - tf.math.lgamma(x + 1.0)",
                "this is the Poisson log-likelihood"),
    "no return": ("None", "did you forget the `return`"),
}


@pytest.mark.parametrize("mistake", list(WRAPPED_NB_MISTAKES))
def test_more_nb_log_likelihood_mistakes_lose_the_points(lab3, mistake):
    body, hint = WRAPPED_NB_MISTAKES[mistake]
    assert hint in failure_message("3.1", with_mistake(lab3, WRAPPED_NB.format(body)))


EXPECTED = "def expected_counts(logits, counts):\n    return {}\n"
LIBRARY = "ops.sum(counts, axis=-1, keepdims=True)"
EXPECTED_COUNTS_MISTAKES = {
    "library size ignored": ("ops.softmax(logits, axis=-1)", "library size ignored"),
    "softmax over cells": (f"{LIBRARY} * ops.softmax(logits, axis=0)",
                           "the softmax runs over the cells"),
    "batch total": ("ops.sum(counts) * ops.softmax(logits, axis=-1)",
                    "total of the whole batch"),
    "mean count": ("ops.mean(counts, axis=-1, keepdims=True) * ops.softmax(logits, axis=-1)",
                   "not its mean count"),
    "exp not softmax": (f"{LIBRARY} * ops.exp(logits)", "exp(gene_logits) are not shares"),
    "logits as shares": (f"{LIBRARY} * logits", "gene_logits are not shares"),
    "log space": (f"ops.log({LIBRARY}) + ops.log_softmax(logits, axis=-1)",
                  "you returned log mu"),
    "no keepdims": ("ops.sum(counts, axis=-1) * ops.softmax(logits, axis=-1)",
                    "keepdims=True"),
}


@pytest.mark.parametrize("mistake", list(EXPECTED_COUNTS_MISTAKES))
def test_expected_counts_mistakes_lose_the_points(lab3, mistake):
    body, hint = EXPECTED_COUNTS_MISTAKES[mistake]
    assert hint in failure_message("3.2", with_mistake(lab3, EXPECTED.format(body)))


DENOISE = """
def denoised_expression(vae, counts):
    expected = vae.reconstruct(counts)
    return {}
"""
SCALED = "expected / expected.sum(axis=1, keepdims=True) * 1e4"
DENOISE_MISTAKES = {
    "raw counts": ("np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)",
                   "start from the model's reconstruction"),
    "not normalized": ("np.log1p(expected)", "scale each cell to 10,000 counts"),
    "no log": (SCALED, "not on the log scale"),
    "log not log1p": (f"np.log({SCALED})", "use log1p"),
    "per gene": ("np.log1p(expected / expected.sum(axis=0, keepdims=True) * 1e4)",
                 "you divided each gene (column)"),
    "scaled to 1": ("np.log1p(expected / expected.sum(axis=1, keepdims=True))",
                    "each cell is scaled to 1"),
    "cpm": ("np.log1p(expected / expected.sum(axis=1, keepdims=True) * 1e6)",
            "scaled to a million"),
    "observed library": ("np.log1p(expected / counts.sum(axis=1, keepdims=True) * 1e4)",
                         "you divided by the observed library size"),
    "log before scaling": ("np.log1p(expected) / np.log1p(expected).sum(1, keepdims=True) * 1e4",
                           "you took log1p before normalizing"),
    "log2": (f"np.log2(1 + {SCALED})", "log2 is not adata.X's scale"),
    "no return": ("None", "did you forget the `return`"),
}


@pytest.mark.parametrize("mistake", list(DENOISE_MISTAKES))
def test_denoised_expression_mistakes_lose_the_points(lab3, mistake):
    body, hint = DENOISE_MISTAKES[mistake]
    assert hint in failure_message("3.3", with_mistake(lab3, DENOISE.format(body)))


def test_reconstructing_normalized_data_loses_the_points(lab3):
    wrong = edited_namespace(3, "denoised_expression", old="vae.reconstruct(counts)",
                             new="vae.reconstruct(np.log1p(counts))")
    assert "was not given the raw counts" in failure_message("3.3", wrong)


# --- The lab says the toolkit computes the same things as the student's functions -------------


def test_the_toolkit_negative_binomial_passes_the_lab_check():
    def toolkit_nb(x, mu, theta):
        return likelihoods.negative_binomial(x, mu, theta)

    assert_passes("3.1", {"nb_log_likelihood": toolkit_nb})


def test_the_count_vae_likelihood_is_built_from_the_lab_functions(lab3):
    """What the lab shows after training: the model's log p(x|z) from your two functions."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.uniform(0.5, 5.0, (8, 12))).astype("float32")
    counts[:, 0] += 1
    vae = VAE(data_shape=(12,), latent_dim=3, likelihood="nb", hidden_units=(16,), seed=0)
    vae.log_theta.assign(rng.normal(0.0, 0.5, 12).astype("float32"))
    z = vae.encode(counts)
    gene_logits = np.log(vae.decode(z, library_size=1.0))
    mu = lab3["expected_counts"](gene_logits, counts)
    mine = ops.sum(lab3["nb_log_likelihood"](counts, mu, ops.exp(vae.log_theta)), axis=-1)
    np.testing.assert_allclose(ops.convert_to_numpy(mine),
                               ops.convert_to_numpy(vae.log_likelihood(counts, z)), rtol=1e-4)
