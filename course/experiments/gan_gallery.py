"""Gallery of published GANs for genomics: scGAN / cscGAN on PBMC cells and DNA-GAN on
sequences with a planted motif, each against a simple baseline.

- ``scgan-pbmc``: scGAN and cscGAN (Marouf et al. 2020) against independent per-cell-type
  negative-binomial sampling of each gene. Scores: a real-vs-generated classifier's AUC (0.5 is
  ideal), MMD, and marker-gene means per cell type, all on log1p of library-size-normalized
  cells in the principal components of the real cells.
- ``dnagan-synthetic``: DNA-GAN (Killoran et al. 2017) on ``datasets.synthetic_sequences``,
  then design by activation maximization against a small motif classifier. Score: the share of
  sequences with a motif hit (PWM log-odds scan), for random, real, generated and designed ones.
"""

from __future__ import annotations

import numpy as np

BATCH_SIZE = 64
N_COMPONENTS = 50  # principal components of the real cells in which cells are compared


# --- Single cells ----------------------------------------------------------------------------


def independent_nb_sampler(counts, labels, requested_labels, seed: int = 0) -> np.ndarray:
    """The baseline: per cell type, draw each gene independently from a negative binomial.

    Mean and variance of each gene are matched within each cell type (method of moments; a
    Poisson where the variance does not exceed the mean). Genes are independent given the cell
    type, so gene-gene correlations within a type are lost: this is what a GAN should add.
    """
    rng = np.random.default_rng(seed)
    counts, labels = np.asarray(counts, np.float64), np.asarray(labels)
    requested_labels = np.asarray(requested_labels)
    samples = np.zeros((len(requested_labels), counts.shape[1]))
    for label in np.unique(requested_labels):
        rows = requested_labels == label
        typed = counts[labels == label]
        if len(typed) == 0:
            raise ValueError(f"No real cells of type {label} to fit the sampler on.")
        mean, variance = typed.mean(axis=0), typed.var(axis=0)
        overdispersed = variance > mean + 1e-8
        # NB(r, p) with mean m and variance v: r = m^2 / (v - m), p = r / (r + m).
        r = np.where(overdispersed, mean**2 / np.maximum(variance - mean, 1e-8), 1.0)
        p = np.where(overdispersed, r / (r + mean), 1.0)
        nb = rng.negative_binomial(np.maximum(r, 1e-8), np.clip(p, 1e-8, 1.0),
                                   (rows.sum(), len(mean)))
        poisson = rng.poisson(mean, (rows.sum(), len(mean)))
        samples[rows] = np.where(overdispersed, nb, poisson)
    return samples


def log_normalized(cells, library_size: float = 20000.0) -> np.ndarray:
    """log1p of cells scaled to ``library_size`` counts (cells without counts stay zero)."""
    cells = np.asarray(cells, np.float64)
    totals = cells.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(cells, totals, out=np.zeros_like(cells), where=totals > 0)
                    * library_size)


def marker_genes(expression, labels, per_type: int = 2) -> np.ndarray:
    """Indices of the genes most raised in each cell type over the others (mean log1p gap)."""
    markers = []
    for label in np.unique(labels):
        gap = expression[labels == label].mean(axis=0) - expression[labels != label].mean(axis=0)
        markers += [g for g in np.argsort(-gap) if g not in markers][:per_type]
    return np.array(markers)


def marker_means(expression, labels, markers, types) -> np.ndarray:
    """Mean log1p expression of each marker gene (columns) in each cell type (rows); NaN for a
    cell type without cells."""
    return np.array([expression[labels == t][:, markers].mean(axis=0) if np.any(labels == t)
                     else np.full(len(markers), np.nan) for t in types])


def assign_cell_types(real, real_labels, generated, k: int = 15, seed: int = 0) -> np.ndarray:
    """Cell types of generated cells: a kNN classifier of the real cells in their PCs."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    classifier = make_pipeline(PCA(min(N_COMPONENTS, *real.shape), random_state=seed),
                               KNeighborsClassifier(k))
    return classifier.fit(real, real_labels).predict(generated)


def cell_scores(real, real_labels, generated, generated_labels, markers, seed: int = 0) -> dict:
    """AUC, MMD and marker-mean agreement of generated cells with real ones (log1p scale).

    Returns ``auc`` (cross-validated real-vs-generated classifier in the principal components
    of the real cells; 0.5 is ideal), ``mmd`` (same features), ``marker_mae`` (mean absolute
    gap of marker-gene means per cell type) and ``marker_correlation`` (Pearson's r of those
    means), plus the two marker-mean tables.
    """
    from sklearn.decomposition import PCA

    from course import metrics

    pca = PCA(min(N_COMPONENTS, *real.shape), random_state=seed).fit(real)
    real_pcs, generated_pcs = pca.transform(real), pca.transform(generated)
    types = np.unique(real_labels)
    real_means = marker_means(real, real_labels, markers, types)
    generated_means = marker_means(generated, generated_labels, markers, types)
    present = ~np.isnan(generated_means)
    return {
        "auc": metrics.classifier_auc(real_pcs, generated_pcs, seed=seed),
        "mmd": metrics.mmd(real_pcs, generated_pcs, seed=seed),
        "marker_mae": float(np.abs(real_means - generated_means)[present].mean()),
        "marker_correlation": float(np.corrcoef(real_means[present],
                                                generated_means[present])[0, 1]),
        "real_marker_means": real_means,
        "generated_marker_means": generated_means,
    }
