"""Named end-to-end demos behind ``course run NAME``.

Each demo is a function registered with :func:`demo`. It receives a :class:`Run` (output
folder, epochs, seed, strategy, data source) and returns ``run.report(...)``: the one schema of
``metrics.json`` shared by every demo (see :data:`METRICS_KEYS` and the README).

:func:`run` checks the request before anything is written, sets the seed and precision policy,
creates the strategy, and lets the demo write into a temporary folder next to the target that is
moved into place only when the demo has finished: the model, metrics and figures in ``runs/NAME``
always come from one complete run. Demos live in ``vae.py``, ``gan.py`` and ``landmark.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The data sets a demo can declare, and the --source values their loaders accept.
DATA_SOURCES = {"mnist": ("auto", "keras", "bundled"), "pbmc": ("auto", "pbmc3k", "bundled")}
# The top-level keys of every metrics.json, in order.
METRICS_KEYS = ("demo", "seed", "epochs", "replicas", "mixed_precision", "data", "metrics",
                "timing", "versions")
# Measured wall-clock times of the default runs (written by benchmarks/demo_times.py).
TIMINGS_FILE = Path(__file__).with_name("timings.json")


@dataclasses.dataclass(frozen=True)
class Demo:
    """A registered demo: its function, one line of description, default epochs and data set."""

    fn: Callable
    description: str
    epochs: int | None = None
    data: str | None = None


DEMOS: dict[str, Demo] = {}


def demo(name: str, description: str, epochs: int | None = None, data: str | None = None):
    """Register a demo function ``fn(run: Run) -> dict`` under ``name``.

    Args:
        epochs: the default number of epochs (``run.epochs`` when --epochs is not given).
        data: "mnist" or "pbmc": the data set the demo loads, so that ``--source`` is checked
            before the run starts.
    """
    if data is not None and data not in DATA_SOURCES:
        raise ValueError(f"data must be one of {', '.join(DATA_SOURCES)}, got {data!r}.")

    def register(fn):
        DEMOS[name] = Demo(fn, description, epochs, data)
        return fn

    return register


@dataclasses.dataclass
class Run:
    """What a demo needs to know: where to write, how long to train, and on what.

    ``out`` is the temporary folder the demo writes into; ``target`` is where it will be moved.
    """

    name: str
    out: Path
    epochs: int | None
    seed: int
    strategy: object
    source: str = "auto"
    mixed_precision: bool = False
    target: Path | None = None
    timing: dict = dataclasses.field(default_factory=dict)
    data_path: Path | None = None  # --data: the user's cells instead of PBMC.
    label_key: str = "cell_type"
    layer: str | None = None
    read_data: bool = False  # Set by single_cell(): the demo did read --data.

    def single_cell(self):
        """The demo's cells as an AnnData in the toolkit's layout: PBMC (``--source``), or the
        user's file (``--data``) read, prepared (quality control, highly variable genes; the
        summary is printed) and labelled by its ``--label-key`` column as ``obs["cell_type"]``.
        """
        from course import datasets

        if self.data_path is None:
            return datasets.load_pbmc(source=self.source)
        self.read_data = True
        adata = datasets.read(self.data_path)
        if self.label_key not in adata.obs:
            raise ValueError(
                f"{self.data_path} has no obs column {self.label_key!r} for the cell labels; "
                f"its obs columns: {', '.join(map(str, adata.obs.columns)) or 'none'}. Pass "
                "--label-key NAME."
            )
        adata = datasets.prepare(adata, layer=self.layer)
        adata.obs["cell_type"] = adata.obs[self.label_key].astype(str).astype("category")
        adata.X = adata.X.toarray()  # The demos' baselines (PCA) read a dense X.
        return adata

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
        """The epochs asked for on the command line, else ``default``."""
        return default if self.epochs is None else self.epochs

    def fit(self, model, data, n_examples: int, **fit_arguments):
        """``model.fit(data, **fit_arguments)``, timed: fills ``timing`` with the training
        seconds, the seconds of each epoch and the training examples per second."""
        import keras

        starts, epoch_seconds = [], []
        timer = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
            on_epoch_end=lambda epoch, logs: epoch_seconds.append(time.perf_counter() - starts[-1]),
        )
        fit_arguments["callbacks"] = [*fit_arguments.get("callbacks", []), timer]
        start = time.perf_counter()
        history = model.fit(data, verbose=self.verbose, **fit_arguments)
        seconds = time.perf_counter() - start
        self.timing = {
            "train_s": round(seconds, 2),
            "epoch_s": [round(value, 2) for value in epoch_seconds],
            "train_examples_per_s": round(len(epoch_seconds) * n_examples / seconds, 1),
        }
        return history

    def path(self, filename: str) -> Path:
        """Path of an output file (a scratch folder on non-chief workers)."""
        if self.is_chief:
            return self.out / filename
        scratch = self.out / f".worker-{self.strategy.cluster_resolver.task_id}"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch / filename

    def _wrote(self, filename: str, note: str = "") -> None:
        print(f"  wrote {filename}{note}")

    def save_figure(self, figure, filename: str) -> Path:
        """Save a matplotlib figure as PNG and close it."""
        import matplotlib.pyplot as plt

        path = self.path(filename)
        figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(figure)
        self._wrote(filename)
        return path

    def save_model(self, model, filename: str = "model.keras") -> Path:
        """Save a model in the ``.keras`` format."""
        path = self.path(filename)
        model.save(path)
        self._wrote(filename, " (load it with `from course import models` and "
                              "`keras.models.load_model`)")
        return path

    def report(self, *, epochs: int | None, data: dict, metrics: dict) -> dict:
        """The demo's result in the schema of metrics.json (every demo returns this).

        Args:
            epochs: epochs trained (the budget, for demos that stop early).
            data: what was trained and evaluated on: ``name``, ``source`` and sizes.
            metrics: the scores, as numbers or nested dicts of numbers.
        """
        import keras
        import tensorflow as tf

        from course import __version__

        return {
            "demo": self.name,
            "seed": self.seed,
            "epochs": epochs,
            "replicas": self.strategy.num_replicas_in_sync,
            "mixed_precision": self.mixed_precision,
            "data": data,
            "metrics": metrics,
            "timing": dict(self.timing),
            "versions": {"course": __version__, "keras": keras.__version__,
                         "tensorflow": tf.__version__, "python": platform.python_version()},
        }


def data_source_name(data: str, source: str) -> str:
    """Where the demo's data come from now: "cache", "download" or "bundled"."""
    from course import datasets

    if source == "file":  # --data: the user's file.
        return "file"
    return (datasets.mnist_source if data == "mnist" else datasets.pbmc_source)(source)


