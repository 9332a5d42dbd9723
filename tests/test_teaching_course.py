"""Teaching a course, end to end (issue 18): roster -> course grade -> feedback -> course
gradebook -> Canvas and Moodle CSV -> course report -> the Gradescope bundle.

One grading run of lab 1 serves the whole module: a roster of four students and three
submissions in Canvas' download layout (Jane's is the solution, Bob's the untouched lab, handed
in late, Alice's averages the loss of 1.3 over the genes); Carol handed in nothing. The
Gradescope bundle then grades Alice's notebook in a temporary root that stands for
``/autograder``. A demo-lab run checks the calibration progress lines and the files' owner
under sudo."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import pytest

from course import cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "grading_fixtures"
(SOLUTION,) = (ROOT / "solutions").glob("01_*.py")
(LAB,) = (ROOT / "labs").glob("01_*.py")
RIGHT_LOSS = "squared_error = ops.sum(ops.square(expression - reconstruction), axis=-1)"
WRONG_LOSS = "squared_error = ops.mean(ops.square(expression - reconstruction), axis=-1)"
ROSTER = """student_id,name,email,sis_id,section
5678,"Doe, Jane",jane.doe@uni.example,S-5678,Tuesday
1234,Bob Smith,bob.smith@uni.example,S-1234,Tuesday
4321,Alice Lee,alice.lee@uni.example,S-4321,Thursday
8765,Carol King,carol.king@uni.example,S-8765,Thursday
"""
FILES = {  # Canvas: <sortable name>[_LATE]_<user id>_<attachment id>_<the student's file name>
    "5678": "doejane_5678_91011_01_keras_basics.ipynb",
    "1234": "smithbob_LATE_1234_91012_01_keras_basics.py",
    "4321": "leealice_4321_91013_lab_01.ipynb",
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Grade the class once, build its gradebook, exports and class page; run the Gradescope
    bundle on Alice's notebook. Returns the folder and what `course grade` printed."""
    root = tmp_path_factory.mktemp("course")
    download = root / "download"
    download.mkdir()
    solution = SOLUTION.read_text()
    assert RIGHT_LOSS in solution
    notebooks = {
        "5678": solution,
        "1234": LAB.read_text(),
        "4321": solution.replace(RIGHT_LOSS, WRONG_LOSS),
    }
    for student, text in notebooks.items():
        path = download / FILES[student]
        if path.suffix == ".ipynb":
            jupytext.write(jupytext.reads(text, fmt="py:percent"), path)
        else:
            path.write_text(text)
    (root / "roster.csv").write_text(ROSTER)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["grade", str(download), "--roster", str(root / "roster.csv"),
                         "--out", str(root / "grades"), "--jobs", "3", "--no-calibrate"]) == 0
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["gradebook", str(root / "grades"), "--roster", str(root / "roster.csv"),
                         "--out", str(root / "gradebook.csv"), "--canvas",
                         str(root / "canvas.csv"), "--moodle", str(root / "moodle.csv")]) == 0
        assert cli.main(["report", str(root / "grades"), "--out", str(root / "report.html")]) == 0
    run_gradescope(root, download / FILES["4321"])
    return root, printed.getvalue()


def run_gradescope(root: Path, notebook: Path) -> None:
    """Build the lab-1 bundle and run its run_autograder on ``notebook`` in ``root/autograder``
    (a stand-in wheel: setup.sh is not run; the installed package grades)."""
    from course.grading.gradescope import build_bundle

    wheel = root / "course-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"stand-in")
    bundle = build_bundle(1, root / "autograder.zip", package=wheel)
    autograder = root / "autograder"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(autograder / "source")
    (autograder / "submission").mkdir()
    shutil.copy(notebook, autograder / "submission" / "01_keras_basics.ipynb")
    script = autograder / "source" / "run_autograder"
    script.chmod(0o755)
    environment = {**os.environ, "AUTOGRADER_ROOT": str(autograder),
                   "AUTOGRADER_PYTHON": sys.executable}
    completed = subprocess.run([str(script)], capture_output=True, text=True, timeout=900,
                               env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]


