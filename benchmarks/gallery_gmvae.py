"""scVAE's mixture VAE (Grønbech et al. 2020) against k-means on the NB VAE and the DGD's
components: cluster agreement with the PBMC cell types (ARI).

The bundled PBMC cells (700 cells x 765 genes, 10 cell types), the same cells for the three
clusterings, one cluster per cell type: the GMVAE's argmax q(y|x) (trained with a KL warm-up
over the first half of the epochs), k-means on the NB VAE's 10-D latent means, and each cell's
most probable component of a DGD's mixture prior. The runs are those of the gmvae-pbmc demo
(course/demos/gmvae.py: one_seed). Three seeds, mean +- sd.

    python benchmarks/gallery_gmvae.py           # writes benchmarks/results/gallery_gmvae.json
    python benchmarks/gallery_gmvae.py --quick   # 2 epochs, one seed: gallery_gmvae.quick.json
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
from timing import write_results  # noqa: E402  (benchmarks/timing.py)

FULL = {"epochs": 200, "seeds": [0, 1, 2]}
QUICK = {"epochs": 2, "seeds": [0]}


def run(quick: bool = False) -> dict:
    """Measure, write benchmarks/results/gallery_gmvae[.quick].json atomically, return it."""
    from course import datasets
    from course.demos import gmvae as demo

    settings = QUICK if quick else FULL
    adata = datasets.load_pbmc(source="bundled")
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata)
    start = time.perf_counter()
    runs = []
    for seed in settings["seeds"]:
        result = demo.one_seed(counts, cell_types, len(names), settings["epochs"], seed)
        runs.append({"seed": seed, "ari": result["ari"],
                     "clusters_used": result["clusters_used"]})
        print(f"seed {seed}: {result['ari']}", flush=True)
    scores = {"ari": demo.summary(runs), "clusters_used": demo.summary(runs, "clusters_used")}
    ari = scores["ari"]
    metric = "PBMC clusters vs cell types ARI (higher is better)"
    rows = [{"model": "GMVAE", "metric": metric, "value": ari["GMVAE components"],
             "baseline": baseline, "baseline_value": ari[baseline]}
            for baseline in ("k-means on NB VAE latent", "DGD components")]
    report = {
        "benchmark": "gallery_gmvae", "quick": quick, "settings": settings,
        "data": {"name": "PBMC (bundled pbmc68k_reduced)", "n_cells": int(counts.shape[0]),
                 "n_genes": int(counts.shape[1]), "n_cell_types": len(names)},
        "protocol": "same cells; one cluster or component per cell type; 10-D latent spaces; "
                    "GMVAE with KL warm-up over half the epochs",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "keras": keras.__version__},
        "scores": scores, "runs": runs, "rows": rows,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    path = write_results(report, "gallery_gmvae", quick=quick)
    for name, values in ari.items():
        print(f"{name:<26} ARI {values['mean']:.3f} +- {values['sd']:.3f}  clusters used "
              f"{scores['clusters_used'][name]['mean']:.1f}")
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, one seed")
    run(quick=parser.parse_args().quick)
