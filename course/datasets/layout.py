"""The toolkit's AnnData layout for single-cell counts, and the helpers that read it back.

Every count data set (PBMC, the synthetic cells) comes as an AnnData with the integer counts in
``layers["counts"]``, log-normalized ``X`` (log1p of counts per 10,000), ``obs["cell_type"]``
(categorical) and ``obs["library_size"]``. Models take :func:`counts` and :func:`labels`.
"""

from __future__ import annotations

import numpy as np


def counts_anndata(counts: np.ndarray, cell_types, obs_names=None, var_names=None):
    """An AnnData in the toolkit's layout built from a cells x genes count matrix.

    Cells without a single count are dropped (they have no library size to normalize by).
    """
    import anndata
    import pandas as pd

    counts = np.asarray(counts)
    library_size = counts.sum(axis=1)
    if np.any(library_size == 0):
        keep = library_size > 0
        counts, library_size = counts[keep], library_size[keep]
        cell_types = np.asarray(cell_types)[keep]
        obs_names = None if obs_names is None else np.asarray(obs_names)[keep]
    normalized = np.log1p(counts / library_size[:, None] * 1e4).astype(np.float32)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(np.asarray(cell_types).astype(str)),
            "library_size": library_size.astype(np.float32),
        },
        index=[str(i) for i in (obs_names if obs_names is not None else range(len(counts)))],
    )
    var = pd.DataFrame(
        index=[str(g) for g in (var_names if var_names is not None else range(counts.shape[1]))]
    )
    adata = anndata.AnnData(X=normalized, obs=obs, var=var)
    adata.layers["counts"] = counts.astype(np.int32)
    return adata


def counts(adata) -> np.ndarray:
    """The raw counts of an AnnData as a dense float32 array (from ``layers["counts"]``)."""
    if "counts" not in adata.layers:
        raise ValueError(
            "This AnnData has no raw counts in adata.layers['counts']. Count likelihoods need "
            "the integer counts: put them there (adata.layers['counts'] = raw_counts) or load "
            "the data with course.datasets.load_pbmc()."
        )
    matrix = adata.layers["counts"]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    return matrix.astype(np.float32)


def labels(adata, key: str = "cell_type") -> tuple[np.ndarray, list[str]]:
    """Integer codes and names of a categorical ``obs`` column (default the cell type)."""
    if key not in adata.obs:
        raise ValueError(
            f"This AnnData has no obs[{key!r}] column (it has: "
            f"{', '.join(map(str, adata.obs.columns)) or 'none'}). Add the labels there first."
        )
    categorical = adata.obs[key].astype("category")
    return categorical.cat.codes.to_numpy().astype(np.int64), [
        str(c) for c in categorical.cat.categories
    ]


def add_embedding(adata, model_or_embedding, key: str | None = None, layer: str | None = None):
    """Put a latent space into ``adata.obsm`` (as scanpy's ``X_pca``, ``X_umap``), in place.

    Args:
        model_or_embedding: a trained model with ``encode`` (its latent means of ``adata``'s
            cells: VAE, LDVAE, scGen, DCA) or an array with one row per cell (e.g. a DGD's
            ``get_representations()``).
        key: the obsm key; default ``X_<model class name in lower case>``, e.g. ``X_vae``
            (needed for an array).
        layer: the layer the model reads (default: its own choice, see ``model_data``).

    Returns:
        The key written, e.g. "X_vae".
    """
    if hasattr(model_or_embedding, "encode"):
        embedding = model_or_embedding.encode(adata, layer=layer)
        key = key or f"X_{type(model_or_embedding).__name__.lower()}"
    else:
        if key is None:
            raise ValueError("add_embedding(adata, array) needs key=, e.g. key='X_dgd'.")
        embedding = np.asarray(model_or_embedding)
    if embedding.ndim != 2 or embedding.shape[0] != adata.n_obs:
        raise ValueError(f"The embedding must have one row per cell ({adata.n_obs}), got shape "
                         f"{embedding.shape}.")
    adata.obsm[key] = embedding
    return key
