"""What checking every tf.data batch costs: training steps with and without the in-step checks.

Every model checks each batch of a ``tf.data`` input inside its training step (its
``validate_batch`` method: no NaN, raw counts where a count likelihood needs them, pixels in [0, 1],
labels in range). This script times the same training steps of the same model twice in one
process, once as shipped and once with ``validate_batch`` replaced by a function that returns its
input unchecked, alternating the two several times. It reports the median time per step of each,
the median and quartiles of the paired ratios, and the time of the compiled check alone. The
issue's budget is 5% of a step.

    python benchmarks/checks.py            # writes benchmarks/results/checks.json
    python benchmarks/checks.py --quick    # fewer steps and repeats, writes checks.quick.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def unchecked(*tensors):
    """Stands in for ``validate_batch``: the batch as it came, no checks."""
    return tensors[0] if len(tensors) == 1 else tensors


def cases():
    """(name, build_model, dataset) of each model, on the data it is meant for."""
    import numpy as np

    from course import datasets, models

    images, labels = datasets.load_mnist("train", source="bundled")
    images, labels = images[:4096], labels[:4096].astype("int32")
    adata = datasets.load_pbmc(source="bundled")
    counts = datasets.counts(adata).astype("float32")
    rng = np.random.default_rng(0)
    landmarks = rng.normal(size=(4096, 100)).astype("float32")
    targets = rng.normal(size=(4096, 500)).astype("float32")

    def compiled(model, **kwargs):
        model.compile(**kwargs)
        return model

    return [
        ("vae-bernoulli-mnist", lambda: compiled(models.VAE(data_shape=(28, 28, 1)),
                                                 optimizer="adam"),
         datasets.as_dataset(images, batch_size=128)),
        ("vae-nb-pbmc", lambda: compiled(models.VAE(data_shape=(counts.shape[1],),
                                                    likelihood="nb"), optimizer="adam"),
         datasets.as_dataset(counts, batch_size=128)),
        ("gan-conv-mnist", lambda: compiled(models.GAN(data_shape=(28, 28, 1), network="conv")),
         datasets.as_dataset(images, batch_size=64)),
        ("cgan-conv-mnist", lambda: compiled(models.ConditionalGAN(
            data_shape=(28, 28, 1), num_classes=10, network="conv")),
         datasets.as_dataset((images, labels), batch_size=64)),
        ("landmark-gan", lambda: compiled(models.LandmarkGAN(n_landmarks=100, n_targets=500)),
         datasets.as_dataset((landmarks, targets), batch_size=128)),
        ("scgan-pbmc", lambda: compiled(models.ScGAN(n_genes=counts.shape[1])),
         datasets.as_dataset(counts, batch_size=128)),
    ]


def seconds_per_step(model, batches, steps: int) -> float:
    """Time ``steps`` calls of the compiled training step alone (fit's set-up, callbacks and
    logs left out: for the fast models they would hide a difference of a fraction of a ms)."""
    start = time.perf_counter()
    for _ in range(steps):
        logs = model.train_function(batches)
    float(logs["loss"] if "loss" in logs else next(iter(logs.values())))  # wait for the step
    return (time.perf_counter() - start) / steps


def measure(build, dataset, steps: int, repeats: int) -> dict:
    import keras

    timings = {"checked": [], "unchecked": []}
    trained = {}
    for kind in timings:
        keras.utils.set_random_seed(0)
        trained[kind] = model = build()
        if kind == "unchecked":
            model.validate_batch = unchecked  # before the step is traced
        model.fit(dataset.take(3), epochs=1, verbose=0)  # trace and warm up
        model.make_train_function()
    batches = iter(dataset.repeat())
    ratios = []
    for repeat in range(repeats):
        # Pairs, in alternating order: a slow spell of the shared machine hits both sides.
        order = list(trained) if repeat % 2 == 0 else list(reversed(trained))
        pair = {kind: seconds_per_step(trained[kind], batches, steps) for kind in order}
        for kind, seconds in pair.items():
            timings[kind].append(seconds)
        ratios.append(pair["checked"] / pair["unchecked"] - 1)
    checked, plain = (statistics.median(timings[kind]) for kind in ("checked", "unchecked"))
    quartiles = statistics.quantiles(ratios, n=4)
    return {"ms_per_step_checked": 1000 * checked, "ms_per_step_unchecked": 1000 * plain,
            "check_share": statistics.median(ratios),
            "check_share_quartiles": [quartiles[0], quartiles[2]],
            "ms_check_alone": 1000 * check_alone(trained["checked"], dataset),
            "repeats": repeats, "steps": steps}


def check_alone(model, dataset, calls: int = 200) -> float:
    """Seconds per call of the model's compiled ``validate_batch`` on one batch (an upper bound of
    its share of a step: it includes the cost of calling a tf.function)."""
    import tensorflow as tf

    batch = next(iter(dataset))
    arguments = batch if isinstance(batch, tuple) else (batch,)
    check = tf.function(model.validate_batch)
    check(*arguments)
    start = time.perf_counter()
    for _ in range(calls):
        check(*arguments)
    return (time.perf_counter() - start) / calls


def main() -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from timing import write_results

    from course import import_tensorflow_quietly

    import_tensorflow_quietly()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args()
    steps, repeats = (20, 3) if args.quick else (50, 9)
    results = {}
    for name, build, dataset in cases():
        results[name] = measure(build, dataset, steps, repeats)
        row = results[name]
        low, high = row["check_share_quartiles"]
        print(f"{name:22s} {row['ms_per_step_checked']:8.1f} ms checked "
              f"{row['ms_per_step_unchecked']:8.1f} ms unchecked  median "
              f"{100 * row['check_share']:+.1f}% (quartiles {100 * low:+.1f}%, {100 * high:+.1f}%)"
              f"  check alone {row['ms_check_alone']:.2f} ms", flush=True)
    report = {"benchmark": "checks", "quick": args.quick, "cpu_count": os.cpu_count(),
              "machine": platform.platform(), "load_average": os.getloadavg(),
              "models": results}
    print("wrote", write_results(report, "checks", args.quick))


if __name__ == "__main__":
    main()