def reports(root: Path) -> dict[str, dict]:
    found = [json.loads(path.read_text()) for path in (root / "grades").glob("*.json")]
    return {report["student"]["id"]: report for report in found}


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def solution_lines() -> list[str]:
    """Every line inside a solution block of lab 1 that its student version does not show."""
    lab = LAB.read_text()
    blocks = re.findall(r"### BEGIN SOLUTION[^\n]*\n(.*?)### END SOLUTION", SOLUTION.read_text(),
                        flags=re.S)
    lines = {line.strip() for block in blocks for line in block.splitlines()}
    return sorted(line for line in lines if len(line) >= 6 and line not in lab)


def test_each_submission_is_graded_under_its_student_and_carol_is_missing(course):
    root, printed = course
    graded = reports(root)
    assert sorted(graded) == ["1234", "4321", "5678", "8765"]
    assert sorted(path.name for path in (root / "grades").glob("*.json")) == [
        "1234_lab01.json", "4321_lab01.json", "5678_lab01.json", "8765_lab01.json"]
    assert graded["5678"]["student"]["name"] == "Doe, Jane"
    assert (graded["5678"]["points"], graded["5678"]["max_points"]) == (9, 9)
    assert (graded["1234"]["status"], graded["1234"]["points"]) == ("not attempted", 0)
    assert (graded["8765"]["status"], graded["8765"]["submission"]) == ("missing", "")
    alice = {entry["id"]: entry for entry in graded["4321"]["exercises"]}
    assert not alice["1.3"]["passed"]
    assert alice["1.3"]["message"].startswith("you averaged over the genes too")
    assert alice["1.1"]["passed"] and alice["1.2"]["passed"]
    for student in ["5678", "1234", "4321"]:
        assert re.search(rf"^{student} +\d+/9 ", printed, flags=re.M), printed
    assert re.search(r"^8765 +0/9 .* missing: no submission", printed, flags=re.M)


def test_grades_csv_names_the_students_and_every_exercise_that_lost_points(course):
    root, _ = course
    table = {row[0]: row for row in read_csv(root / "grades" / "grades.csv")}
    assert table["student_id"][:4] == ["student_id", "name", "submission", "lab"]
    reason = table["4321"][-1]
    lost = [entry["id"] for entry in reports(root)["4321"]["exercises"] if not entry["passed"]]
    assert reason.startswith("1.3: you averaged over the genes too")
    assert all(f"{key}: " in reason for key in lost)
    assert table["8765"][-2] == "missing"


def test_every_student_gets_feedback_without_a_line_of_the_solution(course):
    root, _ = course
    folder = root / "grades" / "feedback"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        f"{student}_lab01.{kind}" for student in ["1234", "4321", "5678", "8765"]
        for kind in ["html", "md"])
    secrets = solution_lines()
    assert len(secrets) >= 10 and "return ops.mean(squared_error)" in secrets
    for path in folder.iterdir():
        text = path.read_text()
        assert [line for line in secrets if line in text] == [], path.name
        assert "<script" not in text
    alice = (folder / "4321_lab01.md").read_text()
    assert "**0 / 2 points** (lost its points)" in alice
    assert "What to fix: you averaged over the genes too" in alice
    assert re.search(r"Judged after cell \d+ \(`def reconstruction_loss", alice)
    page = (folder / "4321_lab01.html").read_text()
    assert "Feedback on lab 1 for Alice Lee" in page and "/ 9 points" in page


def test_the_gradebook_and_the_lms_files_carry_the_graded_scores(course):
    root, _ = course
    alice = reports(root)["4321"]["points"]
    assert 0 < alice < 9
    book = {row[0]: row for row in read_csv(root / "gradebook.csv")}
    assert book["student_id"][5:] == ["Lab 1 (out of 9)", "total", "max", "notes"]
    assert book["5678"][5:8] == ["9", "9", "9"]
    assert book["4321"][5] == f"{alice:g}"
    assert book["1234"][5:] == ["0", "0", "9", "lab 1: not attempted (no exercise was attempted "
                                                "(each still raises NotImplementedError))"]
    assert book["8765"][5:] == ["missing", "0", "9", "lab 1: missing"]
    assert read_csv(root / "canvas.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 1"],
        ["Points Possible", "", "", "", "", "9"],
        ["Doe, Jane", "5678", "S-5678", "", "Tuesday", "9"],
        ["Bob Smith", "1234", "S-1234", "", "Tuesday", "0"],
        ["Alice Lee", "4321", "S-4321", "", "Thursday", f"{alice:g}"],
        ["Carol King", "8765", "S-8765", "", "Thursday", ""],
    ]
    assert read_csv(root / "moodle.csv") == [
        ["Email address", "Lab 1"],
        ["jane.doe@uni.example", "9"],
        ["bob.smith@uni.example", "0"],
        ["alice.lee@uni.example", f"{alice:g}"],
        ["carol.king@uni.example", "-"],
    ]


