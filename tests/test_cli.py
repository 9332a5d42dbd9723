"""The command line end to end: `course run` writes its model, metrics and figures, the same
seed gives the same result, and bad requests get a clear error. Each run is a fresh process (a
process holds one distribution strategy; the test session already has one)."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest


def course(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "course.cli", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd, check=False,
    )


def test_version_and_demo_list():
    assert course("--version").stdout.strip().startswith("course ")
    listing = course("run", "--list").stdout
    for name in ("vae-mnist", "cvae-mnist", "vae-pbmc", "gan-mnist", "cgan-mnist",
                 "landmark-pbmc"):
        assert name in listing


@pytest.mark.parametrize(
    "args, message",
    [(["run", "no-such-demo"], "Unknown demo 'no-such-demo'"),
     (["run", "vae-mnist", "--epochs", "0"], "--epochs must be at least 1")],
)
def test_bad_run_requests_exit_2_with_a_clear_message(args, message):
    result = course(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_main_command_writes_model_metrics_and_figures(tmp_path):
    out = tmp_path / "vae"
    result = course("run", "vae-mnist", "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["demo"] == "vae-mnist" and metrics["epochs"] == 1
    assert metrics["test_log_likelihood_iwae"] < 0 and np.isfinite(metrics["test_elbo"])
    for figure in ("manifold.png", "samples.png", "reconstructions.png", "latent.png",
                   "history.png", "interpolation.png"):
        assert (out / figure).stat().st_size > 1000, figure
    from course import models  # noqa: F401  (registers the model classes with Keras)

    model = keras.models.load_model(out / "model.keras")
    assert model.encode(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 2)


def test_the_same_seed_gives_the_same_result(tmp_path):
    runs = []
    for name in ("first", "second"):
        result = course("run", "landmark-pbmc", "--epochs", "2", "--seed", "3",
                        "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    for run in runs:
        run.pop("wall_time_s")
    assert runs[0] == runs[1]
    assert set(runs[0]["models"]) == {"linear regression", "MLP (MSE)", "LandmarkGAN",
                                      "per-gene median"}
