"""How long ``course grade`` takes per submission: each lab's solution, each unfilled lab, and
lab 2 with a sampler that never returns (the issue's "hanging exercise").

Each lab is graded as ``course grade`` does with a fresh calibration cache: the solution runs
once in a sandboxed kernel to calibrate the limits (its time is the solution's grading time),
then the generated lab and (for lab 2) the hanging sampler are graded one at a time with the
calibrated limits. Results go to
``benchmarks/results/grading.json`` with the machine's core count and load average: on a
machine shared with other jobs, read the times as upper bounds.

    python benchmarks/grading.py [--labs 1 2 3]   # replaces the rows of these labs only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=int, nargs="+", default=None)
    args = parser.parse_args()
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
