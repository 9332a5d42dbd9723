"""VEGA (Seninge et al. 2021) against the NB VAE and PCA: kNN cell-type accuracy on PBMC.

The bundled PBMC cells (700 cells x 765 genes, 10 cell types). VEGA has nine marker-gene modules
(course.datasets.markers.PBMC_MARKERS) and one unannotated node: a 10-D latent space of module
activities, compared with the 10-D latent means of the NB VAE (same encoder, epochs and batch
size) and 10-D PCA of log-normalized X, by the 15-neighbour kNN accuracy of the cell types
(5-fold stratified cross-validation), as in benchmarks/gallery_dgd.py. Also: for how many of
the cell types with a marker module that module is most active in them. Three seeds,
mean +- sd.

    python benchmarks/gallery_vega.py            # writes benchmarks/results/gallery_vega.json
    python benchmarks/gallery_vega.py --quick    # 2 epochs, one seed: gallery_vega.quick.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from gallery_dgd import summarize  # noqa: E402
from timing import write_results  # noqa: E402  (benchmarks/timing.py)

FULL = {"epochs": 200, "seeds": [0, 1, 2]}
QUICK = {"epochs": 2, "seeds": [0]}
SCORES = ("knn_accuracy", "ari", "nmi")


def one_seed(adata, epochs: int, seed: int) -> dict:
    """Train VEGA and the NB VAE with one seed; score them and PCA on the same cells."""
    from course import datasets, metrics
    from course.demos import dgd as dgd_demo
    from course.demos import vega as demo

    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata)
    keras.utils.set_random_seed(seed)
    vega = demo.build_vega(adata.var_names, seed)
    start = time.perf_counter()
    vega.fit(datasets.as_dataset(counts, batch_size=dgd_demo.BATCH_SIZE, seed=seed),
             epochs=epochs, verbose=0)
    vega_seconds = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    vae = dgd_demo.build_nb_vae(counts, seed)
    vae.fit(datasets.as_dataset(counts, batch_size=dgd_demo.BATCH_SIZE, seed=seed),
            epochs=epochs, verbose=0)
    activities = vega.encode(counts)
    table = demo.activity_by_type(activities, cell_types, len(names))
    own = demo.own_module_is_highest(table, names, vega.module_names)
    return {
        "seed": seed,
        "VEGA": {**dgd_demo.embedding_scores(activities, cell_types, seed),
                 "own_module_most_active": int(sum(own.values())),
                 "train_s": round(vega_seconds, 1)},
        "NB VAE": dgd_demo.embedding_scores(vae.encode(counts), cell_types, seed),
        "PCA": dgd_demo.embedding_scores(
            metrics.pca_embedding(adata.X, vega.latent_dim, seed=seed), cell_types, seed),
        "own_module_types": sorted(own),
    }


def run(quick: bool = False) -> dict:
    """Measure, write benchmarks/results/gallery_vega[.quick].json atomically, return it."""
    from course import datasets

    settings = QUICK if quick else FULL
    adata = datasets.load_pbmc(source="bundled")
    start = time.perf_counter()
    runs = [one_seed(adata, settings["epochs"], seed) for seed in settings["seeds"]]
    scores = {name: summarize(runs, name, SCORES) for name in ("VEGA", "NB VAE", "PCA")}
    scores["VEGA"].update(summarize(runs, "VEGA", ("own_module_most_active",)))
    knn = {name: scores[name]["knn_accuracy"] for name in scores}
    metric = "PBMC kNN cell-type accuracy (10-D; higher is better)"
    rows = [{"model": "VEGA", "metric": metric, "value": knn["VEGA"], "baseline": baseline,
             "baseline_value": knn[baseline]} for baseline in ("NB VAE", "PCA")]
    report = {
        "benchmark": "gallery_vega", "quick": quick, "settings": settings,
        "data": {"name": "PBMC (bundled pbmc68k_reduced)", "n_cells": int(adata.n_obs),
                 "n_genes": int(adata.n_vars)},
        "protocol": "10-D embeddings of the same cells; kNN: 15 neighbours, 5-fold stratified "
                    "CV; ARI/NMI: k-means with one cluster per cell type; own_module_most_"
                    f"active: of the {len(runs[0]['own_module_types'])} cell types with a "
                    "marker module, how many have the highest mean activity of it",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "keras": keras.__version__},
        "scores": scores, "runs": runs, "rows": rows,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    path = write_results(report, "gallery_vega", quick=quick)
    for name, values in scores.items():
        print(f"{name:<8}" + "".join(f"  {key} {values[key]['mean']:.3f} +- "
                                     f"{values[key]['sd']:.3f}" for key in values))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, one seed")
    run(quick=parser.parse_args().quick)
