"""From a raw count matrix to what the models read: quality control, variable genes, layout.

:func:`prepare` turns the AnnData of :func:`course.datasets.read` (or any AnnData of raw counts)
into the toolkit's layout (:mod:`course.datasets.layout`): integer counts in
``layers["counts"]``, log-normalized ``X`` (log1p of counts per 10,000), ``obs["library_size"]``
and the quality-control numbers in ``obs``, all sparse. Each step says what it removed, in a
printed summary also kept in ``adata.uns["prepare"]``:

1. cells with fewer than ``min_genes`` detected genes, or more than ``max_mito_fraction`` of
   their counts on mitochondrial genes (names starting with "MT-" or "mt-");
2. genes detected in fewer than ``min_cells`` of the remaining cells;
3. all but the ``n_top_genes`` most variable genes, ranked on the counts by scanpy's
   ``seurat_v3`` flavour (a variance-stabilized dispersion; needs ``scikit-misc``);
4. cells left without a single count on those genes (count models cannot use them).
"""

from __future__ import annotations

import numpy as np

MITO_PREFIXES = ("MT-", "mt-")


def prepare(adata, n_top_genes: int = 2000, min_genes: int = 200, min_cells: int = 3,
            max_mito_fraction: float = 0.2, layer: str | None = None, verbose: bool = True):
    """Quality control, highly variable genes and log-normalization of raw counts.

    Args:
        adata: an AnnData of raw counts (cells x genes); it is not modified.
        n_top_genes: highly variable genes to keep (all genes when there are fewer).
        min_genes: cells with fewer detected genes are removed (0 keeps all).
        min_cells: genes detected in fewer cells are removed (0 keeps all).
        max_mito_fraction: cells with a larger fraction of mitochondrial counts are removed
            (1 keeps all).
        layer: where the raw counts are; None: ``layers["counts"]`` when present, else ``X``.
        verbose: print the summary of what each step removed.

    Returns:
        A new AnnData in the toolkit's layout; ``uns["prepare"]["steps"]`` holds each step
        (quality_control, rare_genes, highly_variable_genes, empty_cells) with the threshold
        used and the cells and genes it removed (:func:`summary` prints them).

    Raises:
        ValueError: if the counts are not raw counts (negative, non-integer: normalized data),
            a threshold is out of range, or no cell or gene is left.
    """
    import anndata
    import pandas as pd
    import scipy.sparse

    _validate_thresholds(n_top_genes, min_genes, min_cells, max_mito_fraction)
    counts = scipy.sparse.csr_matrix(_raw_counts(adata, layer), dtype=np.float32)
    counts.eliminate_zeros()
    steps = {}
    obs = adata.obs.copy()
    var = adata.var.copy()
    obs["n_genes"] = np.diff(counts.indptr)
    obs["total_counts"] = np.asarray(counts.sum(axis=1)).reshape(-1)
    mito = var.index.str.startswith(MITO_PREFIXES)
    mito_counts = np.asarray(counts[:, np.flatnonzero(mito)].sum(axis=1)).reshape(-1)
    obs["mito_fraction"] = mito_counts / np.maximum(obs["total_counts"].to_numpy(), 1)

    few_genes = obs["n_genes"].to_numpy() < min_genes
    much_mito = obs["mito_fraction"].to_numpy() > max_mito_fraction
    keep_cells = ~(few_genes | much_mito)
    steps["quality_control"] = {
        "min_genes": min_genes, "cells_below_min_genes": int(few_genes.sum()),
        "max_mito_fraction": max_mito_fraction, "mito_genes_found": int(mito.sum()),
        "cells_above_max_mito_fraction": int(much_mito.sum()),
        "cells_removed": int((~keep_cells).sum()), "cells_kept": int(keep_cells.sum()),
    }
    _require_left(keep_cells.sum(), "cells", "min_genes or max_mito_fraction")
    counts, obs = counts[keep_cells], obs[keep_cells]

    cells_per_gene = np.bincount(counts.indices, minlength=counts.shape[1])
    keep_genes = cells_per_gene >= min_cells
    steps["rare_genes"] = {"min_cells": min_cells, "genes_removed": int((~keep_genes).sum()),
                           "genes_kept": int(keep_genes.sum())}
    _require_left(keep_genes.sum(), "genes", "min_cells")
    counts, var = counts[:, keep_genes], var[keep_genes]

    variable = _highly_variable(counts, n_top_genes)
    steps["highly_variable_genes"] = {"flavor": "seurat_v3", "n_top_genes": int(n_top_genes),
                                      "genes_removed": int((~variable).sum()),
                                      "genes_kept": int(variable.sum())}
    total_counts = obs["total_counts"].to_numpy()
    counts, var = counts[:, variable], var[variable]

    has_counts = np.diff(counts.indptr) > 0
    steps["empty_cells"] = {"cells_removed": int((~has_counts).sum()),
                            "cells_kept": int(has_counts.sum())}
    _require_left(has_counts.sum(), "cells", "n_top_genes")
    counts, obs, total_counts = counts[has_counts], obs[has_counts], total_counts[has_counts]

    # Normalized by each cell's total over all its genes, as scanpy's normalize_total before
    # the gene selection; the models take their library sizes from layers["counts"].
    normalized = scipy.sparse.csr_matrix(counts.multiply(1e4 / total_counts[:, None]))
    normalized.data = np.log1p(normalized.data)
    obs["library_size"] = np.asarray(counts.sum(axis=1), dtype=np.float32).reshape(-1)
    prepared = anndata.AnnData(X=normalized.astype(np.float32), obs=obs,
                               var=pd.DataFrame(var))
    prepared.layers["counts"] = counts
    prepared.uns["prepare"] = {"cells_in": int(adata.n_obs), "genes_in": int(adata.n_vars),
                               "cells_out": int(prepared.n_obs),
                               "genes_out": int(prepared.n_vars), "steps": steps}
    if verbose:
        print(summary(prepared))
    return prepared


