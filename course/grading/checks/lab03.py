"""Checks of lab 3, a VAE for single-cell counts (solutions/03_vae_counts.py).

Counts are drawn with means from 0.05 to 100 and a few zero means, so that the negative
binomial's edge cases show; the verdicts recompute the log-likelihood with scipy, the expected
counts from the library size and the denoised expression, and recognize the log-normalized
input or a forgotten library size.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import close, expect_finite, expect_keys, expect_shape
from course.grading.probes import lab03 as probes
from course.grading.registry import CheckFailed, exercise


def _first_match(values, mistakes, rtol: float = 1e-4, atol: float = 1e-4) -> None:
    """Raise the message of the first (expected values, message) pair that ``values`` equal."""
    for expected, message in mistakes:
        with np.errstate(all="ignore"):
            if close(values, expected, rtol, atol):
                raise CheckFailed(message)


# --- 3.1 --------------------------------------------------------------------------------------


def nb_inputs(rng):
    """Negative binomial counts of random cells x genes, with means from 0.05 to 100 and
    thetas from 0.3 to 100; two entries have mean 0 (and count 0)."""
    n_cells, n_genes = int(rng.integers(4, 9)), int(rng.integers(5, 11))
    mu = np.exp(rng.uniform(np.log(0.05), np.log(100.0), (n_cells, n_genes)))
    theta = np.exp(rng.uniform(np.log(0.3), np.log(100.0), n_genes))
    counts = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)
    counts[rng.integers(n_cells), rng.integers(n_genes)] = 0.0
    for row, column in zip(rng.choice(n_cells, 2, replace=False), rng.integers(n_genes, size=2)):
        mu[row, column], counts[row, column] = 0.0, 0.0
    return {"counts": counts.astype("float32"), "mu": mu.astype("float32"),
            "theta": theta.astype("float32")}


def _nb(x, mu, theta) -> np.ndarray:
    """log NB(x; mean mu, inverse dispersion theta), with mu = 0 giving a point mass at 0."""
    from scipy import stats

    x, mu, theta = np.broadcast_arrays(*(np.float64(value) for value in (x, mu, theta)))
    with np.errstate(all="ignore"):
        return stats.nbinom.logpmf(x, theta, theta / (theta + mu))


@exercise("3.1", points=4, title="The negative binomial log-likelihood",
          probe=probes.nb_log_likelihood, inputs=nb_inputs)
def nb_log_likelihood_verdict(inputs, outputs):
    from scipy.special import gammaln

    expect_keys(outputs, ["values"])
    x, mu, theta = (np.float64(inputs[key]) for key in ("counts", "mu", "theta"))
    values = np.asarray(outputs["values"], np.float64)
    if values.shape in ((x.shape[0],), ()):
        raise CheckFailed("nb_log_likelihood summed over the genes: return one value per cell "
                          "and gene, do not sum")
    expect_shape(values, x.shape, f"nb_log_likelihood of {x.shape[0]} cells x {x.shape[1]} "
                 "genes", "one value per cell and gene (theta broadcasts over the cells)")
    broken = ~np.isfinite(values)
    positive = mu > 0
    if np.any(broken & (x == 0) & positive):
        raise CheckFailed("the log-likelihood is infinite where the count is 0: log x! is "
                          "lgamma(x + 1), which is 0 at x = 0, while lgamma(0) is infinite")
    expect_finite(values[positive], "nb_log_likelihood")
    expected = _nb(x, mu, theta)
    tolerance = {"rtol": 1e-4, "atol": 2e-3}
    if close(values[positive], expected[positive], **tolerance):
        if close(values, expected, **tolerance):
            return
        raise CheckFailed("the log-likelihood is wrong where mu = 0 (a count of 0 is then "
                          "certain, log-probability 0): add the tiny EPSILON inside the "
                          "logarithms")
    binomial = gammaln(x + theta) - gammaln(theta) - gammaln(x + 1.0)
    with np.errstate(all="ignore"):
        log_theta = np.log(theta / (theta + mu))
        log_mu = np.log(mu / (theta + mu))
        mistakes = [
            (-expected, "you returned minus the log-likelihood: the log-probability of a count "
                        "is at most 0"),
            (expected - binomial, "the log binomial coefficient (the three log-gamma terms) is "
                                  "missing"),
            (expected + gammaln(x + 1.0), "the -lgamma(x + 1) term (log x!) is missing or has "
                                          "the wrong sign"),
            (expected + 2 * gammaln(theta), "the -lgamma(theta) term has the wrong sign"),
            (binomial + x * log_theta + theta * log_mu,
             "theta and x are paired with the wrong fractions: theta multiplies "
             "log(theta / (theta + mu)), x multiplies log(mu / (theta + mu))"),
            (_nb(x, theta, mu), "mu and theta have swapped places: mu is the mean, theta the "
                                "inverse dispersion"),
            (_nb(x, mu, 1.0 / theta), "you used theta as the dispersion: it is the inverse "
                                      "dispersion, the variance is mu + mu^2 / theta"),
            (x * np.log(mu) - mu - gammaln(x + 1.0),
             "this is the Poisson log-likelihood: the negative binomial has the extra inverse "
             "dispersion theta"),
        ]
    _first_match(values[positive], [(e[positive], m) for e, m in mistakes], **tolerance)
    if np.any(values > 1e-4):
        raise CheckFailed("some log-probabilities are positive: the probability of a count "
                          "cannot exceed 1; check the signs of the terms")
    row, column = np.unravel_index(np.argmax(np.abs(values - expected)), x.shape)
    raise CheckFailed(
        f"nb_log_likelihood(x={x[row, column]:g}, mu={mu[row, column]:.3g}, "
        f"theta={theta[column]:.3g}) is {values[row, column]:.4g}; the negative binomial gives "
        f"{expected[row, column]:.4g}"
    )


# --- 3.2 --------------------------------------------------------------------------------------


def _softmax(logits, axis=-1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def expected_counts_inputs(rng):
    """Random gene logits, and counts of cells whose library sizes range from 50 to 5,000."""
    n_cells, n_genes = int(rng.integers(3, 7)), int(rng.integers(7, 13))
    gene_logits = rng.normal(0.0, 1.5, (n_cells, n_genes))
    library = np.exp(rng.uniform(np.log(50.0), np.log(5000.0), (n_cells, 1)))
    counts = rng.poisson(library * _softmax(rng.normal(0.0, 1.5, (n_cells, n_genes))))
    counts[:, 0] += 1  # no empty cell
    return {"gene_logits": gene_logits.astype("float32"), "counts": counts.astype("float32")}


@exercise("3.2", points=2, title="Scale the decoder by the library size",
          probe=probes.expected_counts, inputs=expected_counts_inputs)
def expected_counts_verdict(inputs, outputs):
    expect_keys(outputs, ["mu"])
    logits, counts = np.float64(inputs["gene_logits"]), np.float64(inputs["counts"])
    mu = np.asarray(outputs["mu"], np.float64)
    expect_shape(mu, counts.shape, f"expected_counts for {counts.shape[0]} cells x "
                 f"{counts.shape[1]} genes", "one expected count per cell and gene")
    expect_finite(mu, "the expected counts")
    library = counts.sum(axis=1, keepdims=True)
    expected = library * _softmax(logits)
    if close(mu, expected, 1e-4, 1e-4):
        return
    totals = mu.sum(axis=1)
    if np.allclose(totals, 1.0, rtol=1e-4):
        raise CheckFailed("library size ignored: each cell's expected counts sum to 1; scale "
                          "the gene shares by the cell's library size, its total count")
    _first_match(mu, [
        (np.log(expected), "you returned log mu (in log space): the expected counts are mu "
                           "itself, library size times shares"),
        (counts.sum() * _softmax(logits), "every cell's expected counts sum to the total of the "
                                          "whole batch: use each cell's own library size"),
        (counts.mean(axis=1, keepdims=True) * _softmax(logits),
         "the library size is a cell's total count (a sum over genes), not its mean count"),
        (library * _softmax(logits, axis=0), "the softmax runs over the cells (axis 0): take it "
                                             "over the genes so that each cell's shares sum "
                                             "to 1"),
        (library * np.exp(logits), "exp(gene_logits) are not shares: normalize them with a "
                                   "softmax over the genes"),
        (library * logits, "gene_logits are not shares: turn them into shares that sum to 1 "
                           "with a softmax over the genes"),
    ])
    raise CheckFailed(f"the expected counts of the first cell sum to {totals[0]:.4g}, but its "
                      f"library size is {library[0, 0]:.4g}, and its shares should follow a "
                      "softmax of its gene logits")


# --- 3.3 --------------------------------------------------------------------------------------


def denoise_inputs(rng):
    """Counts of random cells, and an unrelated random 'reconstruction' of random depths."""
    n_cells, n_genes = int(rng.integers(4, 9)), int(rng.integers(5, 12))
    counts = rng.poisson(rng.uniform(1.0, 20.0, (n_cells, 1)), (n_cells, n_genes))
    depth = np.exp(rng.uniform(np.log(0.5), np.log(50.0), (n_cells, 1)))
    reconstruction = rng.gamma(2.0, 3.0, (n_cells, n_genes)) * depth
    return {"counts": counts.astype("float32"), "reconstruction": reconstruction.astype("float32")}


def _per_10k(matrix, axis=1) -> np.ndarray:
    return matrix / matrix.sum(axis=axis, keepdims=True) * 1e4


@exercise("3.3", points=2, title="Denoised expression", probe=probes.denoised_expression,
          inputs=denoise_inputs)
def denoised_expression_verdict(inputs, outputs):
    expect_keys(outputs, ["values", "calls"])
    counts = np.float64(inputs["counts"])
    reconstruction = np.float64(inputs["reconstruction"])
    values = np.asarray(outputs["values"], np.float64)
    expect_shape(values, counts.shape, f"denoised_expression for {counts.shape[0]} cells x "
                 f"{counts.shape[1]} genes", "one value per cell and gene")
    expect_finite(values, "the denoised expression")
    received = outputs.get("received", np.zeros(0))
    if int(outputs["calls"]) and not close(received, counts, 1e-4, 1e-4):
        raise CheckFailed("vae.reconstruct was not given the raw counts: the count model "
                          "encodes the counts themselves")
    if close(values, np.log1p(_per_10k(reconstruction)), 1e-4, 1e-4):
        return
    _first_match(values, [
        (np.log1p(_per_10k(counts)), "this is the log-normalized input: start from the model's "
                                     "reconstruction of the counts"),
        (np.log1p(reconstruction), "the reconstruction is not normalized: scale each cell to "
                                   "10,000 counts in total before log1p, like adata.X"),
        (_per_10k(reconstruction), "the values are not on the log scale: take log1p of the "
                                   "scaled counts, like adata.X"),
        (np.log(_per_10k(reconstruction)), "log of the scaled counts gives -inf at 0 and is "
                                           "not adata.X's scale: use log1p (log of 1 + x)"),
        (np.log1p(_per_10k(reconstruction, axis=0)),
         "you divided each gene (column) by its total over the cells: divide each cell (row) "
         "by its own total"),
        (np.log1p(reconstruction / reconstruction.sum(axis=1, keepdims=True)),
         "each cell is scaled to 1, not to 10,000 counts in total like adata.X"),
        (np.log1p(reconstruction / reconstruction.sum(axis=1, keepdims=True) * 1e6),
         "each cell is scaled to a million (CPM), not to 10,000 counts like adata.X"),
        (np.log1p(reconstruction / counts.sum(axis=1, keepdims=True) * 1e4),
         "you divided by the observed library size: divide the reconstruction by its own "
         "total, so that each cell sums to 10,000"),
        (_per_10k(np.log1p(reconstruction)), "you took log1p before normalizing: scale each "
                                             "cell to 10,000 first, then take log1p"),
        (np.log2(1.0 + _per_10k(reconstruction)), "log2 is not adata.X's scale: use the natural "
                                                  "logarithm, log1p"),
        (np.log10(1.0 + _per_10k(reconstruction)), "log10 is not adata.X's scale: use the "
                                                   "natural logarithm, log1p"),
    ])
    if not int(outputs["calls"]):
        raise CheckFailed("denoised_expression never asked the model for its reconstruction: "
                          "start from vae.reconstruct(counts)")
    raise CheckFailed("the values differ from the reconstruction scaled to 10,000 counts per "
                      "cell on a log1p scale")
