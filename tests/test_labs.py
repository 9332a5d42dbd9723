"""Every lab, end to end: each solution runs in smoke mode and gets full marks, each generated
student lab runs without crashing the grader and scores zero with "not implemented" feedback,
each lab survives a round trip through .ipynb, and labs/ is in sync with solutions/."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from course.grading import check_labs
from course.grading.limits import Limits
from course.grading.runner import Settings, grade_submission

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.py"))
LIMITS = Limits(cell=300, total=900, check=120)
# The labs themselves, not the sandbox (tests/test_grading.py covers that).
SETTINGS = Settings(smoke=True, sandbox=False, unsandboxed_reason="testing the labs")


def test_there_are_seven_labs_and_each_has_a_student_version():
    assert [p.name for p in SOLUTIONS] == [p.name for p in LABS]
    assert [p.name[:2] for p in SOLUTIONS] == ["01", "02", "03", "04", "05", "06", "07"]


def test_labs_are_in_sync_with_solutions():
    assert check_labs(ROOT / "solutions", ROOT / "labs") == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_each_solution_runs_in_smoke_mode_and_gets_full_marks(path):
    report = grade_submission(path, limits=LIMITS, settings=SETTINGS)
    failed = {e["id"]: e["message"] for e in report["exercises"] if not e["passed"]}
    assert report["status"] == "ok", report["message"]
    assert failed == {}
    assert report["max_points"] > 0 and report["points"] == report["max_points"]
    assert 3 <= len(report["exercises"]) <= 6


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_each_student_lab_scores_zero_with_not_implemented_feedback(path):
    report = grade_submission(path, limits=LIMITS, settings=SETTINGS)
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
