"""The command line end to end: `course run` checks a request before writing anything, writes
its model, metrics (one schema for every demo) and figures all from one complete run, and the
same seed gives the same result. A demo is run in a fresh process (a process holds one
distribution strategy; the test session already has one), except the fake demos that test the
output folder."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from course import demos


def course(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "course.cli", *args],
        capture_output=True, text=True, timeout=900, cwd=cwd, check=False,
    )


def test_version_and_demo_list_with_default_epochs():
    assert course("--version").stdout.strip().startswith("course ")
    listing = course("run", "--list").stdout
    rows = {line.split()[0]: line.split() for line in listing.splitlines()[2:]
            if line.startswith("  ")}
    for name in ("vae-mnist", "cvae-mnist", "vae-pbmc", "gan-mnist", "cgan-mnist",
                 "landmark-pbmc"):
        assert name in rows
    assert rows["vae-mnist"][1] == "30" and rows["gan-mnist"][1] == "20"


@pytest.mark.parametrize(
    "args, message",
    [(["no-such-demo"], "Unknown demo 'no-such-demo'"),
     (["vae-mnist", "--epochs", "0"], "--epochs must be at least 1"),
     (["vae-mnist", "--source", "pbmc3k"], "Unknown --source 'pbmc3k' for vae-mnist"),
     (["vae-pbmc", "--source", "keras"], "choose auto, pbmc3k, bundled"),
     (["vae-mnist", "--seed", "-1"], "--seed must be a non-negative integer"),
     (["vae-mnist", "--cpu-replicas", "0"], "--cpu-replicas must be at least 1"),
     (["vae-mnist", "--epochs", "two"], "invalid int value: 'two'")],
)
def test_bad_run_requests_exit_2_with_a_clear_message_and_write_nothing(args, message, tmp_path):
    out = tmp_path / "out"
    result = course("run", *args, "--out", str(out))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_run_out_that_is_a_file_is_refused(tmp_path):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    result = course("run", "vae-mnist", "--out", str(existing))
    assert result.returncode == 2 and "is a file" in result.stderr
    assert existing.read_text() == "keep me"


# The output folder: complete results or the previous ones ------------------------------------


@pytest.fixture
def fake_demos(monkeypatch):
    """Register demos that finish, crash mid-run, are interrupted, or skip run.report.

    They run in this process on TensorFlow's default strategy (the session may already hold a
    MirroredStrategy, next to which `distribute.get_strategy` refuses to create another).
    """
    import tensorflow as tf

    from course import distribute

    monkeypatch.setattr(distribute, "get_strategy", lambda *args, **kwargs: tf.distribute
                        .get_strategy())
    demos._load_demo_modules()

    def finish(run):
        run.path("figure.png").write_bytes(b"new figure")
        return run.report(epochs=run.epochs, data={"name": "none"}, metrics={"score": 1.0})

    def crash(run):
        run.path("model.keras").write_bytes(b"")  # half-written, as when a save is cut short
        raise RuntimeError("the demo failed mid-run")

    def interrupted(run):
        run.path("metrics.json").write_text("{}")
        raise KeyboardInterrupt

    def no_report(run):
        return {"score": 1.0}

    for name, fn in [("test-finish", finish), ("test-crash", crash),
                     ("test-interrupted", interrupted), ("test-no-report", no_report)]:
        monkeypatch.setitem(demos.DEMOS, name, demos.Demo(fn, "test", 1))


def previous_result(folder):
    folder.mkdir()
    (folder / "metrics.json").write_text('{"previous": true}')
    (folder / "model.keras").write_bytes(b"previous model")


@pytest.mark.parametrize("name, error", [("test-crash", RuntimeError),
                                         ("test-interrupted", KeyboardInterrupt),
                                         ("test-no-report", TypeError)])
def test_a_failed_run_leaves_the_previous_result_intact(fake_demos, tmp_path, name, error):
    out = tmp_path / "run"
    previous_result(out)
    with pytest.raises(error):
        demos.run(name, out=out, strategy="default")
    assert sorted(path.name for path in out.iterdir()) == ["metrics.json", "model.keras"]
    assert (out / "model.keras").read_bytes() == b"previous model"
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # no temporary folder left


def test_a_failed_first_run_leaves_nothing(fake_demos, tmp_path):
    with pytest.raises(RuntimeError):
        demos.run("test-crash", out=tmp_path / "run", strategy="default")
    assert list(tmp_path.iterdir()) == []


def test_a_complete_run_replaces_the_whole_previous_result(fake_demos, tmp_path):
    out = tmp_path / "run"
    previous_result(out)
    record = demos.run("test-finish", out=out, seed=4, strategy="default")
    assert sorted(path.name for path in out.iterdir()) == ["figure.png", "metrics.json"]
    assert json.loads((out / "metrics.json").read_text()) == record
    assert tuple(record) == demos.METRICS_KEYS
    assert record["demo"] == "test-finish" and record["seed"] == 4 and record["epochs"] == 1
    assert record["metrics"] == {"score": 1.0} and record["timing"]["total_s"] >= 0
    assert record["versions"]["keras"] == keras.__version__
    assert [path.name for path in tmp_path.iterdir()] == ["run"]


# Real demos, each in a fresh process. The runs that the selected tests need start all at once
# (a demo spends much of its time on one core: starting TensorFlow, reading the digits,
# plotting), and the main command's run is also the first of the same-seed pair.
VAE_ONE_EPOCH = ("vae-mnist", "--epochs", "1")
DEMO_RUNS = {
    "test_the_main_command_writes_model_metrics_and_figures": {
        "seed 3": (*VAE_ONE_EPOCH, "--seed", "3"),
    },
    "test_the_same_seed_gives_the_same_result": {
        "seed 3": (*VAE_ONE_EPOCH, "--seed", "3"),
        "seed 3 again": (*VAE_ONE_EPOCH, "--seed", "3"),
        "seed 4": (*VAE_ONE_EPOCH, "--seed", "4"),
    },
}


@pytest.fixture(scope="module")
def demo_runs(request, tmp_path_factory):
    """Run the demos of DEMO_RUNS that the selected tests need, in parallel; return, by name,
    the finished process (its output read back from files) and its --out folder."""
    wanted = {}
    for item in request.session.items:
        if item.module is request.module:
            wanted.update(DEMO_RUNS.get(getattr(item, "originalname", ""), {}))
    root = tmp_path_factory.mktemp("demos")
    started = {}
    for index, (name, args) in enumerate(wanted.items()):
        out, log = root / f"run{index}", root / f"run{index}.log"
        with open(log.with_suffix(".out"), "w") as stdout, open(log, "w") as stderr:
            command = [sys.executable, "-m", "course.cli", "run", *args, "--out", str(out)]
            started[name] = (subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True),
                             command, out, log)
    runs = {}
    try:
        for name, (process, command, out, log) in started.items():
            returncode = process.wait(timeout=900)
            result = subprocess.CompletedProcess(
                command, returncode, log.with_suffix(".out").read_text(), log.read_text()
            )
            runs[name] = (result, out)
    finally:
        for process, *_ in started.values():
            if process.poll() is None:  # a run past its time: stop the others too
                process.kill()
                process.wait()
    return runs


@pytest.mark.slow
def test_the_main_command_writes_model_metrics_and_figures(demo_runs):
    result, out = demo_runs["seed 3"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cuInit" not in result.stderr and "absl::InitializeLog" not in result.stderr
    assert result.stderr.count("BundledDataWarning") <= 1
    record = json.loads((out / "metrics.json").read_text())
    assert tuple(record) == demos.METRICS_KEYS
    assert record["demo"] == "vae-mnist" and record["epochs"] == 1
    assert record["data"]["n_train"] > 0 and len(record["timing"]["epoch_s"]) == 1
    assert record["metrics"]["test_log_likelihood_iwae"] < 0
    assert np.isfinite(record["metrics"]["test_elbo"])
    for figure in ("manifold.png", "samples.png", "reconstructions.png", "latent.png",
                   "history.png", "interpolation.png"):
        assert (out / figure).stat().st_size > 1000, figure
    from course import models  # noqa: F401  (registers the model classes with Keras)

    model = keras.models.load_model(out / "model.keras")
    assert model.encode(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 2)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_result(demo_runs):
    records = {}
    for name in ("seed 3", "seed 3 again", "seed 4"):
        result, out = demo_runs[name]
        assert result.returncode == 0, result.stderr[-3000:]
        records[name] = json.loads((out / "metrics.json").read_text())
        records[name].pop("timing")
    assert records["seed 3"]["seed"] == 3 and records["seed 3"]["epochs"] == 1
    assert records["seed 3"] == records["seed 3 again"]
    # the seed reaches the demo: another one initializes, shuffles and samples otherwise
    assert records["seed 4"]["seed"] == 4
    for score in ("test_elbo", "test_log_likelihood_iwae"):
        assert records["seed 4"]["metrics"][score] != records["seed 3"]["metrics"][score]
