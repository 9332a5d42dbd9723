"""A Gradescope autograder for one lab: ``course gradescope LAB --out autograder.zip``.

Gradescope builds one image per assignment from the zip's ``setup.sh`` and runs
``run_autograder`` in a fresh container for every submission, with the student's files in
``/autograder/submission``; the script must write ``/autograder/results/results.json``. The zip
holds, at its root:

- ``setup.sh``: installs Python (the minor version the bundle was built with, through ``uv``)
  into ``/opt/course-venv``, then this package from the wheel inside the zip, its dependencies
  pinned by ``constraints.txt`` to the versions of the machine that built the bundle;
- ``run_autograder``: runs ``python -m course.grading.gradescope run``, which grades the one
  notebook in ``submission/`` with the same grader as ``course grade``
  (``course.grading.runner.grade``) and writes ``results.json``: the score, and one test per
  exercise (``name``, ``number``, ``score``, ``max_score``, ``status``, ``output`` = the hint);
- ``course-gradescope.json``: the lab, the tests' visibility and the time limits.

No solution goes into the zip: the grader judges with the checks installed with the package,
and the limits are the ceilings given when the bundle is built (calibrating on the solution
would need the solution inside the container, where an unsandboxed kernel could read it).
``AUTOGRADER_ROOT`` (default ``/autograder``) and ``AUTOGRADER_PYTHON`` (default
``/opt/course-venv/bin/python``) let a test run the bundle in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from course.grading.limits import CELL_TIMEOUT, CHECK_TIMEOUT, TOTAL_TIMEOUT

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
CONFIG_NAME = "course-gradescope.json"
VENV = "/opt/course-venv"

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (as root, with network).
# It installs Python {python} and the course package from the wheel in this bundle, with its
# dependencies pinned to the versions the bundle was built and tested with.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v curl >/dev/null; then
    apt-get update && apt-get install -y --no-install-recommends curl ca-certificates
fi
curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh
uv venv --python {python} {venv}
uv pip install --python {venv}/bin/python --constraint constraints.txt ./{wheel}
{venv}/bin/python -c "import course.grading.gradescope"
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission, in a fresh container: grade submission/ with
# `course grade`'s grader and write results/results.json.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-{venv}/bin/python}}"
cd "$ROOT"
exec "$PYTHON" -m course.grading.gradescope run --root "$ROOT"
"""


def build_bundle(
    lab: int,
    out: str | Path,
    visibility: str = "visible",
    stdout_visibility: str = "hidden",
    package: str | Path | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    check_timeout: float = CHECK_TIMEOUT,
) -> Path:
    """Write a Gradescope autograder zip for ``lab`` to ``out`` (never over an existing file).

    Args:
        lab: the lab number (its exercises must be registered).
        out: the zip to write, e.g. ``autograder.zip``.
        visibility: when students see each exercise's result: ``visible`` (default),
            ``hidden``, ``after_due_date`` or ``after_published``.
        stdout_visibility: the same for the grader's log (``hidden`` by default).
        package: a wheel of this package to install; by default one is built from the
            source tree the package was installed from (``pip wheel``).
        cell_timeout, total_timeout, check_timeout: the grader's limits in seconds.

    Returns:
        The path of the zip.
    """
    from course.grading.registry import exercises

    out = Path(out)
    for name, value in [("visibility", visibility), ("stdout visibility", stdout_visibility)]:
        if value not in VISIBILITIES:
            raise ValueError(f"{name} {value!r} is not one of {', '.join(VISIBILITIES)}")
    if out.exists():
        raise ValueError(f"{out} exists; remove it or give another --out (nothing was written)")
    if out.suffix != ".zip":
        raise ValueError(f"--out {out} should end in .zip (Gradescope uploads a zip)")
    entries = exercises(lab)
    with tempfile.TemporaryDirectory() as folder:
        wheel = Path(package) if package else _build_wheel(Path(folder))
        if not wheel.is_file() or wheel.suffix != ".whl":
            raise ValueError(f"--package {wheel} is not a wheel file (.whl) of this package")
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        config = {
            "lab": lab,
            "exercises": [entry.id for entry in entries],
            "visibility": visibility,
            "stdout_visibility": stdout_visibility,
            "cell_timeout": cell_timeout,
            "total_timeout": total_timeout,
            "check_timeout": check_timeout,
            "built_with": {"course": _version(), "python": python},
        }
        files = {
            "setup.sh": SETUP_SH.format(python=python, venv=VENV, wheel=wheel.name),
            "run_autograder": RUN_AUTOGRADER.format(venv=VENV),
            CONFIG_NAME: json.dumps(config, indent=2) + "\n",
            "constraints.txt": "\n".join(pinned_requirements()) + "\n",
        }
        temporary = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, text in files.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (
                    0o755 if name in ("setup.sh", "run_autograder") else 0o644
                ) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, text)
            bundle.write(wheel, wheel.name)
        os.replace(temporary, out)
    return out