def test_the_class_report_shows_pass_rates_hints_scores_and_the_slowest(course):
    root, _ = course
    page = (root / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "3 submissions, 1 student without a submission" in page
    assert re.search(r"<td>1</td><td>1\.3</td><td>you averaged over the genes too", page)
    assert "Alice Lee (4321)" in page.split("Slowest submissions")[1]
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")


def test_the_gradescope_bundle_gives_the_same_scores(course):
    root, _ = course
    results = json.loads((root / "autograder" / "results" / "results.json").read_text())
    alice = reports(root)["4321"]
    assert results["score"] == alice["points"]
    assert {test["number"]: test["score"] for test in results["tests"]} == {
        entry["id"]: entry["points"] for entry in alice["exercises"]}


def test_a_submission_that_names_no_student_stops_the_run_before_grading(tmp_path, capsys):
    download = tmp_path / "download"
    download.mkdir()
    for name in [FILES["5678"], "smithbob_9999_91012_01_keras_basics.py", "stray_01.py"]:
        (download / name).write_text("# %%\nx = 1\n")
    (tmp_path / "roster.csv").write_text(ROSTER)
    out = tmp_path / "grades"
    assert cli.main(["grade", str(download), "--roster", str(tmp_path / "roster.csv"), "--out",
                     str(out)]) == 2
    error = capsys.readouterr().err
    assert "nothing was graded: " in error
    assert "Canvas user 9999, who is not in roster" in error
    assert "stray_01.py matches no student" in error
    assert not out.exists()


@pytest.fixture
def demo_lab(monkeypatch):
    """The demo lab's checks, importable here and in the kernels."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("COURSE_CHECKS_PACKAGE", "demo_checks")
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES), prepend=os.pathsep)


def test_calibration_says_what_it_does_and_sudo_users_own_the_output(demo_lab, tmp_path, capsys,
                                                                     monkeypatch):
    from course.grading.runner import grade

    if os.geteuid() == 0:
        monkeypatch.setenv("SUDO_UID", "4321")
        monkeypatch.setenv("SUDO_GID", "4322")
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(FIXTURES / "99_demo.py", solutions)
    (tmp_path / "roster.csv").write_text("student_id,name,email\nann,Ann,ann@x\n")
    shutil.copy(FIXTURES / "99_demo.py", tmp_path / "ann_99.py")
    arguments = dict(solutions=solutions, cache_dir=tmp_path / "cache", roster=tmp_path /
                     "roster.csv", total_timeout=120)
    umask = os.umask(0o022)
    try:
        grade([tmp_path / "ann_99.py"], tmp_path / "first", **arguments)
    finally:
        os.umask(umask)
    first = capsys.readouterr().out
    assert re.search(r"^calibrating lab 99 on its solution 99_demo\.py \(one run of the "
                     r"solution; its time is cached afterwards\)\.\.\.\n"
                     r"lab 99: time limits from its solution's run of \d+ s \(measured now\)\n"
                     r"ann +4/4 ", first), first
    grade([tmp_path / "ann_99.py"], tmp_path / "again", **arguments)
    again = capsys.readouterr().out
    assert "calibrating" not in again and "(from the cache)" in again
    written = [tmp_path / "first", *(tmp_path / "first").rglob("*")]
    assert {path.name for path in written} >= {"ann_lab99.json", "grades.csv", "feedback",
                                                "ann_lab99.html", "ann_lab99.md"}
    for path in written:  # readable like any file made under umask 022, not mkstemp's 0600
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
        if os.geteuid() == 0:
            assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322), path
