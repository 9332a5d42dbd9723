"""Probes of lab 3 (a VAE for counts): call the student's functions on the grader's inputs.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab03``.
"""

from __future__ import annotations

import numpy as np

from course.grading.probes.tools import to_numpy
from course.grading.registry import CheckFailed


def nb_log_likelihood(ns, inputs):
    """The student's negative binomial log-likelihood of random counts, means and thetas."""
    import tensorflow as tf

    x, mu, theta = (tf.constant(inputs[key]) for key in ("counts", "mu", "theta"))
    return {"values": to_numpy(ns["nb_log_likelihood"](x, mu, theta), "nb_log_likelihood")}


def expected_counts(ns, inputs):
    """The student's expected counts of random gene logits and cells of random depths."""
    try:
        mu = ns["expected_counts"](inputs["gene_logits"], inputs["counts"])
    except Exception as error:
        if "ncompatible shapes" in str(error) or "could not be broadcast" in str(error):
            raise CheckFailed(
                "the library sizes do not broadcast against the (cells, genes) shares: keep "
                "each cell's library size as a column, keepdims=True"
            ) from None
        raise
    return {"mu": to_numpy(mu, "expected_counts")}


class FixedReconstruction:
    """A stand-in trained count model whose reconstruction is the grader's random matrix."""

    def __init__(self, reconstruction: np.ndarray):
        self.reconstruction = reconstruction
        self.received = []

    def reconstruct(self, counts):
        try:
            self.received.append(np.array(counts, dtype=np.float64, copy=True))
        except (TypeError, ValueError):  # not an array: the verdict sees an empty one
            self.received.append(np.zeros(0))
        return self.reconstruction.copy()

    __call__ = predict = reconstruct


def denoised_expression(ns, inputs):
    """The student's denoised expression from a stand-in model, and what it was given."""
    model = FixedReconstruction(inputs["reconstruction"])
    values = ns["denoised_expression"](model, inputs["counts"].copy())
    outputs = {"values": to_numpy(values, "denoised_expression"), "calls": len(model.received)}
    if model.received:
        outputs["received"] = model.received[0]
    return outputs
