# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own data: from a 10x folder to a latent space
#
# The labs train on the bundled PBMC cells. This notebook takes the path a self-learner takes
# with their own experiment: **read** the files Cell Ranger wrote, **prepare** them (quality
# control, highly variable genes, log-normalization), **train** the negative-binomial VAE on
# the sparse counts, look at a **UMAP** of its latent space, and **save** everything as an
# `.h5ad` for scanpy. Here the bundled cells stand in for your file: replace `path` with your
# `filtered_feature_bc_matrix/` folder, `.h5`, `.h5ad` or `.loom`.
#
# Nothing below densifies the whole matrix: the counts stay sparse (CSR) and the model makes
# one batch dense at a time, so a laptop trains on hundreds of thousands of cells.

# %%
import gzip
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.io
import scipy.sparse

from course import datasets, metrics, models

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # CI runs a short version.
EPOCHS = 3 if SMOKE else 150
keras.utils.set_random_seed(0)

# %% [markdown]
# ## A stand-in for your file
#
# We write the bundled PBMC counts as Cell Ranger does: a folder with `matrix.mtx.gz` (genes x
# cells), `features.tsv.gz` and `barcodes.tsv.gz`. The cell types go to a separate table, as
# an annotation of yours would.

# %%
pbmc = datasets.load_pbmc(source="bundled")
folder = Path(tempfile.mkdtemp()) / "filtered_feature_bc_matrix"
folder.mkdir()
counts = scipy.sparse.csr_matrix(pbmc.layers["counts"])
with gzip.open(folder / "matrix.mtx.gz", "wb") as file:
    scipy.io.mmwrite(file, counts.T.tocoo())
pd.DataFrame({"id": pbmc.var_names, "name": pbmc.var_names, "type": "Gene Expression"}).to_csv(
    folder / "features.tsv.gz", sep="\t", header=False, index=False)
pd.Series(pbmc.obs_names).to_csv(folder / "barcodes.tsv.gz", sep="\t", header=False, index=False)
annotation = pbmc.obs["cell_type"]
path = folder  # <- your file or folder here

# %% [markdown]
# ## Read
#
# `datasets.read` recognizes the format; the counts arrive as a sparse matrix, cells as rows.

# %%
adata = datasets.read(path)
adata.obs["cell_type"] = annotation.reindex(adata.obs_names).astype(str).to_numpy()
print(adata)
print(f"{adata.X.nnz / np.prod(adata.shape):.1%} of the entries are non-zero")

# %% [markdown]
# ## Prepare
#
# Quality control removes cells with few detected genes or many mitochondrial reads (dying
# cells), then genes seen in almost no cell; the `seurat_v3` method ranks genes by their
# variance on the counts and keeps the top ones. Every step reports what it removed, so check
# the thresholds against your data.

# %%
prepared = datasets.prepare(adata, n_top_genes=2000, min_genes=200, max_mito_fraction=0.2)
print(prepared)

# %% [markdown]
# ## Train the negative-binomial VAE on the sparse counts
#
# `fit` takes the AnnData itself: a count model reads `layers["counts"]` (choose another with
# `layer=`), streamed in shuffled batches.

# %%
vae = models.VAE(data_shape=(prepared.n_vars,), latent_dim=10, likelihood="nb", seed=0)
vae.compile(optimizer=keras.optimizers.Adam(1e-3))
history = vae.fit(prepared, epochs=EPOCHS, batch_size=128, verbose=0)
print(f"loss after {EPOCHS} epochs: {history.history['loss'][-1]:.1f} nats per cell")

# %% [markdown]
# ## The latent space, as scanpy expects it
#
# `add_embedding` writes the posterior means to `obsm["X_vae"]`; from there scanpy's
# neighbours, UMAP and clustering work as with `X_pca`.

# %%
datasets.add_embedding(prepared, vae)
labels, names = datasets.labels(prepared)
print(f"kNN cell-type accuracy of the latent space: "
      f"{metrics.latent_knn_accuracy(prepared.obsm['X_vae'], labels):.3f}")
sc.pp.neighbors(prepared, use_rep="X_vae", random_state=0)
sc.tl.umap(prepared, random_state=0)
sc.pl.umap(prepared, color="cell_type", title="NB VAE latent space (UMAP)", show=not SMOKE)

# %% [markdown]
# ## Save
#
# The `.h5ad` keeps the counts, the normalized values, the quality-control numbers, the latent
# space and the UMAP; the model goes to its own `.keras` file.

# %%
out = Path(tempfile.mkdtemp())
prepared.write_h5ad(out / "cells_with_vae.h5ad")
vae.save(out / "vae.keras")
print(sorted(p.name for p in out.iterdir()))