def pinned_requirements(distribution: str = "course") -> list[str]:
    """``name==version`` for every package ``distribution`` needs, as installed here."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    queue = [(distribution, set())]
    while queue:
        name, extras = queue.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in extras or {""}]
            if requirement.marker and not any(
                requirement.marker.evaluate(environment) for environment in environments
            ):
                continue
            key = requirement.name.lower().replace("_", "-")
            try:
                version = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                continue
            if key not in pins:
                pins[key] = version
                queue.append((requirement.name, set(requirement.extras)))
            elif requirement.extras:
                queue.append((requirement.name, set(requirement.extras)))
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def run_autograder(root: str | Path = "/autograder") -> dict[str, Any]:
    """Grade ``root/submission`` and write ``root/results/results.json``; return the results.

    Whatever happens (no notebook, a crash, a bug here), a results.json with a message for the
    student is written.
    """
    root = Path(root)
    started = time.monotonic()
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        config = json.loads((root / "source" / CONFIG_NAME).read_text(encoding="utf-8"))
        results = _grade(root, config)
    except Exception:  # the student must see that grading failed, never a missing score
        traceback.print_exc()
        results = {
            "score": 0.0,
            "output": "The autograder failed before grading your submission; your "
            "instructor has the details. Resubmitting the same file will not help.",
            "tests": [],
        }
    results["execution_time"] = round(time.monotonic() - started)
    path = results_dir / "results.json"
    temporary = path.with_name(".results.json.tmp")
    temporary.write_text(json.dumps(results, indent=2), encoding="utf-8")
    os.replace(temporary, path)
    return results


def results_from_report(report: dict[str, Any], visibility: str = "visible") -> dict[str, Any]:
    """Gradescope's results.json for one ``course grade`` report.

    One test per exercise: ``output`` is the grader's hint (what went wrong), or "Passed.".
    The top-level ``output`` gives the total, why the notebook did not run to the end (if it
    did not) and the grader's notes (a cell that raised, one that was interrupted).
    """
    tests = [
        {
            "name": f"{entry['id']} {entry['title']}",
            "number": entry["id"],
            "score": entry["points"],
            "max_score": entry["max_points"],
            "status": "passed" if entry["passed"] else "failed",
            "output": "Passed." if entry["passed"] else entry["message"],
            "visibility": visibility,
        }
        for entry in report["exercises"]
    ]
    lines = [f"Lab {report['lab']}: {report['points']:g}/{report['max_points']:g} points."]
    if report["message"]:
        lines.append(report["message"])
    lines += report.get("notes") or []  # e.g. "cell 17 (`raise ...`) raised RuntimeError: ..."
    return {
        "score": report["points"],
        "output": "\n".join(lines),
        "tests": tests,
        "extra_data": {"status": report["status"], "flags": report.get("flags", [])},
    }


def _grade(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Grade the one notebook in ``root/submission`` as ``course grade`` would."""
    from course.grading.runner import find_submissions, grade

    lab = config["lab"]
    found = find_submissions([root / "submission"]) if (root / "submission").is_dir() else []
    if len(found) > 1:  # prefer the files named after the lab (02_vae_mnist.py, lab02.ipynb)
        from course.grading.registry import lab_from_name

        found = [path for path in found if lab_from_name(path.name) == lab] or found
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "none"
        problem = "several notebooks" if found else "no .py or .ipynb notebook"
        results = {
            "score": 0.0,
            "output": f"Your submission has {problem} (found: {names}). Upload one file: your "
            f"copy of lab {lab}, e.g. {lab:02d}_topic.py or lab{lab:02d}.ipynb.",
            "tests": [],
        }
    else:
        with tempfile.TemporaryDirectory() as out:
            (report,) = grade(
                found,
                out,
                lab=lab,
                cell_timeout=config["cell_timeout"],
                total_timeout=config["total_timeout"],
                check_timeout=config["check_timeout"],
                calibrate=False,
            )
        results = results_from_report(report, config["visibility"])
    results["stdout_visibility"] = config["stdout_visibility"]
    return results


def _build_wheel(folder: Path) -> Path:
    """Build a wheel of this package from a copy of the source tree it was installed from (so
    that the build leaves nothing in that tree)."""
    import shutil

    import course

    source = Path(course.__file__).resolve().parents[1]
    if not (source / "pyproject.toml").is_file():
        raise ValueError(
            f"no source tree next to the installed package ({source}); build a wheel "
            "(python -m pip wheel --no-deps DIR) and pass it with --package"
        )
    tree = folder / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source / "course", tree / "course", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, tree / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--quiet", "--wheel-dir", str(folder), str(tree)]
    completed = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(folder.glob("course-*.whl"))
    if completed.returncode != 0 or not wheels:
        raise ValueError(f"building a wheel of {source} failed:\n{completed.stderr[-2000:]}")
    return wheels[0]


def _version() -> str:
    try:
        return metadata.version("course")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """``python -m course.grading.gradescope run --root DIR`` (what ``run_autograder`` calls)."""
    parser = argparse.ArgumentParser(prog="python -m course.grading.gradescope")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    args = parser.parse_args(argv)
    results = run_autograder(args.root)
    print(f"results.json: score {results['score']:g}, {len(results['tests'])} tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
