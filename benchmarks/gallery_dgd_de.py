"""N-of-one differential expression with the DGD (Prada-Luengo et al. 2023) against a t-test
with controls: do a held-out cell type's known markers rank at the top?

The bundled PBMC cells (700 cells x 765 genes). For each held-out type with a marker module
(course.datasets.markers), as in the dgd-de-pbmc demo (course/demos/dgd_de.py: held_out_de): a
DGD trained on all other cells (200 epochs), MAP inference of each held-out cell, a two-sided
NB test of each gene against its decoded closest reference, genes ranked by the mean signed
-log10 p over the held-out cells; against Welch's t-test of the held-out type vs all other
cells (which needs those controls). Score: AUROC and average precision of the known markers
among all genes. Three seeds, mean +- sd (the t-test has no seed).

    python benchmarks/gallery_dgd_de.py          # writes benchmarks/results/gallery_dgd_de.json
    python benchmarks/gallery_dgd_de.py --quick  # 2 epochs, B cells, one seed (.quick.json)
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

FULL = {"epochs": 200, "seeds": [0, 1, 2], "held_out": ["CD19+ B", "CD56+ NK"]}
QUICK = {"epochs": 2, "seeds": [0], "held_out": ["CD19+ B"]}
SCORES = ("auroc", "average_precision")


def run(quick: bool = False) -> dict:
    """Measure, write benchmarks/results/gallery_dgd_de[.quick].json atomically, return it."""
    from course import datasets
    from course.demos import dgd_de as demo

    settings = QUICK if quick else FULL
    adata = datasets.load_pbmc(source="bundled")
    start = time.perf_counter()
    runs, scores, rows = [], {}, []
    for held_out in settings["held_out"]:
        for seed in settings["seeds"]:
            result = demo.held_out_de(adata, held_out, settings["epochs"], seed)
            runs.append({"held_out": held_out, "seed": seed, "ranking": result["ranking"]})
            print(f"{held_out}, seed {seed}: " + ", ".join(
                f"{name} AUROC {values['auroc']:.3f}"
                for name, values in result["ranking"].items()), flush=True)
        scores[held_out] = {
            method: {key: {"mean": float(np.mean(values)), "sd": float(np.std(values)),
                           "runs": values}
                     for key in SCORES
                     for values in [[r["ranking"][method][key] for r in runs
                                     if r["held_out"] == held_out]]}
            for method in demo.METHODS}
        for key in SCORES:
            rows.append({"model": "DGD N-of-one DE",
                         "metric": f"{held_out} marker {key.replace('_', ' ')} (no controls; "
                                   "higher is better)",
                         "value": scores[held_out]["DGD, no controls"][key],
                         "baseline": "t-test with controls",
                         "baseline_value": scores[held_out]["t-test with controls"][key]})
    report = {
        "benchmark": "gallery_dgd_de", "quick": quick, "settings": settings,
        "data": {"name": "PBMC (bundled pbmc68k_reduced)", "n_cells": int(adata.n_obs),
                 "n_genes": int(adata.n_vars)},
        "protocol": "DGD trained without the held-out type; per held-out cell: MAP "
                    f"representation ({demo.INFERENCE_STEPS} Adam steps), two-sided NB p-value "
                    "per gene; genes ranked by mean signed -log10 p; vs Welch t on log1p X, "
                    "held-out type vs all other cells; score: AUROC/AP of the type's markers",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "keras": keras.__version__},
        "scores": scores, "runs": runs, "rows": rows,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    path = write_results(report, "gallery_dgd_de", quick=quick)
    for held_out, methods in scores.items():
        for method, values in methods.items():
            print(f"{held_out:<10}{method:<22}" + "".join(
                f"  {key} {values[key]['mean']:.3f} +- {values[key]['sd']:.3f}"
                for key in SCORES))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, one seed")
    run(quick=parser.parse_args().quick)
