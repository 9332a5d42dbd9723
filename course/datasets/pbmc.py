"""Peripheral blood mononuclear cells: 10x PBMC 3k through scanpy, or scanpy's bundled cells.

``source="auto"`` takes PBMC 3k (2,638 annotated cells) when it is cached or downloadable, else
scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes, 10 cell types) with one warning.
The bundled file keeps only log-normalized values, ``raw.X = log1p(counts / n_counts * 1e4)``;
its integer counts are recovered exactly by :func:`recover_pbmc68k_counts`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from course.datasets import cache
from course.datasets.layout import counts_anndata

PBMC_HOST = "falexwolf.de"  # scanpy's pbmc3k() counts; the annotation comes from GitHub.
PBMC_SOURCES = ("auto", "pbmc3k", "bundled")
PBMC3K_GENES = 2000
PBMC3K_FILES = ("pbmc3k_raw.h5ad", "pbmc3k_processed.h5ad")
FETCH_COMMAND = "python datasets.py fetch pbmc"
FALLBACK_MESSAGE = (
    "PBMC 3k is not cached and there is no network: using scanpy's bundled pbmc68k_reduced "
    "(700 cells x 765 genes, 10 cell types) with its raw counts recovered. To get PBMC 3k, run "
    f"`{FETCH_COMMAND}` on a machine with network access."
)


def recover_pbmc68k_counts(adata) -> np.ndarray:
    """Exact integer counts of scanpy's ``pbmc68k_reduced`` from its ``raw.X``.

    ``raw.X`` holds ``log1p(counts / n_counts * 1e4)``, so ``counts = expm1(raw.X) * n_counts /
    1e4`` up to float32 rounding of the stored values; rounding gives the integers back.
    """
    raw = adata.raw.X
    raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    n_counts = adata.obs["n_counts"].to_numpy(np.float64)[:, None]
    return np.rint(np.expm1(raw.astype(np.float64)) * n_counts / 1e4).astype(np.int64)


def _bundled_pbmc():
    import scanpy as sc

    reduced = sc.datasets.pbmc68k_reduced()
    counts = recover_pbmc68k_counts(reduced)
    return counts_anndata(
        counts, reduced.obs["bulk_labels"], reduced.obs_names, reduced.raw.var_names
    )


def _cache_folder() -> Path:
    return cache.data_dir() / "scanpy"


def _check_h5ad_file(path: Path) -> None:
    """Open the cached file far enough to know it is an HDF5 file (raises if it is not)."""
    import h5py

    with h5py.File(path, "r") as file:
        list(file.keys())


def _pbmc3k_cached() -> bool:
    return all(
        cache.readable_cache(_cache_folder() / name, _check_h5ad_file, FETCH_COMMAND)
        for name in PBMC3K_FILES
    )


def fetch_pbmc3k():
    """Download (once) the 10x PBMC 3k counts and their cell-type annotation with scanpy's own
    loaders; return the two AnnData objects (raw counts, processed with ``louvain`` labels)."""
    import scanpy as sc

    sc.settings.datasetdir = _cache_folder()
    return sc.datasets.pbmc3k(), sc.datasets.pbmc3k_processed()


def _pbmc3k():
    """The annotated PBMC 3k cells, reduced to their most variable genes."""
    import scanpy as sc

    raw, processed = fetch_pbmc3k()
    raw = raw[processed.obs_names].copy()
    sc.pp.filter_genes(raw, min_cells=3)
    counts = np.asarray(raw.X.toarray() if hasattr(raw.X, "toarray") else raw.X)
    full = counts_anndata(counts, processed.obs["louvain"], raw.obs_names, raw.var_names)
    sc.pp.highly_variable_genes(full, n_top_genes=PBMC3K_GENES)
    variable = full.var["highly_variable"].to_numpy()
    return counts_anndata(
        full.layers["counts"][:, variable],
        processed.obs["louvain"],
        full.obs_names,
        full.var_names[variable],
    )


def pbmc_source(source: str = "auto") -> str:
    """Where ``load_pbmc(source=...)`` would take the cells from now: "cache", "download" or
    "bundled"."""
    cache.validate_choice(source, PBMC_SOURCES, "PBMC source")
    if source == "bundled":
        return "bundled"
    if _pbmc3k_cached():
        return "cache"
    if source == "pbmc3k" or cache.network_available(PBMC_HOST):
        return "download"
    return "bundled"


def load_pbmc(source: str = "auto"):
    """Load peripheral blood mononuclear cells as an AnnData.

    Returns an AnnData with integer counts in ``layers["counts"]``, log-normalized ``X``
    (log1p of counts per 10,000), ``obs["cell_type"]`` and ``obs["library_size"]``.

    Args:
        source: "pbmc3k" (10x PBMC 3k, 2,638 annotated cells, 2,000 highly variable genes,
            downloaded once with scanpy and cached), "bundled" (scanpy's pbmc68k_reduced: 700
            cells x 765 genes, 10 cell types) or "auto" (PBMC 3k when cached or downloadable,
            else the bundled cells with one warning).
    """
    if cache.use_bundled(source, pbmc_source(source), FALLBACK_MESSAGE):
        return _bundled_pbmc()
    return _pbmc3k()
