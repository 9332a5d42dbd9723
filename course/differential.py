"""Differential expression of single cells without controls, with a generative model as control.

Prada-Luengo, Schuster, Liang, Terkelsen, Sora & Krogh, "N-of-one differential gene expression
without control samples using a deep generative model", Genome Biology 24, 263 (2023).

A DGD trained on reference cells only (here: every cell type but one) knows what reference
expression looks like. For a new cell, :meth:`course.models.DGD.infer` finds the representation
that explains it best; decoded at the cell's library size, it gives the expected counts of the
*closest reference cell* with the model's dispersion: a negative-binomial "in-silico control".
Each gene is then tested on its own: the two-sided p-value of the observed count under
NB(mean, theta) is the probability of all counts no more likely than the one observed (as in
bulkDGD's ``get_p_values``). Genes that the new cell expresses far above its closest reference
(its own markers) get tiny p-values.

Per gene, the cells are combined by the mean of the signed -log10 p-values (positive where the
observed count is above the expected one), which ranks genes up in the new cells first.
:func:`t_test_scores` is the usual comparison that needs controls; :func:`marker_ranking` scores
either ranking by how high known marker genes come.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# The grid of counts covers NB(mean, theta) up to this quantile, as in bulkDGD (beyond it, the
# exact tail mass is added, where bulkDGD normalises by the grid's mass).
UPPER_QUANTILE = 0.99999


def nb_two_sided_p_values(counts, mean, theta) -> np.ndarray:
    """P(NB(mean, theta) gives a count no more likely than the observed one), per entry.

    Args:
        counts: observed counts, shape (n_cells, n_genes).
        mean: expected counts, same shape.
        theta: inverse dispersion per gene, shape (n_genes,) (variance = mean + mean^2 / theta).
    """
    counts, mean = np.asarray(counts, np.float64), np.asarray(mean, np.float64)
    theta = np.broadcast_to(np.asarray(theta, np.float64), counts.shape[1:])
    if counts.shape != mean.shape or counts.ndim != 2:
        raise ValueError(f"counts and mean must be matrices of one shape, got {counts.shape} "
                         f"and {mean.shape}.")
    p_values = np.empty_like(counts)
    probability = theta / (theta + np.maximum(mean, 1e-12))  # scipy's nbinom(n=theta, p)
    for row in range(len(counts)):  # one cell at a time keeps the grid small
        distribution = stats.nbinom(theta, probability[row])
        top = int(max(counts[row].max(), distribution.ppf(UPPER_QUANTILE).max()))
        grid = np.arange(top + 1)[:, None]
        mass = distribution.pmf(grid)  # (grid, genes)
        observed = distribution.pmf(counts[row])
        # Sum the mass of counts no more likely than the observed one (a relative tolerance
        # keeps the observed count itself in the sum).
        tail = np.where(mass <= observed * (1 + 1e-9), mass, 0.0).sum(axis=0)
        # Past the grid every count is less likely than the observed one (it lies beyond the
        # mode and the observed count): add that mass exactly.
        p_values[row] = np.clip(tail + distribution.sf(top), 0.0, 1.0)
    return p_values


def signed_log_p_scores(counts, mean, p_values) -> np.ndarray:
    """Per gene: the mean over cells of -log10 p, signed + where the count is above the mean."""
    direction = np.sign(np.asarray(counts, np.float64) - np.asarray(mean, np.float64))
    return np.mean(direction * -np.log10(np.maximum(p_values, 1e-300)), axis=0)


def dgd_scores(dgd, counts, steps: int = 300) -> dict:
    """N-of-one DE of new cells against a trained DGD: their inferred representations, expected
    counts, per-cell p-values and per-gene scores (:func:`signed_log_p_scores`)."""
    representations = dgd.infer(counts, steps=steps)
    library = np.asarray(counts, np.float64).sum(axis=1)
    expected = dgd.decode(representations, library_size=library)
    theta = np.exp(np.asarray(dgd.log_theta, np.float64))
    p_values = nb_two_sided_p_values(counts, expected, theta)
    return {"representations": representations, "expected": expected, "p_values": p_values,
            "scores": signed_log_p_scores(counts, expected, p_values)}


def t_test_scores(log_expression, in_group) -> np.ndarray:
    """Welch's t statistic per gene of the group against all other cells (the controls)."""
    log_expression = np.asarray(log_expression, np.float64)
    in_group = np.asarray(in_group, bool)
    statistic = stats.ttest_ind(log_expression[in_group], log_expression[~in_group],
                                equal_var=False).statistic
    return np.nan_to_num(statistic, nan=0.0)


def marker_ranking(scores, gene_names, markers) -> dict:
    """How high known markers rank by ``scores`` (higher = more up): AUROC and average
    precision of markers vs all other genes, and each marker's rank (1 = top)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    gene_names = [str(gene) for gene in gene_names]
    is_marker = np.isin(gene_names, list(markers))
    if not is_marker.any() or is_marker.all():
        raise ValueError("markers must name some, but not all, of gene_names.")
    ranks = np.empty(len(scores), int)
    ranks[np.argsort(-np.asarray(scores), kind="stable")] = np.arange(1, len(scores) + 1)
    return {"auroc": float(roc_auc_score(is_marker, scores)),
            "average_precision": float(average_precision_score(is_marker, scores)),
            "marker_ranks": {gene: int(ranks[i]) for i, gene in enumerate(gene_names)
                             if is_marker[i]}}
