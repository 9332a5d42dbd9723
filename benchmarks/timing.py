"""Shared by the benchmark scripts: per-epoch wall-clock timing, writing results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(path: Path, data) -> Path:
    """Write ``data`` as JSON to ``path`` via a temporary file and a rename: an interrupted run
    leaves the previous file whole. Numpy scalars are written as floats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(temporary, path)
    return path


def write_results(report: dict, name: str, quick: bool = False) -> Path:
    """Write ``report`` to ``results/NAME.json`` (``NAME.quick.json`` for a quick run) atomically;
    a quick run never replaces the committed full results."""
    return write_json(RESULTS / f"{name}{'.quick' if quick else ''}.json", report)


class EpochTimer(keras.callbacks.Callback):
    """Records the duration of each epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
