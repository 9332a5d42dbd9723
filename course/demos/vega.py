"""The VEGA demo: gene-module activities of PBMC cells, read from a VAE with a masked decoder.

VEGA (Seninge et al. 2021) on the PBMC counts with nine marker-gene modules of the blood cell
types (``course.datasets.markers.PBMC_MARKERS``, with their sources) and one unannotated node:
10 latent variables, as the 10-D NB VAE it is compared with. The demo shows the mean activity
of each module in each annotated cell type (a labelled heat map) and scores the latent space by
the 15-neighbour kNN accuracy of the cell types (5-fold cross-validated), against the NB VAE's
latent means and 10-D PCA of log-normalized X on the same cells.
"""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo
from course.demos.dgd import BATCH_SIZE, HIDDEN_UNITS, build_nb_vae, embedding_scores


def build_vega(gene_names, seed: int):
    """A compiled VEGA with the PBMC marker modules and one unannotated node."""
    import keras

    from course import models
    from course.datasets.markers import PBMC_MARKERS

    vega = models.VEGA(list(gene_names), PBMC_MARKERS, n_unannotated=1,
                       hidden_units=HIDDEN_UNITS, seed=seed)
    vega.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vega


def activity_by_type(activities, cell_types, n_types: int) -> np.ndarray:
    """Mean activity of each latent variable (columns) in each cell type (rows)."""
    return np.stack([activities[cell_types == t].mean(axis=0) for t in range(n_types)])


def own_module_is_highest(table, type_names, module_names) -> dict:
    """For each cell type with a marker module: is that type the one where the module is most
    active? (A check that the activities mean what their names say.)"""
    from course.datasets.markers import PBMC_CELL_TYPE_MODULES

    result = {}
    for type_index, name in enumerate(type_names):
        module = PBMC_CELL_TYPE_MODULES.get(str(name))
        if module is not None:
            column = list(module_names).index(module)
            result[str(name)] = bool(int(np.argmax(table[:, column])) == type_index)
    return result


def activity_heatmap(table, type_names, module_names, title: str):
    """Heat map of module activity (columns) by cell type (rows), each module z-scored across
    the cell types, with the raw mean activity written in each cell."""
    import matplotlib.pyplot as plt

    centred = (table - table.mean(axis=0)) / (table.std(axis=0) + 1e-9)
    figure, axis = plt.subplots(figsize=(0.8 * len(module_names) + 4, 0.45 * len(type_names)
                                         + 2.5))
    image = axis.imshow(centred, cmap="RdBu_r", vmin=-2.5, vmax=2.5, aspect="auto")
    for (row, column), value in np.ndenumerate(table):
        axis.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=6,
                  color="white" if abs(centred[row, column]) > 1.6 else "black")
    axis.set_xticks(range(len(module_names)), module_names, rotation=45, ha="right")
    axis.set_yticks(range(len(type_names)), type_names)
    axis.set_xlabel("VEGA latent variable (gene module)")
    axis.set_ylabel("annotated cell type")
    figure.colorbar(image, ax=axis, label="mean activity, z-scored across cell types")
    axis.set_title(title)
    figure.tight_layout()
    return figure


def knn_bars(scores: dict, title: str):
    """Bar chart of the kNN cell-type accuracy of each embedding (higher is better)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    names = list(scores)
    values = [scores[name]["knn_accuracy"] for name in names]
    axis.bar(names, values, color=["tab:red", "tab:blue", "tab:gray"][: len(names)])
    for position, value in enumerate(values):
        axis.text(position, value + 0.01, f"{value:.3f}", ha="center")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("kNN cell-type accuracy (higher is better)")
    axis.set_title(title)
    figure.tight_layout()
    return figure


@demo("vega-pbmc", "VEGA on PBMC counts: marker-module activity by cell type, kNN vs NB VAE "
                   "and PCA", epochs=200, data="pbmc")
def vega_pbmc(run: Run) -> dict:
    from course import datasets, metrics, plots
    from course.demos import data_source_name

    adata = datasets.load_pbmc(source=run.source)
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata, "cell_type")
    with run.strategy.scope():
        vega = build_vega(adata.var_names, seed=run.seed)
        vae = build_nb_vae(counts, seed=run.seed)
    history = run.fit(vega, run.dataset(counts, BATCH_SIZE), len(counts), epochs=run.epochs)
    run.save_model(vega)
    run.save_figure(plots.history(history, title="VEGA on PBMC counts: negative ELBO",
                                  units="nats per cell"), "history.png")
    print("  training the NB VAE on the same cells for comparison")
    vae.fit(run.dataset(counts, BATCH_SIZE), epochs=run.epochs, verbose=0)
    activities = vega.encode(counts)
    latent_dim = vega.latent_dim
    embeddings = {"VEGA modules": activities, "NB VAE latent": vae.encode(counts),
                  "PCA": metrics.pca_embedding(adata.X, latent_dim, seed=run.seed)}
    scores = {name: embedding_scores(z, cell_types, run.seed) for name, z in embeddings.items()}
    table = activity_by_type(activities, cell_types, len(names))
    own_highest = own_module_is_highest(table, names, vega.module_names)
    for name, values in scores.items():
        print(f"  {name}: kNN cell-type accuracy {values['knn_accuracy']:.3f}")
    print(f"  cell types whose own marker module is most active in them: "
          f"{sum(own_highest.values())} of {len(own_highest)}")
    run.save_figure(activity_heatmap(
        table, [str(n) for n in names], vega.module_names,
        title="VEGA on PBMC: mean module activity per cell type"), "module_activity.png")
    run.save_figure(knn_bars(scores, f"Cell types from {latent_dim}-D embeddings of the same "
                                     "cells"), "knn_accuracy.png")
    weights = vega.module_weights()
    top_genes = {module: [str(adata.var_names[g]) for g in np.argsort(-weights[:, k])[:5]
                          if weights[g, k] > 0]
                 for k, module in enumerate(vega.module_names)}
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC", "source": data_source_name("pbmc", run.source),
              "n_cells": int(counts.shape[0]), "n_genes": int(counts.shape[1]),
              "modules": {module: int(vega.mask[k].sum())
                          for k, module in enumerate(vega.module_names)}},
        metrics={"vega": scores["VEGA modules"], "nb_vae": scores["NB VAE latent"],
                 "pca": scores["PCA"], "own_module_most_active": own_highest,
                 "module_top_genes": top_genes,
                 "final_loss": float(history.history["loss"][-1])},
    )
