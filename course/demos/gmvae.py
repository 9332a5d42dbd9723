"""The mixture-VAE demo: do scVAE's Gaussian-mixture components find the PBMC cell types?

For each of three seeds, on the same cells: a GMVAE (Grønbech et al. 2020) with one component
per annotated cell type, clustered by argmax q(y|x); k-means (one cluster per cell type) on the
latent means of the NB VAE; and the mixture components of the DGD (Schuster & Krogh 2023), each
cell assigned to its most probable component. Each clustering is scored by its adjusted Rand
index (ARI) with the cell types; the demo reports mean +- sd over the seeds.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.demos import Run, demo
from course.demos.dgd import BATCH_SIZE, HIDDEN_UNITS, LATENT_DIM, build_dgd, build_nb_vae

N_SEEDS = 3
METHODS = ("GMVAE components", "k-means on NB VAE latent", "DGD components")


def build_gmvae(counts: np.ndarray, n_components: int, seed: int):
    """A compiled GMVAE with the NB VAE's encoder/decoder widths and latent size."""
    import keras

    from course import models

    gmvae = models.GMVAE(data_shape=(counts.shape[1],), n_components=n_components,
                         latent_dim=LATENT_DIM, hidden_units=HIDDEN_UNITS, seed=seed)
    gmvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return gmvae


def one_seed(counts, cell_types, n_types: int, epochs: int, seed: int, strategy=None,
             verbose: int = 0) -> dict:
    """Train the three models with one seed; their clusterings of the cells and ARIs."""
    import keras
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from course import datasets
    from course.callbacks import KLWarmup

    def data(arrays):
        replicas = 1 if strategy is None else strategy.num_replicas_in_sync
        return datasets.as_dataset(arrays, batch_size=BATCH_SIZE, seed=seed,
                                   drop_remainder=replicas > 1)

    keras.utils.set_random_seed(seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        gmvae = build_gmvae(counts, n_types, seed)
        vae = build_nb_vae(counts, seed)
        dgd = build_dgd(counts, n_types, seed)
    # scVAE's warm-up: the KL terms rise from 0 to full weight over the first half of training
    # (without it, measured on these cells, most components are left empty).
    warmup = KLWarmup(max(1, epochs // 2))
    history = gmvae.fit(data(counts), epochs=epochs, verbose=verbose, callbacks=[warmup])
    vae.fit(data(counts), epochs=epochs, verbose=0)
    dgd.fit(data((counts, np.arange(len(counts)))), epochs=epochs, verbose=0)
    clusters = {
        "GMVAE components": gmvae.cluster(counts),
        "k-means on NB VAE latent": KMeans(n_clusters=n_types, n_init=10, random_state=seed)
        .fit_predict(vae.encode(counts)),
        "DGD components": dgd.assign_components(dgd.get_representations()),
    }
    return {"seed": seed, "history": history, "model": gmvae, "clusters": clusters,
            "ari": {name: float(adjusted_rand_score(cell_types, c))
                    for name, c in clusters.items()},
            "clusters_used": {name: int(len(np.unique(c))) for name, c in clusters.items()}}


def summary(runs: list[dict], key: str = "ari") -> dict:
    """Mean, sd and the per-seed values of ``key`` for each method."""
    return {name: {"mean": float(np.mean([r[key][name] for r in runs])),
                   "sd": float(np.std([r[key][name] for r in runs])),
                   "runs": [r[key][name] for r in runs]} for name in METHODS}


def ari_bars(scores: dict, title: str):
    """Mean ARI of each clustering with one sd error bar and the single seeds as dots."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    for position, values in enumerate(scores.values()):
        axis.bar(position, values["mean"], yerr=values["sd"], capsize=5,
                 color=["tab:red", "tab:blue", "tab:green"][position])
        axis.scatter([position] * len(values["runs"]), values["runs"], color="black", s=12,
                     zorder=3, label="one seed" if position == 0 else None)
        axis.text(position, values["mean"] + values["sd"] + 0.02, f"{values['mean']:.2f}",
                  ha="center")
    axis.set_xticks(range(len(scores)), [name.replace(" on ", "\non ") for name in scores])
    axis.set_ylim(0, 1)
    axis.set_ylabel("ARI with the cell types (higher is better)")
    axis.legend(loc="upper right")
    axis.set_title(title)
    figure.tight_layout()
    return figure


@demo("gmvae-pbmc", "scVAE's mixture VAE on PBMC counts: cluster ARI vs k-means on the NB VAE "
                    "and the DGD's components, 3 seeds", epochs=200, data="pbmc")
def gmvae_pbmc(run: Run) -> dict:
    from course import datasets, plots
    from course.demos import data_source_name

    adata = run.single_cell()
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata, "cell_type")
    runs = []
    for seed in range(run.seed, run.seed + N_SEEDS):
        print(f"  seed {seed}: training the GMVAE, the NB VAE and the DGD")
        runs.append(one_seed(counts, cell_types, len(names), run.epochs, seed, run.strategy,
                             verbose=run.verbose if seed == run.seed else 0))
    first = runs[0]
    run.save_model(first["model"])
    run.save_figure(plots.history(first["history"], title=f"GMVAE on PBMC counts (seed "
                                  f"{run.seed}): negative ELBO", units="nats per cell"),
                    "history.png")
    scores = summary(runs)
    for name, values in scores.items():
        print(f"  {name}: ARI {values['mean']:.3f} +- {values['sd']:.3f} over {N_SEEDS} seeds")
    run.save_figure(ari_bars(scores, f"Clusters vs PBMC cell types, {N_SEEDS} seeds "
                                     f"({run.epochs} epochs of training)"), "ari.png")
    gmvae_ari = first["ari"]["GMVAE components"]
    run.save_figure(plots.mixture_components_vs_labels(
        first["clusters"]["GMVAE components"], cell_types, names,
        title=f"GMVAE components vs cell types (seed {run.seed}, ARI {gmvae_ari:.2f})"),
        "components_vs_cell_types.png")
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC", "source": data_source_name("pbmc", run.source),
              "n_cells": int(counts.shape[0]), "n_genes": int(counts.shape[1]),
              "n_cell_types": len(names)},
        metrics={"seeds": list(range(run.seed, run.seed + N_SEEDS)), "ari": scores,
                 "clusters_used": summary(runs, "clusters_used"),
                 "final_loss": float(first["history"].history["loss"][-1])},
    )