def _load_demo_modules() -> None:
    """Import every module of this package: each registers its demos with @demo."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def _timings() -> dict:
    return json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}


def _duration(seconds: float | None) -> str:
    """A run time for the demo table: seconds under a minute, else whole minutes."""
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"


def describe() -> str:
    """A table of the available demos: default epochs, measured time and what each shows."""
    _load_demo_modules()
    timings = _timings()
    rows = []
    for name, demo in sorted(DEMOS.items()):
        measured = timings.get("demos", {}).get(name, {}).get("default_run_s")
        rows.append((name, "-" if demo.epochs is None else str(demo.epochs),
                     _duration(measured), demo.description))
    header = ("demo", "epochs", "time", "what it shows")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = ["Available demos (course run NAME):"]
    lines += ["  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths)) + "  "
              + row[3] for row in [header, *rows]]
    if timings:
        lines.append(f"time: {timings['note']}")
    return "\n".join(lines)


def validate_request(
    name: str,
    out: str | os.PathLike | None = None,
    epochs: int | None = None,
    seed: int = 0,
    cpu_replicas: int | None = None,
    source: str = "auto",
    data_path: str | os.PathLike | None = None,
) -> Path:
    """Check a ``run`` request without writing anything; return the output folder.

    Raises:
        ValueError: naming the bad argument and what to pass instead.
    """
    _load_demo_modules()
    if name not in DEMOS:
        raise ValueError(f"Unknown demo {name!r}. {describe()}")
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}.")
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}.")
    if cpu_replicas is not None and cpu_replicas < 1:
        raise ValueError(f"--cpu-replicas must be at least 1, got {cpu_replicas}.")
    data = DEMOS[name].data
    if data_path is not None:
        single_cell = sorted(n for n, d in DEMOS.items() if d.data == "pbmc")
        if data != "pbmc":
            raise ValueError(f"--data replaces the PBMC cells of the single-cell demos "
                             f"({', '.join(single_cell)}); {name} does not read them.")
        if not Path(data_path).exists():
            raise FileNotFoundError(f"--data {data_path} does not exist.")
    if data is not None and source not in DATA_SOURCES[data]:
        raise ValueError(
            f"Unknown --source {source!r} for {name}, which loads {data.upper()}: choose "
            f"{', '.join(DATA_SOURCES[data])}."
        )
    target = Path(out) if out is not None else Path("runs") / name
    if target.exists() and not target.is_dir():
        raise ValueError(f"--out {target} is a file; name a folder.")
    return target


def run(
    name: str,
    out: str | os.PathLike | None = None,
    epochs: int | None = None,
    seed: int = 0,
    strategy: str = "auto",
    cpu_replicas: int | None = None,
    mixed_precision: bool = False,
    source: str = "auto",
    data_path: str | os.PathLike | None = None,
    label_key: str = "cell_type",
    layer: str | None = None,
) -> dict:
    """Run the demo ``name`` end to end and return its metrics (also written to metrics.json).

    The outputs appear in ``out`` (default ``runs/NAME``) only when the demo has finished; an
    interrupted run leaves the previous complete result in place. ``data_path`` (``--data``):
    a single-cell demo runs on the user's file instead (see :meth:`Run.single_cell`).
    """
    target = validate_request(name, out, epochs, seed, cpu_replicas, source, data_path)
    import keras

    from course import distribute

    strategy_object = distribute.get_strategy(strategy, cpu_replicas=cpu_replicas)
    keras.utils.set_random_seed(seed)
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    demo = DEMOS[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                    dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    scratch.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the result should not be
    context = Run(name, scratch, epochs if epochs is not None else demo.epochs, seed,
                  strategy_object, "file" if data_path else source, mixed_precision, target,
                  data_path=None if data_path is None else Path(data_path),
                  label_key=label_key, layer=layer)
    print(
        f"course run {name}: seed {seed}, {strategy_object.num_replicas_in_sync} replica(s), "
        f"{'mixed_float16' if mixed_precision else 'float32'}; results go to {target}/ when "
        "the run is complete"
    )
    start = time.perf_counter()
    try:
        record = demo.fn(context)
        if data_path is not None and not context.read_data:
            raise ValueError(f"Demo {name!r} does not read --data yet (it loaded PBMC); its "
                             "results were not kept.")
        if not isinstance(record, dict) or tuple(record) != METRICS_KEYS:
            raise TypeError(
                f"Demo {name!r} returned a {type(record).__name__} that is not run.report(...); "
                "a demo must return run.report(epochs=..., data={...}, metrics={...}), the one "
                "schema of metrics.json."
            )
        record["timing"] = {"total_s": round(time.perf_counter() - start, 2),
                            **record["timing"]}
        path = context.path("metrics.json")
        path.write_text(json.dumps(record, indent=2, default=float) + "\n")
        context._wrote("metrics.json")
        if context.is_chief:
            _move_into_place(scratch, target)
    finally:
        keras.config.set_dtype_policy("float32")
        shutil.rmtree(scratch, ignore_errors=True)
    print(summary(record, target))
    return record


def summary(record: dict, folder: Path, rows: int = 6) -> str:
    """A short table of a run's headline metrics and where its files are.

    The headline metrics are the first ``rows`` of: the numbers at the top level of
    ``metrics``, then the first number of each group one level down (``group.name``: e.g. one
    metric of every predictor, to compare them); a ``[mean, sd]`` pair counts as a number.
    metrics.json holds them all.
    """
    headline = [(key, value) for key, value in record["metrics"].items() if _shown(value)]
    for key, group in record["metrics"].items():
        if isinstance(group, dict):
            first = next(((name, value) for name, value in group.items() if _shown(value)), None)
            if first:
                headline.append((f"{key}.{first[0]}", first[1]))
    headline = headline[:rows]
    data = record["data"]
    lines = [f"{record['demo']}: {data.get('name', '')} ({data.get('source', '')}), "
             f"{record['epochs']} epochs, {record['timing']['total_s']:.0f} s"]
    width = max((len(key) for key, _ in headline), default=0)
    lines += [f"  {key:<{width}}  {_format_metric(value)}" for key, value in headline]
    figures = sorted(path.name for path in folder.glob("*.png")) if folder.is_dir() else []
    lines.append(f"All metrics: {folder / 'metrics.json'}")
    if figures:
        lines.append(f"Figures in {folder}/: {', '.join(figures)}")
    return "\n".join(lines)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value) -> bool:
    """A number, or a ``[mean, sd]`` pair of numbers (the mean may be None: undefined)."""
    if isinstance(value, list) and len(value) == 2:
        return (value[0] is None or _is_number(value[0])) and _is_number(value[1])
    return _is_number(value)


def _format_metric(value) -> str:
    if isinstance(value, list):
        return "undefined" if value[0] is None else f"{value[0]:.4g} +- {value[1]:.2g}"
    return f"{value:.4g}"


def _move_into_place(scratch: Path, target: Path) -> None:
    """Replace ``target`` by the finished ``scratch`` folder.

    A folder cannot atomically replace a non-empty one, so the old result is first renamed
    aside; a crash between the two renames leaves no ``target`` (never a mix of two runs).
    """
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        target.rename(old)
    scratch.rename(target)
    print(f"  moved the complete result into {target}/")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
