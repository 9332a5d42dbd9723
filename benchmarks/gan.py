"""Speed and quality of the GAN family on the bundled data (no strategy, float32).

- GAN (dense, dense with a 5x faster generator, conv) and ConditionalGAN (conv) on the 4,000
  bundled MNIST training digits: training throughput (examples/s, excluding the first,
  tracing epoch), wall time, and scores of 1,000 generated images: classes present,
  conditional accuracy, MMD to real test digits and the cross-validated real-vs-generated
  classifier AUC (0.5 is ideal).
- Landmark -> target genes on the bundled PBMC cells (150 landmarks -> 615 targets): the
  protocol of ``course.evaluation`` (5 random splits, mean +- sd; per-gene and per-cell
  correlations, RMSE, MAE, dense vs sparse targets, realism of the predicted matrix, cell-type
  accuracy) for LandmarkGAN, the D-GEX MLP (MSE and L1), ridge, kNN regression and the per-gene
  mean and median, the conditional samplers (kNN sampler, ridge + residuals), LandmarkGAN's
  variants (energy score only, adversarial only) and, with --previous COMMIT, LandmarkGAN as it
  was at COMMIT. What it found (results/gan.json, --previous 3977684): LandmarkGAN's prediction
  r 0.226 is 96% of kNN's 0.235; its draws score 20.72 on the energy score (the earlier
  model's 27.07), behind ridge + residuals (20.51) and the kNN sampler (20.67).

    python benchmarks/gan.py                   # both parts -> benchmarks/results/gan.json
    python benchmarks/gan.py --part landmark   # one part; the file keeps the other part
    python benchmarks/gan.py --quick           # a few epochs -> gan.quick.json: checks the
                                               # pipeline, never overwrites the full results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from timing import RESULTS, EpochTimer, write_results  # noqa: E402  (benchmarks/timing.py)

BATCH_SIZE = 64


def image_gan(name: str, epochs: int, seed: int) -> dict:
    """Train one MNIST GAN and measure its speed and samples."""
    from course import datasets, metrics, models

    keras.utils.set_random_seed(seed)
    x_train, y_train = datasets.load_mnist("train", source="bundled")
    x_test, _ = datasets.load_mnist("test", source="bundled")
    conditional = name.startswith("cgan")
    network = "dense" if "dense" in name else "conv"
    if conditional:
        model = models.ConditionalGAN((28, 28, 1), num_classes=10, network=network, seed=seed)
        data = (x_train, y_train)
    else:
        model = models.GAN((28, 28, 1), network=network, seed=seed)
        data = x_train
    # "-fast-generator": the generator learns 5x faster (Adam 1e-3), against mode collapse.
    fast = keras.optimizers.Adam(1e-3, beta_1=0.5) if name.endswith("fast-generator") else None
    model.compile(g_optimizer=fast)
    dataset = datasets.as_dataset(data, batch_size=BATCH_SIZE, seed=seed, drop_remainder=True)
    timer = EpochTimer()
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    wall_time = time.perf_counter() - start
    examples_per_epoch = len(x_train) // BATCH_SIZE * BATCH_SIZE
    steady = timer.seconds[1:] or timer.seconds
    requested = np.repeat(np.arange(10), 100)
    images = model.generate(requested, seed=seed) if conditional else model.generate(1000, seed)
    classifier = metrics.digit_classifier(x_train, y_train, epochs=5, seed=seed)
    scores = metrics.digit_scores(classifier, images, requested if conditional else None)
    return {
        "model": name, "epochs": epochs, "wall_time_s": wall_time,
        "examples_per_s": examples_per_epoch / float(np.median(steady)),
        "parameters": model.count_params(),
        "classes_present": scores["classes_present"],
        "conditional_accuracy": scores.get("conditional_accuracy"),
        "histogram": scores["histogram"],
        "mmd_to_test": metrics.mmd(images, x_test[: len(images)]),
        "real_vs_generated_auc": metrics.classifier_auc(x_test[: len(images)], images, seed=seed),
    }


# LandmarkGAN's two other ways of training its draws, measured against its default (energy score
# AND discriminator): the energy score alone, and the discriminator alone.
LANDMARK_VARIANTS = {
    "LandmarkGAN, energy score only": dict(adversarial_weight=0.0),
    "LandmarkGAN, adversarial only": dict(energy_weight=0.0),
}
SUMMARY_METRICS = ["pearson_r", "rmse", "energy_score", "crps", "variance_ratio", "mmd", "auc",
                   "cell_type_accuracy"]


def landmark(quick: bool, seed: int, previous: str | None = None) -> dict:
    """The landmark -> target protocol on the bundled PBMC cells, and its wall time."""
    from course import datasets, evaluation

    adata = datasets.load_pbmc(source="bundled")
    predictors = dict(evaluation.PREDICTORS)
    for name, options in LANDMARK_VARIANTS.items():
        predictors[name] = evaluation.landmark_gan(name, **options)
    n_splits, epochs = (2, 3) if quick else (5, evaluation.EPOCHS)
    start, start_cpu = time.perf_counter(), time.process_time()
    rows = evaluation.evaluate(adata, n_splits=n_splits, epochs=epochs, seed=seed,
                               predictors=predictors)
    wall_time, cpu_time = time.perf_counter() - start, time.process_time() - start_cpu
    if previous:
        rows += previous_landmark_gan(previous, n_splits, epochs, seed)
    summary = evaluation.summarize(rows)
    print(evaluation.table(summary, SUMMARY_METRICS))
    # On a shared machine the wall time includes waiting for other processes; the CPU time
    # (all threads) divided by the cores is what the protocol costs on a quiet machine.
    print(f"protocol wall time: {wall_time:.1f} s; CPU time {cpu_time:.1f} s on "
          f"{os.cpu_count()} cores; 1-min load average {os.getloadavg()[0]:.1f}")
    return {"wall_time_s": wall_time, "cpu_time_s": cpu_time, "n_cells": adata.n_obs,
            "n_landmarks": evaluation.N_LANDMARKS,
            "n_targets": adata.n_vars - evaluation.N_LANDMARKS, "previous_commit": previous,
            "summary": summary, "splits": rows}


def previous_landmark_gan(commit: str, n_splits: int, epochs: int, seed: int) -> list[dict]:
    """The rows of LandmarkGAN as it was at ``commit`` (its package unpacked with ``git
    archive`` into a temporary folder, this protocol's evaluation and metrics copied in),
    under this protocol: the same splits, scores and draws per cell."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(root), "archive", commit, "course"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        for name in ("evaluation.py", "metrics.py"):
            (Path(folder) / "course" / name).write_text((root / "course" / name).read_text())
        script = (
            "import json, sys\n"
            "from course import datasets, evaluation\n"
            "gan = evaluation.landmark_gan(sys.argv[1], monitor='val_reconstruction_loss')\n"
            "rows = evaluation.evaluate(datasets.load_pbmc(source='bundled'), "
            f"n_splits={n_splits}, epochs={epochs}, seed={seed}, predictors={{'gan': gan}})\n"
            "print(json.dumps(evaluation.json_ready(rows)))\n")
        result = subprocess.run(
            [sys.executable, "-c", script, f"LandmarkGAN before ({commit[:7]})"], cwd=folder,
            env={**os.environ, "PYTHONPATH": folder}, check=True, capture_output=True, text=True)
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    return [row for row in rows if not row["predictor"].startswith("truth")]


def print_table(rows: list[dict], columns: list[str]) -> None:
    def cell(value):
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    widths = [max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell(row.get(c)).ljust(w) for c, w in zip(columns, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    parser.add_argument("--part", choices=("all", "images", "landmark"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--previous", metavar="COMMIT",
                        help="also measure LandmarkGAN as it was at COMMIT (landmark part)")
    args = parser.parse_args()
    import tensorflow as tf

    from course.evaluation import json_ready

    previous = RESULTS / ("gan.quick.json" if args.quick else "gan.json")
    report = json.loads(previous.read_text()) if previous.exists() else {}
    if args.part in ("all", "images"):
        gan_epochs = 2 if args.quick else 20
        names = ("gan-dense", "gan-dense-fast-generator", "gan-conv", "cgan-conv")
        report["images"] = [image_gan(name, gan_epochs, args.seed) for name in names]
        print_table(report["images"], ["model", "epochs", "wall_time_s", "examples_per_s",
                                       "classes_present", "conditional_accuracy",
                                       "mmd_to_test", "real_vs_generated_auc"])
    if args.part in ("all", "landmark"):
        report["landmark"] = landmark(args.quick, args.seed, args.previous)
    report.update({
        "quick": args.quick, "seed": args.seed,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1min": os.getloadavg()[0]},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    })
    print(f"wrote {write_results(json_ready(report), 'gan', quick=args.quick)}")


if __name__ == "__main__":
    main()
