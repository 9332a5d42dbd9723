"""Deep Generative Decoder (Schuster & Krogh 2023) against the NB VAE and PCA on PBMC cell types.

The bundled PBMC cells (700 cells x 765 genes, 10 cell types), 10-D embeddings of the same cells
scored as in benchmarks/vae.py: the 15-neighbour kNN accuracy of the cell types (5-fold
stratified cross-validation) and the ARI/NMI of k-means clusters. The DGD's representations are
compared with the NB VAE's latent means (same decoder, same epochs and batch size) and with 10-D
PCA of log-normalized X; its mixture components (one per cell type) are also scored as a
clustering. Three seeds, mean +- sd.

    python benchmarks/gallery_dgd.py            # writes benchmarks/results/gallery_dgd.json
    python benchmarks/gallery_dgd.py --quick    # 5 epochs, one seed: gallery_dgd.quick.json
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
import numpy as np  # noqa: E402
from timing import write_results  # noqa: E402  (benchmarks/timing.py)

FULL = {"epochs": 200, "seeds": [0, 1, 2]}
QUICK = {"epochs": 5, "seeds": [0]}
BATCH_SIZE = 128
SCORES = ("knn_accuracy", "ari", "nmi")


def one_seed(counts, log_normalized, cell_types, n_types: int, epochs: int, seed: int) -> dict:
    """Train a DGD and an NB VAE with one seed; score them and PCA on the same cells."""
    from course import datasets, metrics
    from course.demos import dgd as demo

    cell_indices = np.arange(len(counts))
    keras.utils.set_random_seed(seed)
    dgd = demo.build_dgd(counts, n_components=n_types, seed=seed)
    start = time.perf_counter()
    dgd.fit(datasets.as_dataset((counts, cell_indices), batch_size=BATCH_SIZE, seed=seed),
            epochs=epochs, verbose=0)
    dgd_seconds = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    vae = demo.build_nb_vae(counts, seed=seed)
    start = time.perf_counter()
    vae.fit(datasets.as_dataset(counts, batch_size=BATCH_SIZE, seed=seed), epochs=epochs,
            verbose=0)
    vae_seconds = time.perf_counter() - start
    representations = dgd.get_representations()
    pca = metrics.pca_embedding(log_normalized, n_components=demo.LATENT_DIM, seed=seed)
    return {
        "seed": seed,
        "DGD": {**demo.embedding_scores(representations, cell_types, seed),
                "train_s": round(dgd_seconds, 1)},
        "NB VAE": {**demo.embedding_scores(vae.encode(counts), cell_types, seed),
                   "train_s": round(vae_seconds, 1)},
        "PCA": demo.embedding_scores(pca, cell_types, seed),
        "DGD components": demo.component_scores(dgd.assign_components(representations),
                                                cell_types),
    }


def summarize(runs: list[dict], name: str, keys) -> dict:
    values = {key: [run[name][key] for run in runs] for key in keys}
    return {key: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "runs": v}
            for key, v in values.items()}


def run(quick: bool = False) -> dict:
    """Measure, write benchmarks/results/gallery_dgd[.quick].json atomically, return the report."""
    from course import datasets

    settings = QUICK if quick else FULL
    adata = datasets.load_pbmc(source="bundled")
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata)
    start = time.perf_counter()
    runs = [one_seed(counts, adata.X, cell_types, len(names), settings["epochs"], seed)
            for seed in settings["seeds"]]
    scores = {name: summarize(runs, name, SCORES) for name in ("DGD", "NB VAE", "PCA")}
    scores["DGD components"] = summarize(runs, "DGD components", ("ari", "nmi"))
    for name in ("DGD", "NB VAE"):
        scores[name]["train_s"] = float(np.mean([r[name]["train_s"] for r in runs]))
    knn = {name: scores[name]["knn_accuracy"] for name in ("DGD", "NB VAE", "PCA")}
    rows = [
        {"model": "DGD", "metric": "PBMC kNN cell-type accuracy (10-D)",
         "value": knn["DGD"], "baseline": "NB VAE", "baseline_value": knn["NB VAE"]},
        {"model": "DGD", "metric": "PBMC kNN cell-type accuracy (10-D)",
         "value": knn["DGD"], "baseline": "PCA", "baseline_value": knn["PCA"]},
        {"model": "DGD mixture", "metric": "PBMC components vs cell types ARI",
         "value": scores["DGD components"]["ari"], "baseline": "k-means on NB VAE",
         "baseline_value": scores["NB VAE"]["ari"]},
    ]
    report = {
        "benchmark": "gallery_dgd", "quick": quick, "settings": settings,
        "data": {"name": "PBMC (bundled pbmc68k_reduced)", "n_cells": int(counts.shape[0]),
                 "n_genes": int(counts.shape[1]), "n_cell_types": len(names)},
        "protocol": "10-D embeddings of the same cells; kNN: 15 neighbours, 5-fold stratified "
                    "CV; ARI/NMI: k-means with one cluster per cell type",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "keras": keras.__version__},
        "scores": scores, "runs": runs, "rows": rows,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    path = write_results(report, "gallery_dgd", quick=quick)
    print_table(report)
    print(f"wrote {path}")
    return report


def print_table(report: dict) -> None:
    settings = report["settings"]
    print(f"PBMC ({report['data']['n_cells']} cells), {settings['epochs']} epochs, "
          f"seeds {settings['seeds']}")
    print(f"{'embedding':<18}" + "".join(f"{key:>20}" for key in SCORES))
    for name, scores in report["scores"].items():
        cells = "".join(f"{scores[k]['mean']:>11.3f} +- {scores[k]['sd']:.3f}" if k in scores
                        else f"{'-':>20}" for k in SCORES)
        print(f"{name:<18}{cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 epochs, one seed")
    run(quick=parser.parse_args().quick)
