"""How long ``course grade`` takes per submission: each lab's solution, each unfilled lab, and
lab 2 with a sampler that never returns (the issue's "hanging exercise").

Each lab is first calibrated (its solution run once, into a fresh cache folder, timed as
"calibration"); then the solution, the generated lab and (for lab 2) the hanging sampler are
graded one at a time with the calibrated limits, as ``course grade`` does. Results go to
``benchmarks/results/grading.json`` with the machine's core count and load average: on a
machine shared with other jobs, read the times as upper bounds.

    python benchmarks/grading.py [--labs 1 2 3] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from course.grading.runner import grade

ROOT = Path(__file__).resolve().parents[1]
SAMPLER_BODY = (
    "    epsilon = keras.random.normal(ops.shape(z_mean), seed=seed_generator)\n"
    "    return z_mean + ops.exp(0.5 * z_log_var) * epsilon\n"
)


def submissions(lab: int, folder: Path) -> dict[str, Path]:
    """The solution, the unfilled lab and (lab 2) the hanging sampler, named for the lab."""
    (solution,) = (ROOT / "solutions").glob(f"{lab:02d}_*.py")
    (unfilled,) = (ROOT / "labs").glob(f"{lab:02d}_*.py")
    cases = {"solution": solution, "unfilled lab": unfilled}
    if lab == 2 and SAMPLER_BODY in solution.read_text():
        hanging = folder / f"hanging_sampler_{lab:02d}.py"
        hanging.write_text(
            solution.read_text().replace(SAMPLER_BODY, "    while True:\n        pass\n")
        )
        cases["hanging sample_z"] = hanging
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=int, nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    labs = args.labs or sorted(
        int(p.name[:2]) for p in (ROOT / "solutions").glob("[0-9][0-9]_*.py")
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for lab in labs:
            cache = scratch / f"cache{lab}"
            started = time.monotonic()
            # calibration alone: grading nothing still calibrates the lab
            cases = submissions(lab, scratch)
            grade([cases["solution"]], scratch / f"calibrate{lab}", cache_dir=cache, progress=False)
            calibration = time.monotonic() - started
            rows.append(
                {
                    "lab": lab,
                    "case": "calibration (solution run + grading)",
                    "seconds": round(calibration, 1),
                }
            )
            for case, path in cases.items():
                started = time.monotonic()
                (report,) = grade(
                    [path],
                    scratch / f"out{lab}-{len(rows)}",
                    cache_dir=cache,
                    jobs=args.jobs,
                    progress=False,
                )
                rows.append(
                    {
                        "lab": lab,
                        "case": case,
                        "seconds": round(time.monotonic() - started, 1),
                        "points": f"{report['points']:g}/{report['max_points']:g}",
                        "status": report["status"],
                        "sandboxed": report["sandboxed"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    record = {
        "machine": {
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / "grading.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"\n{'lab':>3}  {'case':<40} {'seconds':>8}  points")
    for row in rows:
        print(f"{row['lab']:>3}  {row['case']:<40} {row['seconds']:>8}  {row.get('points', '')}")
    print(f"load average at the end: {os.getloadavg()}; written to {out}")


if __name__ == "__main__":
    main()
