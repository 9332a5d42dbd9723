"""Shared by the benchmark scripts: per-epoch wall-clock timing, writing results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(report: dict, name: str, quick: bool = False) -> Path:
    """Write ``report`` to ``results/NAME.json`` (``NAME.quick.json`` for a quick run) atomically.

    A quick run never replaces the committed full results, and an interrupted run leaves the
    previous file whole.
    """
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}{'.quick' if quick else ''}.json"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(temporary, path)
    return path


class EpochTimer(keras.callbacks.Callback):
    """Records the duration of each epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
