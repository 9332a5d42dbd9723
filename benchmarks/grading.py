"""How long ``course grade`` takes per submission: each lab's solution, each unfilled lab, and
lab 2 with a sampler that never returns (the issue's "hanging exercise").

Each lab is graded as ``course grade`` does with a fresh calibration cache: the solution runs
once in a sandboxed kernel to calibrate the limits (its time is the solution's grading time),
then the generated lab and (for lab 2) the hanging sampler are graded one at a time with the
calibrated limits. Results go to
``benchmarks/results/grading.json`` with the machine's core count and load average: on a
machine shared with other jobs, read the times as upper bounds.

``--sandbox-cost`` measures what the sandbox adds instead: lab 1's solution and its unfilled lab
graded sandboxed and with ``--no-sandbox``, alternating (the order flips every round, so a
change of the machine's load falls on both), into ``benchmarks/results/grading_sandbox.json``:
the seconds of each run and the median of the paired differences per submission.

    python benchmarks/grading.py [--labs 1 2 3]   # replaces the rows of these labs only
    nice -n 10 python benchmarks/grading.py --sandbox-cost [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

from timing import write_json  # benchmarks/timing.py

from course.grading.runner import grade

ROOT = Path(__file__).resolve().parents[1]
SAMPLER_BODY = (
    "    epsilon = keras.random.normal(ops.shape(z_mean), seed=seed_generator)\n"
    "    return z_mean + ops.exp(0.5 * z_log_var) * epsilon\n"
)
HANG = "    while True:\n        pass\n"


def submissions(lab: int, folder: Path) -> tuple[Path, dict[str, Path]]:
    """The solution, and the unfilled lab and (lab 2) the hanging sampler, named for the lab."""
    (solution,) = (ROOT / "solutions").glob(f"{lab:02d}_*.py")
    (unfilled,) = (ROOT / "labs").glob(f"{lab:02d}_*.py")
    cases = {"unfilled lab": unfilled}
    if lab == 2 and SAMPLER_BODY in solution.read_text():
        hanging = folder / f"hanging_sampler_{lab:02d}.py"
        hanging.write_text(solution.read_text().replace(SAMPLER_BODY, HANG))
        cases["hanging sample_z"] = hanging
    return solution, cases


def sandbox_cost(rounds: int) -> None:
    """Grade lab 1's solution and unfilled lab sandboxed and not, alternating submission by
    submission; time kernel starts the same way; write the seconds of every run and the
    median added seconds."""
    solution, cases = submissions(1, Path(tempfile.gettempdir()))
    cases = {"solution": solution, **cases}
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(rounds):
            modes = [True, False] if round_number % 2 == 0 else [False, True]
            for case, path in cases.items():
                for sandboxed in modes:
                    out = Path(scratch) / f"out-{round_number}-{sandboxed}"
                    (report,) = grade([path], out, calibrate=False, sandbox=sandboxed,
                                      progress=False)
                    assert report["sandboxed"] is sandboxed, report["warnings"]
                    runs.append({"round": round_number, "case": case, "sandboxed": sandboxed,
                                 "seconds": report["elapsed_s"],
                                 "points": f"{report['points']:g}/{report['max_points']:g}",
                                 "load_average_1min": round(os.getloadavg()[0], 1)})
                    print(json.dumps(runs[-1]), flush=True)
                    runs.append({"round": round_number, "case": "kernel start and stop",
                                 "sandboxed": sandboxed, "seconds": kernel_start(sandboxed)})
                    print(json.dumps(runs[-1]), flush=True)
    added = {}
    for case in [*cases, "kernel start and stop"]:
        on, off = ([run["seconds"] for run in runs
                    if run["case"] == case and run["sandboxed"] is sandboxed]
                   for sandboxed in (True, False))
        differences = [a - b for a, b in zip(on, off)]
        added[case] = {
            "median_added_s": round(statistics.median(differences), 2),
            "added_s": [round(d, 2) for d in differences],
            "median_unsandboxed_s": statistics.median(off),
            "median_sandboxed_s": statistics.median(on),
        }
    record = {
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "what": "lab 1 graded sandboxed and with --no-sandbox, alternating submission by "
                "submission (calibrate=False); a kernel started, run one cell, stopped, the same",
        "added_per_submission": added,
        "runs": runs,
    }
    out = ROOT / "benchmarks" / "results" / "grading_sandbox.json"
    write_json(out, record)
    for case, row in added.items():
        print(f"{case:<22} sandbox adds {row['median_added_s']:+.2f} s "
              f"(median of {row['added_s']}) to {row['median_unsandboxed_s']} s")
    print(f"load average at the end: {os.getloadavg()}; written to {out}")


def kernel_start(sandboxed: bool) -> float:
    """Seconds to make a scratch folder, start a kernel, run ``pass`` and clean up."""
    import time

    import nbformat

    from course.grading.session import Scratch, Session
    from course.grading.settings import make_settings

    (solution,) = (ROOT / "solutions").glob("01_*.py")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    with tempfile.TemporaryDirectory() as out:
        settings = make_settings(sandboxed, True, 8, Path(out), [solution], None)
        started = time.monotonic()
        with Scratch(solution, settings) as scratch:
            session = Session(notebook, scratch, settings)
            with session.started():
                assert session.run(notebook.cells[0], 60).get("status") == "ok"
            session.close()
        return round(time.monotonic() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=int, nargs="+", default=None)
    parser.add_argument("--sandbox-cost", action="store_true",
                        help="sandboxed vs --no-sandbox on lab 1, alternating")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.sandbox_cost:
        sandbox_cost(args.rounds)
        return
    labs = args.labs or sorted(
        int(p.name[:2]) for p in (ROOT / "solutions").glob("[0-9][0-9]_*.py")
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for lab in labs:
            solution, cases = submissions(lab, scratch)
            cache = scratch / f"cache{lab}"
            reports = grade(list(cases.values()), scratch / f"out{lab}", cache_dir=cache)
            calibrations = list(cache.glob("*.json"))  # none: the solution's run failed
            measured = json.loads(calibrations[0].read_text()) if calibrations else None
            rows.append(
                {
                    "lab": lab,
                    "case": "solution (the calibration run)",
                    "seconds": round(measured["total"], 1) if measured else None,
                    "points": f"{measured['points']:g}/{measured['max_points']:g}"
                    if measured
                    else "its run failed: limits not calibrated",
                }
            )
            for case, report in zip(cases, reports):
                rows.append(
                    {
                        "lab": lab,
                        "case": case,
                        "seconds": report["elapsed_s"],
                        "points": f"{report['points']:g}/{report['max_points']:g}",
                        "status": report["status"],
                        "sandboxed": report["sandboxed"],
                    }
                )
            for row in rows[-1 - len(cases) :]:
                row["load_average_1min"] = round(os.getloadavg()[0], 1)
                print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks" / "results" / "grading.json"
    if out.exists():  # keep the rows of the labs not measured this time
        kept = [row for row in json.loads(out.read_text())["rows"] if row["lab"] not in labs]
        rows = sorted(kept + rows, key=lambda row: row["lab"])
    record = {
        "machine": {
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "rows": rows,
    }
    write_json(out, record)
    print(f"\n{'lab':>3}  {'case':<32} {'seconds':>8}  points")
    for row in rows:
        print(f"{row['lab']:>3}  {row['case']:<32} {row['seconds']:>8}  {row['points']}")
    print(f"load average at the end: {os.getloadavg()}; written to {out}")


if __name__ == "__main__":
    main()
