"""Synthetic single-cell counts with a known truth: cell types, library sizes, a stimulus.

Each cell type has its own expression profile (a log-normal perturbation of a shared one); each
cell's library size is log-normal around ``mean_library_size``; counts are drawn as a
gamma-Poisson mixture, i.e. negative binomial with mean ``library_size * profile`` and the given
inverse dispersion. The results are AnnData objects in the toolkit's layout
(:mod:`course.datasets.layout`); the same seed gives the same cells.
"""

from __future__ import annotations

import numpy as np

from course.datasets.layout import counts_anndata


def _validate_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")


def _cell_type_profiles(rng: np.random.Generator, n_cell_types: int, n_genes: int) -> np.ndarray:
    """One expression profile per cell type (rows sum to 1) around a shared log-normal one."""
    shared = rng.normal(0.0, 1.0, n_genes)
    profiles = np.exp(shared + rng.normal(0.0, 1.0, (n_cell_types, n_genes)))
    return profiles / profiles.sum(axis=1, keepdims=True)


def _negative_binomial_counts(
    rng: np.random.Generator, cell_profiles: np.ndarray, mean_library_size: float,
    inverse_dispersion: float,
) -> np.ndarray:
    """Counts of each cell (a row of ``cell_profiles``) with a log-normal library size."""
    library_size = rng.lognormal(np.log(mean_library_size), 0.3, len(cell_profiles))
    mean = library_size[:, None] * cell_profiles
    rate = rng.gamma(inverse_dispersion, mean / inverse_dispersion)
    return rng.poisson(rate)


def _named_cells(counts: np.ndarray, cell_types: np.ndarray, n_cell_types: int):
    """The AnnData of the counts, with cells "cell_i", genes "gene_j" and types "type_k"."""
    type_names = np.array([f"type_{k}" for k in range(n_cell_types)])
    n_cells, n_genes = counts.shape
    return counts_anndata(
        counts,
        type_names[cell_types],
        [f"cell_{i}" for i in range(n_cells)],
        [f"gene_{j}" for j in range(n_genes)],
    )


def synthetic_counts(
    n_cells: int = 1000, n_genes: int = 200, n_cell_types: int = 4, seed: int = 0,
    mean_library_size: float = 2000.0, inverse_dispersion: float = 5.0,
):
    """Negative-binomial counts with known cell types and library sizes, as an AnnData.

    The counts are drawn as the module docstring describes; ``obs["cell_type"]`` is the truth.
    """
    _validate_sizes(n_cells=n_cells, n_genes=n_genes, n_cell_types=n_cell_types)
    rng = np.random.default_rng(seed)
    profiles = _cell_type_profiles(rng, n_cell_types, n_genes)
    cell_types = rng.integers(0, n_cell_types, n_cells)
    counts = _negative_binomial_counts(
        rng, profiles[cell_types], mean_library_size, inverse_dispersion
    )
    return _named_cells(counts, cell_types, n_cell_types)


def _stimulated_profiles(
    rng: np.random.Generator, profiles: np.ndarray, n_response_genes: int, response_share: float
) -> np.ndarray:
    """The profiles of stimulated cells: a repressed gene set halved, an induced program added."""
    n_genes = profiles.shape[1]
    induced, repressed = np.split(rng.permutation(n_genes)[: 2 * n_response_genes], 2)
    stimulated = profiles.copy()
    stimulated[:, repressed] *= 0.5
    stimulated /= stimulated.sum(axis=1, keepdims=True)
    program = np.zeros(n_genes)
    program[induced] = rng.dirichlet(np.ones(n_response_genes))
    return (1 - response_share) * stimulated + response_share * program


def synthetic_perturbation(
    n_cells: int = 2000, n_genes: int = 200, n_cell_types: int = 4,
    n_response_genes: int = 20, response_share: float = 0.2, seed: int = 0,
    mean_library_size: float = 2000.0, inverse_dispersion: float = 5.0,
):
    """Control and stimulated NB counts with a known, cell-type-specific response (an AnnData).

    Cell-type profiles are drawn as in :func:`synthetic_counts`. The stimulus (a) induces a
    shared program of ``n_response_genes`` genes that takes ``response_share`` of each stimulated
    cell's transcripts (added to the type's profile, so the log fold change of a gene is small
    in types that already express it and large in those that do not) and (b) halves a second,
    shared set of ``n_response_genes`` genes. Half of the cells of each type are stimulated.

    Returns:
        AnnData as :func:`synthetic_counts` plus ``obs["condition"]`` ("control" or
        "stimulated") and the ground truth ``uns["true_log_fold_change"]`` (n_cell_types x
        n_genes: log of the stimulated over the control expression profile of each type).
    """
    _validate_sizes(n_cells=n_cells, n_genes=n_genes, n_cell_types=n_cell_types)
    if not 0 < 2 * n_response_genes <= n_genes or not 0.0 <= response_share < 1.0:
        raise ValueError(f"Need 0 < 2 * n_response_genes <= n_genes ({n_genes}) and "
                         f"0 <= response_share < 1, got {n_response_genes}, {response_share}.")
    rng = np.random.default_rng(seed)
    profiles = _cell_type_profiles(rng, n_cell_types, n_genes)
    stimulated_profiles = _stimulated_profiles(rng, profiles, n_response_genes, response_share)
    cell_types = rng.integers(0, n_cell_types, n_cells)
    stimulated = rng.random(n_cells) < 0.5
    cell_profiles = np.where(stimulated[:, None], stimulated_profiles[cell_types],
                             profiles[cell_types])
    counts = _negative_binomial_counts(rng, cell_profiles, mean_library_size, inverse_dispersion)
    adata = _named_cells(counts, cell_types, n_cell_types)
    # Cells without a count were dropped: look up the condition of those kept by their name.
    kept = np.asarray([int(name.split("_")[1]) for name in adata.obs_names])
    adata.obs["condition"] = np.where(stimulated[kept], "stimulated", "control")
    adata.obs["condition"] = adata.obs["condition"].astype("category")
    adata.uns["true_log_fold_change"] = np.log(stimulated_profiles / profiles).astype(np.float32)
    return adata
