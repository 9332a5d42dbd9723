"""The Deep Generative Decoder demo: DGD representations of PBMC cells, its mixture components
against the cell types, and its representations against the NB VAE's latent space and PCA on
the same cells (the protocol of benchmarks/vae.py: 10-D embeddings, 15-neighbour kNN accuracy
of the cell types, 5-fold cross-validated)."""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo

BATCH_SIZE = 128
LATENT_DIM = 10
HIDDEN_UNITS = (128,)  # the decoder of the NB VAE it is compared with


def build_dgd(counts: np.ndarray, n_components: int, seed: int):
    """A compiled DGD for these cells (default optimizers: Adam 1e-3, Adagrad 0.1)."""
    from course import models

    dgd = models.DGD(n_genes=counts.shape[1], n_cells=counts.shape[0], latent_dim=LATENT_DIM,
                     n_components=n_components, hidden_units=HIDDEN_UNITS, seed=seed)
    dgd.compile()
    return dgd


def build_nb_vae(counts: np.ndarray, seed: int):
    """The NB VAE of the vae-pbmc demo and benchmarks/vae.py, compiled."""
    import keras

    from course import models

    vae = models.VAE(data_shape=(counts.shape[1],), latent_dim=LATENT_DIM,
                     hidden_units=HIDDEN_UNITS, likelihood="nb", seed=seed)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vae


def embedding_scores(embedding, cell_types, seed: int) -> dict:
    """kNN cell-type accuracy (15 neighbours, 5 folds) and k-means ARI/NMI of an embedding."""
    from course import metrics

    return {"knn_accuracy": metrics.latent_knn_accuracy(embedding, cell_types, k=15, cv=5),
            **metrics.clustering_scores(embedding, cell_types, seed=seed)}


def component_scores(components, cell_types) -> dict:
    """Agreement of the DGD's mixture components (a clustering) with the cell types."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"ari": float(adjusted_rand_score(cell_types, components)),
            "nmi": float(normalized_mutual_info_score(cell_types, components)),
            "components_used": int(len(np.unique(components)))}


@demo("dgd-pbmc", "Deep Generative Decoder on PBMC counts: components vs cell types, "
            "kNN vs NB VAE and PCA", epochs=200, data="pbmc")
def dgd_pbmc(run: Run) -> dict:
    from course import datasets, metrics, plots
    from course.demos import data_source_name

    adata = run.single_cell()
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata, "cell_type")
    cell_indices = np.arange(len(counts))
    with run.strategy.scope():
        dgd = build_dgd(counts, n_components=len(names), seed=run.seed)
        vae = build_nb_vae(counts, seed=run.seed)
    history = run.fit(dgd, run.dataset((counts, cell_indices), BATCH_SIZE), len(counts),
                      epochs=run.epochs)
    run.save_model(dgd)
    run.save_figure(plots.history(history, title="DGD on PBMC counts: negative log posterior",
                                  units="nats per cell"), "history.png")
    print("  training the NB VAE on the same cells for comparison")
    vae.fit(run.dataset(counts, BATCH_SIZE), epochs=run.epochs, verbose=0)
    representations = dgd.get_representations()
    embeddings = {"DGD representations": representations, "NB VAE latent": vae.encode(counts),
                  "PCA of log-normalized X": metrics.pca_embedding(adata.X, LATENT_DIM,
                                                                   seed=run.seed)}
    scores = {name: embedding_scores(z, cell_types, run.seed) for name, z in embeddings.items()}
    components = dgd.assign_components(representations)
    mixture = component_scores(components, cell_types)
    # New-cell inference, tried on the training cells' counts: does each cell come back to
    # the mixture component of its trained representation?
    inferred = dgd.infer(counts)
    mixture["infer_same_component"] = float(np.mean(dgd.assign_components(inferred)
                                                    == components))
    for name, values in scores.items():
        print(f"  {name}: kNN cell-type accuracy {values['knn_accuracy']:.3f}")
    print(f"  DGD mixture components vs cell types: ARI {mixture['ari']:.3f}")
    panels = {f"{name} ({LATENT_DIM}-D)\nkNN accuracy {values['knn_accuracy']:.3f}":
              embeddings[name] for name, values in scores.items()}
    run.save_figure(plots.umap_comparison(panels, cell_types, names, seed=run.seed,
                                          title="PBMC cells by type: DGD vs NB VAE vs PCA "
                                                "(UMAPs of the same cells)",
                                          legend_title="cell type"), "umap_dgd_vae_pca.png")
    run.save_figure(plots.mixture_components_vs_labels(
        components, cell_types, names,
        title=f"DGD mixture components vs cell types (ARI {mixture['ari']:.2f})"),
        "components_vs_cell_types.png")
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC", "source": data_source_name("pbmc", run.source),
              "n_cells": int(counts.shape[0]), "n_genes": int(counts.shape[1])},
        metrics={"dgd": scores["DGD representations"], "nb_vae": scores["NB VAE latent"],
                 "pca": scores["PCA of log-normalized X"], "dgd_components": mixture,
                 "final_loss": float(history.history["loss"][-1])},
    )
