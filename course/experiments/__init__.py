"""Named end-to-end demos behind ``course run NAME``.

Each demo is a function registered with :func:`experiment`. It receives a :class:`Run` (output
folder, epochs, seed, strategy, data source) and returns a dict of metrics; :func:`run` sets the
seed and precision policy, creates the strategy, calls it, and writes ``metrics.json``.
Demos live in ``vae.py`` and ``gan.py`` next to this file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

EXPERIMENTS: dict[str, tuple[Callable, str]] = {}


def experiment(name: str, description: str):
    """Register a demo function ``fn(run: Run) -> dict`` under ``name``."""

    def register(fn):
        EXPERIMENTS[name] = (fn, description)
        return fn

    return register


@dataclasses.dataclass
class Run:
    """What a demo needs to know: where to write, how long to train, and on what."""

    name: str
    out: Path
    epochs: int | None
    seed: int
    strategy: object
    source: str = "auto"
    mixed_precision: bool = False

    @property
    def is_chief(self) -> bool:
        """True on the one worker that writes files (always true without multi-worker)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if resolver is None or not getattr(resolver, "task_type", None):
            return True
        return resolver.task_type == "chief" or (
            resolver.task_type == "worker" and resolver.task_id == 0
        )

    @property
    def verbose(self) -> int:
        """Keras' fit verbosity: a live progress bar on a terminal, one line per epoch in logs."""
        return 1 if sys.stdout.isatty() else 2

    def dataset(self, data, batch_size: int):
        """A shuffled tf.data pipeline of ``data`` in global batches of ``batch_size``.

        With several replicas the last, incomplete batch is dropped so that every replica gets
        an equal share (the loss scaling by the number of replicas assumes equal shares).
        """
        from course import datasets

        return datasets.as_dataset(
            data, batch_size=batch_size, seed=self.seed,
            drop_remainder=self.strategy.num_replicas_in_sync > 1,
        )

    def epochs_or(self, default: int) -> int:
        """The epochs asked for on the command line, else the demo's default."""
        return default if self.epochs is None else self.epochs

    def path(self, filename: str) -> Path:
        """Path of an output file (a scratch folder on non-chief workers)."""
        if self.is_chief:
            return self.out / filename
        scratch = self.out / f".worker-{self.strategy.cluster_resolver.task_id}"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / filename

    def save_figure(self, figure, filename: str) -> Path:
        """Save a matplotlib figure as PNG and close it."""
        import matplotlib.pyplot as plt

        path = self.path(filename)
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        print(f"  wrote {path}")
        return path

    def save_model(self, model, filename: str = "model.keras") -> Path:
        """Save a model in the ``.keras`` format."""
        path = self.path(filename)
        model.save(path)
        print(f"  wrote {path} (load it with `from course import models` and "
              "`keras.models.load_model`)")
        return path


def _load_demo_modules() -> None:
    from course.experiments import gan, landmark, vae  # noqa: F401  (registers the demos)


def describe() -> str:
    """A table of the available demos."""
    _load_demo_modules()
    width = max(len(name) for name in EXPERIMENTS)
    lines = ["Available demos (course run NAME):"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in sorted(EXPERIMENTS.items())]
    return "\n".join(lines)


def run(
    name: str,
    out: str | os.PathLike | None = None,
    epochs: int | None = None,
    seed: int = 0,
    strategy: str = "auto",
    cpu_replicas: int | None = None,
    mixed_precision: bool = False,
    source: str = "auto",
) -> dict:
    """Run the demo ``name`` end to end and return its metrics (also written to metrics.json)."""
    _load_demo_modules()
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown demo {name!r}. {describe()}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}.")
    import keras

    from course import distribute

    strategy_object = distribute.get_strategy(strategy, cpu_replicas=cpu_replicas)
    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    out_dir = Path(out) if out is not None else Path("runs") / name
    out_dir.mkdir(parents=True, exist_ok=True)
    context = Run(name, out_dir, epochs, seed, strategy_object, source, mixed_precision)
    fn, _ = EXPERIMENTS[name]
    print(
        f"course run {name}: seed {seed}, {strategy_object.num_replicas_in_sync} replica(s), "
        f"{'mixed_float16' if mixed_precision else 'float32'}, writing to {out_dir}/"
    )
    start = time.perf_counter()
    try:
        metrics = fn(context)
    finally:
        keras.config.set_dtype_policy("float32")
    metrics = {
        "demo": name,
        "seed": seed,
        "replicas": strategy_object.num_replicas_in_sync,
        "mixed_precision": mixed_precision,
        "wall_time_s": round(time.perf_counter() - start, 2),
        **metrics,
    }
    path = context.path("metrics.json")
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(f"  wrote {path}")
    print(json.dumps(metrics, indent=2, default=float))
    return metrics
