"""Throughput of the VAE and GAN at 1, 2 and 4 replicas, and the cost of the strategy itself.

Each configuration runs in its own process (a process holds one strategy, and logical CPU
devices must be configured before TensorFlow starts). Replicas are logical CPU devices here, or
GPUs with ``--device gpu``. The baseline is the same model with no strategy at all; "mirrored x1"
against it is the overhead of the distribution machinery.

    python benchmarks/distribute.py            # full run, writes benchmarks/results/distribute.json
    python benchmarks/distribute.py --quick    # fewer steps, writes distribute.quick.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

CONFIGS = [("none", 1), ("mirrored", 1), ("mirrored", 2), ("mirrored", 4)]
MODELS = ("vae", "gan")


def build_model(name: str):
    from course import models

    if name == "vae":
        model = models.VAE(data_shape=(28, 28, 1), latent_dim=2, hidden_units=(256, 128))
        model.compile(optimizer="adam")
    else:
        model = models.GAN(data_shape=(28, 28, 1), latent_dim=64, hidden_units=(256, 256))
        model.compile()
    return model


def worker(args) -> dict:
    """Time ``args.steps`` training steps of one model under one configuration."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras

    from course import datasets, distribute

    if args.device == "gpu":
        strategy = distribute.get_strategy("mirrored" if args.kind == "mirrored" else "default")
    elif args.kind == "none":
        strategy = distribute.get_strategy("default")
    else:
        strategy = distribute.get_strategy("mirrored", cpu_replicas=args.replicas)
    keras.utils.set_random_seed(0)
    images, _ = datasets.load_mnist("train", source="bundled")
    batches_needed = args.steps + args.warmup
    repeats = -(-batches_needed * args.batch_size // len(images))
    dataset = datasets.as_dataset(images, batch_size=args.batch_size, drop_remainder=True)
    dataset = dataset.repeat(repeats)
    with strategy.scope():
        model = build_model(args.model)
    model.fit(dataset.take(args.warmup), epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset.skip(args.warmup).take(args.steps), epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {
        "model": args.model,
        "strategy": args.kind,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": args.batch_size,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "samples_per_s": round(args.steps * args.batch_size / seconds, 1),
    }


def run_config(model: str, kind: str, replicas: int, options) -> dict:
    command = [
        sys.executable, __file__, "--worker", "--model", model, "--kind", kind,
        "--replicas", str(replicas), "--steps", str(options.steps),
        "--warmup", str(options.warmup), "--batch-size", str(options.batch_size),
        "--device", options.device,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{model} {kind} x{replicas} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (tracing)")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["none", "mirrored"], help=argparse.SUPPRESS)
    parser.add_argument("--replicas", type=int, default=1, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.steps is None:
        options.steps = 50 if options.quick else 200
    if options.worker:
        print(json.dumps(worker(options)))
        return 0

    configs = CONFIGS if options.device == "cpu" else [("none", 1), ("mirrored", 1)]
    rows = []
    for model in MODELS:
        for kind, replicas in configs:
            print(f"  {model:<4} {kind:<8} x{replicas} ...", end="", flush=True)
            row = run_config(model, kind, replicas, options)
            print(f" {row['samples_per_s']:>9.1f} samples/s")
            rows.append(row)
    for row in rows:
        baseline = next(
            r for r in rows if r["model"] == row["model"] and r["strategy"] == "none"
        )
        row["vs_no_strategy"] = round(row["samples_per_s"] / baseline["samples_per_s"], 3)

    print(f"\nglobal batch {options.batch_size}, {options.steps} timed steps, "
          f"{options.device} ({os.cpu_count()} cores)")
    print(f"{'model':<6}{'strategy':<10}{'replicas':>9}{'samples/s':>12}{'vs none':>9}")
    for row in rows:
        print(f"{row['model']:<6}{row['strategy']:<10}{row['replicas']:>9}"
              f"{row['samples_per_s']:>12.1f}{row['vs_no_strategy']:>9.3f}")
    report = {
        "benchmark": "distribute",
        "device": options.device,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "batch_size": options.batch_size,
        "rows": rows,
    }
    from timing import write_results  # benchmarks/timing.py; imports Keras, so only now

    name = "distribute" if options.device == "cpu" else "distribute_gpu"
    path = write_results(report, name, quick=options.quick)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
