"""Every lab, end to end: each solution runs in smoke mode and gets full marks, each generated
student lab runs without crashing the grader and scores zero with "not implemented" feedback,
each lab survives a round trip through .ipynb, and labs/ is in sync with solutions/.

The solutions and student labs that the selected tests need are graded in ONE run of the grader,
three kernels at a time: a kernel spends much of its time on one core or waiting (starting
TensorFlow, loading data), so on 2 cores three at a time finish well before one by one."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from course.grading import check_labs
from course.grading.runner import grade

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.py"))
# Ceilings only: a lab that hangs fails its test in minutes instead of blocking the suite.
LIMITS = {"cell_timeout": 300, "total_timeout": 900, "check_timeout": 120}
GRADED_BY = (
    "test_each_solution_runs_in_smoke_mode_and_gets_full_marks",
    "test_each_student_lab_scores_zero_with_not_implemented_feedback",
)


def test_there_are_seven_labs_and_each_has_a_student_version():
    assert [p.name for p in SOLUTIONS] == [p.name for p in LABS]
    assert [p.name[:2] for p in SOLUTIONS] == ["01", "02", "03", "04", "05", "06", "07"]


def test_labs_are_in_sync_with_solutions():
    assert check_labs(ROOT / "solutions", ROOT / "labs") == []


@pytest.fixture(scope="module")
def reports(request, tmp_path_factory) -> dict[Path, dict]:
    """The grader's report of each notebook that a selected test of this module grades.

    The labs themselves are tested here, not the sandbox (tests/test_grading.py covers it).
    """
    paths = [
        item.callspec.params["path"]
        for item in request.session.items
        if item.module is request.module and getattr(item, "originalname", "") in GRADED_BY
    ]
    paths = list(dict.fromkeys(paths))
    graded = grade(
        paths,
        tmp_path_factory.mktemp("reports"),
        jobs=3,
        calibrate=False,
        sandbox=False,
        smoke=True,
        progress=False,
        **LIMITS,
    )
    assert len(graded) == len(paths)
    return dict(zip(paths, graded))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_each_solution_runs_in_smoke_mode_and_gets_full_marks(path, reports):
    report = reports[path]
    failed = {e["id"]: e["message"] for e in report["exercises"] if not e["passed"]}
    assert report["status"] == "ok", report["message"]
    assert failed == {}
    assert report["max_points"] > 0 and report["points"] == report["max_points"]
    assert 3 <= len(report["exercises"]) <= 6


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_each_student_lab_scores_zero_with_not_implemented_feedback(path, reports):
    report = reports[path]
    assert report["status"] == "not attempted", report["message"]
    assert report["points"] == 0 and report["max_points"] > 0
    for exercise in report["exercises"]:
        assert "not implemented" in exercise["message"].lower(), exercise


@pytest.mark.parametrize("path", SOLUTIONS + LABS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_lab_converts_to_ipynb_and_back(path):
    text = path.read_text()
    notebook = jupytext.reads(text, fmt="py:percent")
    assert len(notebook.cells) > 5
    again = jupytext.reads(jupytext.writes(notebook, fmt="ipynb"), fmt="ipynb")
    assert jupytext.writes(again, fmt="py:percent") == jupytext.writes(notebook, fmt="py:percent")
    assert [c.source for c in again.cells] == [c.source for c in notebook.cells]
