"""scvi-tools' SCVI on the bundled PBMC, scored like benchmarks/vae.py's PBMC table.

scvi-tools is not a dependency of `course` (it brings PyTorch); this script needs it installed
(`pip install torch scvi-tools`). It trains SCVI with its defaults (one hidden layer of 128,
ZINB likelihood) and a 10-D latent space for the same epochs and seeds as the NB VAE in
benchmarks/vae.py, scores the latent means with the same kNN / ARI / NMI protocol, and merges
the row into ``results/vae.json`` (``pbmc.scores``), atomically.

    python benchmarks/vae_scvi.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vae  # noqa: E402  (benchmarks/vae.py)
from timing import write_results  # noqa: E402

SCVI = "scvi-tools SCVI (counts), defaults"


def main() -> int:
    results = json.loads((vae.RESULTS / "vae.json").read_text())
    epochs, seeds = results["pbmc"]["epochs"], results["pbmc"]["seeds"]
    runs = [vae.pbmc_scvi(epochs, seed) for seed in seeds]
    row = vae.summarize(runs)
    row["train_wall_time_s"] = sum(r["train_wall_time_s"] for r in runs) / len(runs)
    results["pbmc"]["scores"][SCVI] = row
    print(f"{SCVI}: kNN accuracy {row['knn_accuracy']['mean']:.3f} "
          f"+- {row['knn_accuracy']['sd']:.3f} over seeds {seeds}, {epochs} epochs")
    print(f"wrote {write_results(results, 'vae')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
