"""Gallery GANs against simple baselines (no strategy, float32, bundled or synthetic data).

- scGAN and cscGAN (Marouf et al. 2020) on the bundled PBMC cells (700 cells x 765 genes)
  against independent per-cell-type negative-binomial sampling of each gene: real-vs-generated
  classifier AUC (0.5 is ideal) and MMD in the real cells' 50 principal components, marker-gene
  means per cell type, and the within-type gene-gene correlation error.
- DNA-GAN (Killoran et al. 2017) on synthetic 50-base sequences, half with a planted NF-kB-like
  motif: the share of sequences with a motif hit (PWM scan) among random (the baseline), real,
  generated and designed (activation maximization on a motif classifier) sequences.

    python benchmarks/gallery_gans.py            # writes benchmarks/results/gallery_gans.json
    python benchmarks/gallery_gans.py --quick    # a few epochs: checks the pipeline only
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from timing import write_results  # noqa: E402  (benchmarks/timing.py)

FULL = {"scgan_epochs": 60, "dna_epochs": 30, "n_sequences": 1000, "design_steps": 200}
QUICK = {"scgan_epochs": 2, "dna_epochs": 2, "n_sequences": 256, "design_steps": 20}
SEED = 0


def single_cells(settings: dict) -> dict:
    """scGAN, cscGAN and the independent-NB baseline on the bundled PBMC cells."""
    import keras
    import tensorflow as tf

    from course import datasets
    from course.demos import gan_gallery

    keras.utils.set_random_seed(SEED)
    adata = datasets.load_pbmc(source="bundled")
    counts = datasets.counts(adata)
    labels, _ = datasets.labels(adata)
    start = time.perf_counter()
    gans, _ = gan_gallery.train_single_cell_gans(counts, labels, settings["scgan_epochs"],
                                                 tf.distribute.get_strategy(), SEED)
    train_s = time.perf_counter() - start
    scores = gan_gallery.score_single_cells(counts, labels, gans, seed=SEED)
    scores.pop("markers")
    table = {name: {key: value for key, value in s.items() if not key.endswith("_means")}
             for name, s in scores.items()}
    return {"n_cells": len(counts), "n_genes": counts.shape[1],
            "epochs": settings["scgan_epochs"], "train_s_both_gans": train_s, "models": table}


def sequences(settings: dict) -> dict:
    """DNA-GAN motif rates: random, real, generated and designed sequences."""
    import keras
    import tensorflow as tf

    from course.demos import gan_gallery

    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    results = gan_gallery.dna_gallery(settings["n_sequences"], 50, settings["dna_epochs"],
                                      tf.distribute.get_strategy(), SEED,
                                      design_steps=settings["design_steps"])
    return {"n_sequences": settings["n_sequences"], "length": 50,
            "epochs": settings["dna_epochs"], "design_steps": settings["design_steps"],
            "motif_rate": results["motif_rate"],
            "classifier_accuracy": results["classifier_accuracy"],
            "wall_s": time.perf_counter() - start}


def run(quick: bool = False) -> dict:
    """Run the benchmark, write its JSON atomically and return the results."""
    settings = QUICK if quick else FULL
    start, cpu_start = time.perf_counter(), time.process_time()
    results = {
        "benchmark": "gallery_gans", "quick": quick, "seed": SEED, "settings": settings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "single_cells": single_cells(settings), "sequences": sequences(settings),
    }
    results["wall_s"] = time.perf_counter() - start
    # CPU seconds of this process (all threads): on a shared machine the wall time also counts
    # the time spent waiting for a core.
    results["cpu_s"] = time.process_time() - cpu_start
    path = write_results(results, "gallery_gans", quick=quick)
    print_table(results)
    print(f"wrote {path}")
    return results


def print_table(results: dict) -> None:
    cells = results["single_cells"]
    print(f"PBMC ({cells['n_cells']} cells x {cells['n_genes']} genes), {cells['epochs']} epochs")
    print(f"{'model':<28}{'AUC':>7}{'MMD':>9}{'marker MAE':>12}{'gene-gene r err':>17}")
    for name, s in cells["models"].items():
        print(f"{name:<28}{s['auc']:>7.3f}{s['mmd']:>9.4f}{s['marker_mae']:>12.3f}"
              f"{s['correlation_error']:>17.3f}")
    dna = results["sequences"]
    print(f"DNA ({dna['n_sequences']} x {dna['length']} bases), motif rate:",
          ", ".join(f"{name} {rate:.3f}" for name, rate in dna["motif_rate"].items()))
    print(f"total {results['wall_s']:.0f} s wall, {results['cpu_s']:.0f} s CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs (pipeline check)")
    run(quick=parser.parse_args().quick)
