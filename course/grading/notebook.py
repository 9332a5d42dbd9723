"""What a lab notebook calls: ``check("2.1")`` after an exercise, ``check_all()`` at the end."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course.grading.limits import CHECK_TIMEOUT
from course.grading.registry import (
    CheckResult,
    exercises,
    get_exercise,
    lab_from_name,
    run_check,
)

# Where a notebook's own file name can be found among its globals: JupyterLab sets
# ``__session__``, VS Code ``__vsc_ipynb_file__``, a plain ``python lab.py`` run ``__file__``.
_FILE_NAME_GLOBALS = ("__session__", "__vsc_ipynb_file__", "__file__")


@dataclass(frozen=True)
class LabResult:
    """The results of all the checks of one lab."""

    lab: int
    results: list[CheckResult]

    @property
    def points(self) -> float:
        return sum(result.points for result in self.results)

    @property
    def max_points(self) -> float:
        return sum(result.max_points for result in self.results)

    def __str__(self) -> str:
        width = max((len(result.title) for result in self.results), default=0)
        lines = [f"Lab {self.lab}: {self.points:g}/{self.max_points:g} points"]
        for result in self.results:
            mark = "✔" if result.passed else "✘"
            score = f"{result.points:g}/{result.max_points:g}"
            detail = "" if result.passed else f"  {result.message}"
            lines.append(
                f"{mark} {result.id:<6} {result.title:<{width}}  {score:>7}{detail}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The results as the JSON-ready dict the grader reads."""
        return {
            "lab": self.lab,
            "points": self.points,
            "max_points": self.max_points,
            "exercises": [result.to_dict() for result in self.results],
        }

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: ``check_all()`` has already printed the table."""


def check(
    exercise_id: str,
    timeout: float | None = CHECK_TIMEOUT,
    namespace: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Check one exercise against the caller's globals and print a one-line result.

    Args:
        exercise_id: the id from the exercise's heading, e.g. ``"2.1"``.
        timeout: seconds before the check is stopped (None: no limit).
        namespace: the names to check; by default the globals of the calling notebook.

    Returns:
        The result: ``points``, ``max_points``, ``passed`` and ``message``.
    """
    namespace = _caller_globals() if namespace is None else namespace
    result = run_check(get_exercise(exercise_id), namespace, timeout)
    print(result)
    return result


def check_all(
    lab: int | None = None,
    report_path: str | Path | None = None,
    timeout: float | None = CHECK_TIMEOUT,
    namespace: Mapping[str, Any] | None = None,
) -> LabResult:
    """Check every exercise of a lab, print a table and optionally write a JSON report.

    Args:
        lab: the lab number; by default read from the notebook's file name (``02_vae.py`` -> 2).
        report_path: where to write the results as JSON (the grader reads this file).
        timeout: seconds allowed for each check (None: no limit).
        namespace: the names to check; by default the globals of the calling notebook.
    """
    namespace = _caller_globals() if namespace is None else namespace
    lab = _lab_from_namespace(namespace) if lab is None else lab
    result = LabResult(lab, [run_check(entry, namespace, timeout) for entry in exercises(lab)])
    print(result)
    if report_path is not None:
        Path(report_path).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return result


def _caller_globals() -> dict[str, Any]:
    """The globals of the code that called ``check`` or ``check_all``."""
    return inspect.currentframe().f_back.f_back.f_globals


def _lab_from_namespace(namespace: Mapping[str, Any]) -> int:
    for key in _FILE_NAME_GLOBALS:
        lab = lab_from_name(str(namespace.get(key, "")))
        if lab is not None:
            return lab
    raise ValueError("cannot tell which lab this notebook is; call check_all(lab=2) for lab 2")