def summary(adata) -> str:
    """The report of :func:`prepare` (from ``adata.uns["prepare"]``), one line per step."""
    record = adata.uns["prepare"]
    steps = record["steps"]
    qc, genes = steps["quality_control"], steps["rare_genes"]
    variable, empty = steps["highly_variable_genes"], steps["empty_cells"]
    return "\n".join([
        f"prepare: {record['cells_in']:,} cells x {record['genes_in']:,} genes in",
        f"  quality control: removed {qc['cells_removed']:,} cells ({qc['cells_below_min_genes']:,}"
        f" with fewer than {qc['min_genes']} genes, {qc['cells_above_max_mito_fraction']:,} with "
        f"more than {qc['max_mito_fraction']:.0%} mitochondrial counts; "
        f"{qc['mito_genes_found']} mitochondrial genes found)",
        f"  genes in fewer than {genes['min_cells']} cells: removed {genes['genes_removed']:,}",
        f"  highly variable genes (seurat_v3 on the counts): kept {variable['genes_kept']:,}, "
        f"removed {variable['genes_removed']:,}",
        f"  cells without counts on those genes: removed {empty['cells_removed']:,}",
        f"prepare: {record['cells_out']:,} cells x {record['genes_out']:,} genes out "
        "(counts in layers['counts'], log-normalized X)",
    ])


def _validate_thresholds(n_top_genes, min_genes, min_cells, max_mito_fraction) -> None:
    if int(n_top_genes) < 1:
        raise ValueError(f"n_top_genes must be at least 1, got {n_top_genes}.")
    if min_genes < 0 or min_cells < 0:
        raise ValueError(f"min_genes and min_cells must be >= 0, got {min_genes} and "
                         f"{min_cells}.")
    if not 0 <= max_mito_fraction <= 1:
        raise ValueError(f"max_mito_fraction must be in [0, 1], got {max_mito_fraction}.")


def _raw_counts(adata, layer: str | None):
    """The raw count matrix of ``adata``, checked on its stored values (sparse stays sparse)."""
    import scipy.sparse

    if layer is None:
        layer = "counts" if "counts" in adata.layers else None
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"This AnnData has no layers[{layer!r}] (its layers: "
                         f"{', '.join(map(repr, adata.layers.keys())) or 'none'}).")
    matrix = adata.X if layer is None else adata.layers[layer]
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    if matrix is None or adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"{where} is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    values = matrix.data if scipy.sparse.issparse(matrix) else np.asarray(matrix)
    if values.size and not (np.all(np.isfinite(values)) and values.min() >= 0
                            and np.all(values == np.round(values))):
        raise ValueError(
            f"{where} is not raw counts (it has negative, non-integer or NaN values: normalized "
            "or scaled data). prepare() needs the integer counts: pass layer= naming the layer "
            "that holds them, or read the original file (Cell Ranger's filtered_feature_bc_matrix)."
        )
    return matrix


def _highly_variable(counts, n_top_genes: int) -> np.ndarray:
    """Boolean mask of the ``n_top_genes`` most variable genes by scanpy's seurat_v3 flavour;
    all genes when there are no more than that."""
    import anndata
    import scanpy as sc

    if counts.shape[1] <= n_top_genes:
        return np.ones(counts.shape[1], dtype=bool)
    try:
        import skmisc  # noqa: F401  (seurat_v3's loess fit)
    except ImportError:
        raise ImportError("Highly variable genes (seurat_v3) need scikit-misc: "
                          "pip install scikit-misc.") from None
    ranking = sc.pp.highly_variable_genes(anndata.AnnData(counts), flavor="seurat_v3",
                                          n_top_genes=int(n_top_genes), inplace=False)
    return ranking["highly_variable"].to_numpy()


def _require_left(count: int, what: str, thresholds: str) -> None:
    if count == 0:
        raise ValueError(f"No {what} are left after this step; relax {thresholds}.")
