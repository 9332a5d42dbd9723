"""How long each demo's default run takes, for ``course run --list``.

Each demo runs for ``--epochs`` (default 2) in a fresh process, as ``course run`` would. Its
metrics.json gives the whole run's wall time and the time of each epoch; the default run is
estimated as that total plus the remaining epochs at the last epoch's pace (the first epoch also
traces the graph). Demos without a default epoch count are run as they are; demos without
per-epoch times (they train several models) are measured only by a run at their default epochs
(``--epochs`` equal to it). Results go to ``course/demos/timings.json`` (read by
``--list``) and ``benchmarks/results/demo_times.json``, with the machine's core count and load
average: on a machine shared with other jobs, read the times as upper bounds.

    python benchmarks/demo_times.py [--epochs 2] [--demos vae-mnist gan-mnist ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import write_json  # benchmarks/timing.py

from course import demos

ROOT = Path(__file__).resolve().parents[1]
NOTE = (
    "measured on {cpus} CPU cores by benchmarks/demo_times.py: short runs extrapolated to the "
    "default epochs, or whole default runs for demos that train several models; each run's load "
    "average is in benchmarks/results/demo_times.json (on a shared machine, upper bounds)"
)


def time_demo(name: str, epochs: int, out: Path) -> dict:
    """Run one demo briefly and estimate its default run time."""
    demo = demos.DEMOS[name]
    command = [sys.executable, "-m", "course.cli", "run", name, "--out", str(out)]
    if demo.epochs is not None:
        command += ["--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    record = json.loads((out / "metrics.json").read_text())
    timing = record["timing"]
    entry = {"measured_epochs": record["epochs"], "measured_total_s": timing["total_s"],
             "default_epochs": demo.epochs}
    if demo.epochs is None:
        entry["default_run_s"] = timing["total_s"]
    elif timing.get("epoch_s"):
        remaining = demo.epochs - len(timing["epoch_s"])
        entry["default_run_s"] = round(timing["total_s"] + remaining * timing["epoch_s"][-1], 1)
        entry["epoch_s"] = timing["epoch_s"]
    elif record["epochs"] == demo.epochs:
        # A demo that trains several models reports no per-epoch times: only a run at its
        # default epochs (--epochs N with N the default) measures it.
        entry["default_run_s"] = timing["total_s"]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--demos", nargs="*", default=None, help="default: every demo")
    parser.add_argument("--keep", default=None, help="keep each demo's outputs in KEEP/NAME")
    args = parser.parse_args()
    demos._load_demo_modules()
    names = args.demos or sorted(demos.DEMOS)
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep) if args.keep else Path(scratch)
        for name in names:
            load = os.getloadavg()[0]
            results[name] = {**time_demo(name, args.epochs, base / name), "load_average": load}
            print(f"{name:<18} {json.dumps(results[name])}", flush=True)
    load_after = os.getloadavg()
    print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    note = NOTE.format(cpus=os.cpu_count())
    report = {"note": note, "machine": {"platform": platform.platform(),
                                        "cpu_count": os.cpu_count()},
              "demos": results}
    for path in (demos.TIMINGS_FILE, ROOT / "benchmarks" / "results" / "demo_times.json"):
        measured = results
        if path == demos.TIMINGS_FILE:  # what --list reads: no per-epoch times
            measured = {name: {key: value for key, value in result.items() if key != "epoch_s"}
                        for name, result in results.items()}
        if path.exists():  # keep the other demos' earlier measurements
            measured = {**json.loads(path.read_text())["demos"], **measured}
        write_json(path, {**report, "demos": measured})
    print(note)


if __name__ == "__main__":
    main()
