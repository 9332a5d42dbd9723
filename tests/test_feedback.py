"""Feedback pages: per exercise the points, the hint and the cell that failed; never a line of
the solution; everything from the submission escaped. Built from made-up reports on the demo
lab (tests/grading_fixtures/99_demo.py), without grading."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from course.grading import reports
from course.grading.feedback import build_feedback, secret_lines, to_html, write_feedback

FIXTURES = Path(__file__).parent / "grading_fixtures"
SOLUTION = FIXTURES / "99_demo.py"
SQUARES = "squares = [number**2 for number in range(5)]"
INJECTED = "<script>alert('x')</script>"


@pytest.fixture(scope="module", autouse=True)
def demo_checks():
    """Make the demo lab's checks importable (the feedback names the cells of its exercises)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FIXTURES))
        patch.setenv("COURSE_CHECKS_PACKAGE", "demo_checks")
        yield


@pytest.fixture
def graded(tmp_path):
    """A submission whose 99.3 cell is the solution's line and then raises an injected error,
    the report the grader would write for it, and a solutions folder."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions)
    text = SOLUTION.read_text()
    assert SQUARES in text
    submission = tmp_path / "bob_99.py"
    submission.write_text(text.replace(SQUARES, f"{SQUARES}\nraise ValueError({INJECTED!r})"))
    cells = text.split("# %%")
    number = next(i for i, cell in enumerate(cells) if SQUARES in cell)  # 1-based: split adds one
    entries = [
        ("99.1", "Add two numbers", 1, True, ""),
        ("99.2", "The mean of a list", 2, False, "the mean of [1, 2] is 3, not 1.5: try "
                                                 "return total / len(values)"),
        ("99.3", "A list of squares", 1, False, f"squares is not defined {INJECTED}"),
    ]
    report = reports.validate({
        "schema": reports.SCHEMA, "submission": str(submission), "lab": 99,
        "student": {"id": "bob", "name": "Bob <i>Smith</i>", "email": "", "sis_id": "",
                    "section": ""},
        "points": 1, "max_points": 4, "elapsed_s": 3.0, "status": "ok", "message": "",
        "sandboxed": True, "warnings": [], "limits": {}, "exercises": [
            {"id": key, "title": title, "points": points if passed else 0, "max_points": points,
             "passed": passed, "message": message}
            for key, title, points, passed, message in entries],
        "notes": [f"cell {number} (`{SQUARES}`) raised ValueError: {INJECTED}",
                  "the notebook printed 3 MB to stderr"],
    })
    return report, submission, solutions


def test_each_exercise_shows_points_hint_and_the_cell_that_failed(graded):
    report, submission, solutions = graded
    feedback = build_feedback(report, submission, secret_lines(solutions, 99))
    first, second, third = feedback.exercises
    assert feedback.title == "Feedback on lab 99 for Bob <i>Smith</i>"
    assert feedback.score == "1 / 4 points"
    assert (first.passed, first.hint, first.problems) == (True, "", [])
    assert second.hint == "the mean of [1, 2] is 3, not 1.5: try […]"
    assert re.fullmatch(r"cell \d+ \(`check\(\"99\.2\"\)`\)|cell \d+ \(`def mean\(values\):`\)",
                        second.judged_after)
    assert third.problems == [f"Cell {third.problems[0].split()[1]} (`[…]`) raised ValueError: "
                              f"{INJECTED}"]
    assert feedback.other_notes == ["The notebook printed 3 MB to stderr"]


def test_no_line_of_the_solution_reaches_the_feedback_files(graded, tmp_path):
    report, submission, solutions = graded
    html_path, markdown_path = write_feedback(report, tmp_path / "out", "bob_lab99", submission,
                                              solutions)
    assert (html_path.name, markdown_path.name) == ("bob_lab99.html", "bob_lab99.md")
    secrets = secret_lines(solutions, 99)
    assert {SQUARES, "total = sum(values)", "return total / len(values)"} <= secrets
    for path in (html_path, markdown_path):
        text = path.read_text()
        assert [line for line in secrets if line in text] == [], path


def test_text_from_the_submission_cannot_inject_html_or_markdown(graded, tmp_path):
    report, submission, solutions = graded
    html_path, markdown_path = write_feedback(report, tmp_path / "out", "bob_lab99", submission,
                                              solutions)
    page = html_path.read_text()
    assert "<script" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Bob &lt;i&gt;Smith&lt;/i&gt;" in page
    markdown = markdown_path.read_text()
    assert "<script" not in markdown.replace("\\<script", "")
    assert "\\<script\\>alert('x')\\</script\\>" in markdown


def test_a_missing_student_is_told_no_submission_was_found():
    made = reports.missing_report({"id": "carol", "name": "Carol", "email": "", "sis_id": "",
                                   "section": ""}, 99, [])
    page = to_html(build_feedback(made))
    assert "No submission of lab 99 was found for you" in page
    assert "Feedback on lab 99 for Carol" in page
