"""Grading: solutions -> labs, the checks registry and ``check()``, the grader, the CLI.

All of it runs on the demo lab ``tests/grading_fixtures/99_demo.py``, whose checks live in
``tests/grading_fixtures/demo_checks/lab99.py`` (found through ``COURSE_CHECKS_PACKAGE``).
"""

from __future__ import annotations

import ast
import csv
import json
import shutil
import time
from pathlib import Path

import jupytext
import pytest

from course import cli
from course.grading import CheckFailed, build_labs, check, check_all, check_labs, exercise, make_lab
from course.grading.registry import lab_from_name

FIXTURES = Path(__file__).parent / "grading_fixtures"
SOLUTION = FIXTURES / "99_demo.py"
SOLUTION_LINES = ["return a + b", "total = sum(values)", "return total / len(values)", "number**2"]


@pytest.fixture(scope="module", autouse=True)
def demo_checks():
    """Make the demo lab's checks importable here and in the grader's kernels."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FIXTURES))
        patch.setenv("COURSE_CHECKS_PACKAGE", "demo_checks")
        patch.setenv("PYTHONPATH", str(FIXTURES), prepend=":")
        yield


@pytest.fixture
def solutions(tmp_path):
    """A solutions folder holding the demo lab."""
    folder = tmp_path / "solutions"
    folder.mkdir()
    shutil.copy(SOLUTION, folder)
    return folder


def lab_text() -> str:
    return make_lab(SOLUTION.read_text(), "solutions/99_demo.py")[0]


# --- solutions -> labs -------------------------------------------------------------------


def test_build_replaces_each_solution_by_a_stub_at_the_marker_indentation(solutions, tmp_path):
    (lab,) = build_labs(solutions, tmp_path / "labs")
    text = lab.read_text()
    assert lab.name == "99_demo.py"
    assert '    raise NotImplementedError("Exercise 99.1: Return the sum of a and b.")' in text
    assert '\nraise NotImplementedError("Exercise 99.3: Make `squares` the list of' in text
    assert "generated from solutions/99_demo.py" in text.splitlines()[0]


def test_build_leaves_no_solution_text_and_valid_code(solutions, tmp_path):
    text = build_labs(solutions, tmp_path / "labs")[0].read_text()
    assert "SOLUTION" not in text
    for line in SOLUTION_LINES:
        assert line not in text
    notebook = jupytext.reads(text, fmt="py:percent")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)


def test_build_keeps_the_jupytext_yaml_header_first():
    solution = "# ---\n# jupyter:\n#   jupytext:\n#     formats: py:percent\n# ---\n\n# %%\nx = 1\n"
    lines = make_lab(solution, "solutions/01_intro.py")[0].splitlines()
    assert lines[:5] == solution.splitlines()[:5]
    assert lines[5].startswith("# This lab is generated from solutions/01_intro.py")


def test_check_labs_is_empty_when_labs_are_in_sync(solutions, tmp_path):
    build_labs(solutions, tmp_path / "labs")
    assert check_labs(solutions, tmp_path / "labs") == []


def test_check_labs_reports_stale_missing_and_extra_labs(solutions, tmp_path):
    labs = tmp_path / "labs"
    build_labs(solutions, labs)
    with open(solutions / "99_demo.py", "a") as file:
        file.write("\n# %%\nprint('a new cell')\n")
    assert check_labs(solutions, labs) == [f"{labs / '99_demo.py'}: out of date"]

    (labs / "99_demo.py").unlink()
    (labs / "98_old.py").write_text("x = 1\n")
    assert check_labs(solutions, labs) == [
        f"{labs / '99_demo.py'}: missing",
        f"{labs / '98_old.py'}: has no solution in {solutions}",
    ]


def test_build_deletes_generated_labs_whose_solution_is_gone(solutions, tmp_path):
    labs = tmp_path / "labs"
    build_labs(solutions, labs)
    (solutions / "99_demo.py").rename(solutions / "97_renamed.py")
    (solutions / "97_renamed.py").write_text("# %%\nx = 1\n")
    build_labs(solutions, labs)
    assert sorted(path.name for path in labs.iterdir()) == ["97_renamed.py"]


MARKER_ERRORS = {
    "unmatched BEGIN": ("# %%\n### BEGIN SOLUTION 1.1: hint\nx = 1\n", r":2: .*no ### END"),
    "unmatched END": ("# %%\nx = 1\n### END SOLUTION\n", r":3: ### END SOLUTION without"),
    "nested": (
        "### BEGIN SOLUTION 1.1: a\n### BEGIN SOLUTION 1.2: b\n### END SOLUTION\n",
        r":2: nested BEGIN SOLUTION inside exercise 1.1",
    ),
    "missing id": ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", r":1: .*needs an exercise id"),
    "malformed id": ("### BEGIN SOLUTION two: hint\n### END SOLUTION\n", r":1: 'two' is not an"),
    "crosses a cell": (
        "# %%\n### BEGIN SOLUTION 1.1: a\nx = 1\n# %%\n### END SOLUTION\n",
        r":4: exercise 1.1 \(line 2\) runs into the next cell",
    ),
    "duplicate in a file": (
        "### BEGIN SOLUTION 1.1: a\n### END SOLUTION\n" * 2,
        r"01_intro.py:3: exercise id 1.1 is used twice \(also at solutions/01_intro.py:1\)",
    ),
    "another lab's id": (
        "### BEGIN SOLUTION 2.1: a\n### END SOLUTION\n",
        r":1: exercise 2.1 belongs to lab 2, but this is lab 1",
    ),
}


@pytest.mark.parametrize("problem", list(MARKER_ERRORS))
def test_marker_errors_name_the_file_and_line(problem, tmp_path):
    text, message = MARKER_ERRORS[problem]
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "01_intro.py").write_text(text)
    with pytest.raises(ValueError, match=message):
        build_labs(tmp_path / "solutions", tmp_path / "labs")


def test_an_exercise_id_used_in_two_solutions_is_an_error(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    for name in ["01_a.py", "01_b.py"]:
        (solutions / name).write_text("### BEGIN SOLUTION 1.1: hint\nx = 1\n### END SOLUTION\n")
    with pytest.raises(ValueError, match=r"01_b.py:1: exercise id 1.1 is used twice"):
        check_labs(solutions, tmp_path / "labs")


# --- checks registry and check() ---------------------------------------------------------


def namespace(**names) -> dict:
    return {"__name__": "__main__", **names}


def test_check_passes_and_prints_a_one_line_result(capsys):
    result = check("99.1", namespace=namespace(add=lambda a, b: a + b))
    assert (result.points, result.max_points, result.passed) == (1, 1, True)
    assert capsys.readouterr().out == "✔ Exercise 99.1 (1/1): Add two numbers\n"


def test_check_reads_the_callers_globals():
    student = namespace(check=check, add=lambda a, b: a + b)
    exec("result = check('99.1')", student)
    assert student["result"].passed


def test_a_wrong_answer_gets_the_checks_hint(capsys):
    result = check("99.1", namespace=namespace(add=lambda a, b: a - b))
    assert (result.points, result.passed) == (0, False)
    assert result.message == "add(1, 2) returned -1; expected 3"
    assert capsys.readouterr().out.startswith("✘ Exercise 99.1 (0/1): add(1, 2) returned -1")


def test_a_failed_assert_in_a_check_gives_its_message():
    result = check("99.2", namespace=namespace(mean=lambda values: 0))
    assert result.message == "mean([1, 2, 3, 6]) returned 0; expected 3"


def test_the_student_lab_stub_reports_not_implemented_with_the_hint():
    student = namespace()
    with pytest.raises(NotImplementedError, match="Exercise 99.3"):  # the top-level stub
        exec(lab_text(), student)
    result = check("99.2", namespace=student)
    assert result.message == (
        "not implemented yet: Exercise 99.2: Return the arithmetic mean of a list of numbers."
    )


def test_a_missing_name_fails_only_its_exercise():
    result = check_all(
        lab=99, namespace=namespace(add=lambda a, b: a + b, squares=[0, 1, 4, 9, 16])
    )
    assert [entry.passed for entry in result.results] == [True, False, True]
    assert result.results[1].message == "`mean` is not defined: did you delete or rename it?"
    assert (result.points, result.max_points) == (2, 4)


def test_an_exception_in_student_code_is_reported_on_one_line():
    result = check("99.2", namespace=namespace(mean=lambda values: sum(values) / 0))
    assert result.message == "ZeroDivisionError: division by zero"


def test_an_infinite_loop_costs_only_its_exercise():
    def mean(values):
        while True:
            pass

    started = time.monotonic()
    result = check("99.2", timeout=0.5, namespace=namespace(mean=mean))
    assert time.monotonic() - started < 5
    assert result.message == "took longer than 0.5 s and was stopped (an infinite loop?)"


def test_an_infinite_loop_cannot_be_swallowed_by_except_exception():
    def mean(values):
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                pass

    assert not check("99.2", timeout=0.3, namespace=namespace(mean=mean)).passed


def test_check_all_infers_the_lab_from_the_file_name_and_writes_a_report(tmp_path, capsys):
    student = namespace(__file__="/home/alice/99_demo.py", add=lambda a, b: a + b)
    report = tmp_path / "report.json"
    check_all(report_path=report, namespace=student)
    data = json.loads(report.read_text())
    assert (data["lab"], data["points"], data["max_points"]) == (99, 1, 4)
    assert [entry["id"] for entry in data["exercises"]] == ["99.1", "99.2", "99.3"]
    assert capsys.readouterr().out.startswith("Lab 99: 1/4 points\n✔ 99.1")


def test_check_all_asks_for_the_lab_when_it_cannot_tell():
    with pytest.raises(ValueError, match=r"call check_all\(lab=2\)"):
        check_all(namespace=namespace())


def test_unknown_exercises_and_labs_are_clear_errors():
    with pytest.raises(ValueError, match="there is no exercise 99.9; this lab has: 99.1, 99.2"):
        check("99.9", namespace=namespace())
    with pytest.raises(ValueError, match="no checks for lab 42: module demo_checks.lab42"):
        check("42.1", namespace=namespace())


def test_exercise_rejects_bad_ids_points_and_duplicates():
    with pytest.raises(ValueError, match="'x1' is not an exercise id"):
        exercise("x1")
    with pytest.raises(ValueError, match="points must be >= 0"):
        exercise("99.8", points=-1)
    with pytest.raises(ValueError, match="exercise 99.1 is registered twice"):
        exercise("99.1")(lambda ns: None)


def test_check_failed_is_an_exception_a_check_raises():
    assert issubclass(CheckFailed, Exception)


@pytest.mark.parametrize(
    "name, lab",
    [
        ("02_vae_mnist.py", 2),
        ("alice_02.ipynb", 2),
        ("lab11-bob.py", 11),
        ("2024_carol_03.py", 3),
        ("alice.ipynb", None),
        ("alice_02_03.py", None),
    ],
)
def test_the_lab_number_comes_from_two_digits_in_the_file_name(name, lab):
    assert lab_from_name(name) == lab


# --- the grader --------------------------------------------------------------------------

CELL_TIMEOUT = 5
STUBBORN_LOOP = (  # a bare except also catches the KeyboardInterrupt of the grader's interrupt
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.1)\n"
    "    except BaseException:\n"
    "        pass"
)
NOISY_CELL = (
    "import os, sys, warnings\n"
    "warnings.warn('a warning on stderr')\n"
    "print('a message on stderr', file=sys.stderr)\n"
    "squares = squares if os.environ.get('COURSE_SMOKE') == '1' else []"
)


def with_cell(source: str) -> str:
    """The demo solution with one more code cell at the end."""
    return SOLUTION.read_text() + f"\n# %%\n{source}\n"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a folder of demo-lab submissions once; return the reports by name and the time."""
    folder = tmp_path_factory.mktemp("submissions")
    notebook = jupytext.reads(SOLUTION.read_text(), fmt="py:percent")
    jupytext.write(notebook, folder / "complete_99.ipynb")
    (folder / "empty_99.py").write_text(lab_text())
    for name in ["half_99.py", "crashing_99.py"]:
        shutil.copy(FIXTURES / "submissions" / name, folder)
    (folder / "hanging_99.py").write_text(with_cell("while True:\n    pass"))
    (folder / "stubborn_99.py").write_text(with_cell(STUBBORN_LOOP))
    (folder / "dying_99.py").write_text(with_cell("import os\nos._exit(1)"))
    (folder / "noisy_99.py").write_text(with_cell(NOISY_CELL))
    (folder / "broken_99.ipynb").write_text("{ not json")
    (folder / "unnumbered.py").write_text("# %%\nx = 1\n")
    out = tmp_path_factory.mktemp("grades")
    started = time.monotonic()
    reports = grade(
        [folder, folder / "missing_99.py"], out, cell_timeout=CELL_TIMEOUT, total_timeout=60
    )
    elapsed = time.monotonic() - started
    by_name = {Path(report["submission"]).stem: report for report in reports}
    return by_name, out, elapsed


def grade(*args, **kwargs):
    from course.grading.runner import grade

    return grade(*args, **kwargs)


def messages(report: dict) -> list[str]:
    return [entry["message"] for entry in report["exercises"]]


def test_grades_csv_has_one_row_per_submission_and_a_column_per_exercise(graded):
    reports, out, _ = graded
    with open(out / "grades.csv") as file:
        rows = {Path(row["submission"]).stem: row for row in csv.DictReader(file)}
    assert list(rows["complete_99"]) == [
        "submission",
        "lab",
        "99.1",
        "99.2",
        "99.3",
        "total",
        "max",
        "status",
    ]
    assert rows["complete_99"] | {"submission": ""} == {
        "submission": "",
        "lab": "99",
        "99.1": "1",
        "99.2": "2",
        "99.3": "1",
        "total": "4",
        "max": "4",
        "status": "ok",
    }
    assert (rows["empty_99"]["total"], rows["half_99"]["total"]) == ("0", "2")
    assert set(rows) == set(reports)


def test_each_submission_gets_a_json_report(graded):
    reports, out, _ = graded
    report = json.loads((out / "half_99.json").read_text())
    assert report == reports["half_99"]
    assert {"submission", "lab", "points", "max_points", "elapsed_s", "status"} <= set(report)
    assert set(report["exercises"][0]) == {
        "id",
        "title",
        "points",
        "max_points",
        "passed",
        "message",
    }


def test_a_complete_submission_gets_full_marks(graded):
    report = graded[0]["complete_99"]
    assert (report["points"], report["max_points"], report["status"]) == (4, 4, "ok")


def test_the_generated_student_lab_gets_zero_with_not_implemented_messages(graded):
    report = graded[0]["empty_99"]
    assert (report["points"], report["status"]) == (0, "ok")
    assert messages(report) == [
        "not implemented yet: Exercise 99.1: Return the sum of a and b.",
        "not implemented yet: Exercise 99.2: Return the arithmetic mean of a list of numbers.",
        "not implemented yet: Exercise 99.3: Make `squares` the list of the squares of 0, 1, 2, 3 "
        "and 4.",
    ]


def test_a_half_done_submission_gets_partial_marks(graded):
    report = graded[0]["half_99"]
    assert [entry["points"] for entry in report["exercises"]] == [1, 0, 1]
    assert messages(report)[1].startswith("not implemented yet: Exercise 99.2")


def test_crashing_cells_cost_only_what_they_touch(graded):
    report = graded[0]["crashing_99"]
    assert [entry["points"] for entry in report["exercises"]] == [1, 0, 1]
    assert messages(report)[1] == "`mean` is not defined: did you delete or rename it?"
    crash, syntax_error = report["notes"]
    assert crash.startswith("cell 3 (`raise RuntimeError(")
    assert crash.endswith("raised RuntimeError: this cell crashes, the next ones must still run")
    assert (
        syntax_error.startswith("cell 4 (`def mean(values) return")
        and "SyntaxError" in syntax_error
    )


def test_a_hanging_cell_is_interrupted_and_the_rest_still_runs(graded):
    report = graded[0]["hanging_99"]
    assert (report["points"], report["status"]) == (4, "ok")
    assert report["notes"] == [
        f"cell 10 (`while True:`) ran past the {CELL_TIMEOUT} s limit and was interrupted"
    ]


def test_a_kernel_that_ignores_the_interrupt_is_killed_and_nothing_is_graded(graded):
    report = graded[0]["stubborn_99"]
    assert (report["points"], report["max_points"], report["status"]) == (0, 4, "timeout")
    assert report["message"] == (
        f"cell 10 (`import time`) ran past the {CELL_TIMEOUT} s limit and did not stop when "
        "interrupted"
    )
    assert all(
        message.startswith("not graded: cell 10 (`import time`)") for message in messages(report)
    )
    assert report["elapsed_s"] < 3 * CELL_TIMEOUT + 5


def test_a_dying_kernel_gives_zero_with_the_reason(graded):
    report = graded[0]["dying_99"]
    assert (report["points"], report["status"]) == (0, "crashed")
    assert report["message"].startswith("the kernel died in cell 10 (`import os`)")


def test_output_on_stderr_costs_nothing(graded):
    assert graded[0]["noisy_99"]["points"] == 4


def test_the_kernel_runs_in_smoke_mode(graded):
    assert graded[0]["noisy_99"]["exercises"][2][
        "passed"
    ]  # squares survive only with COURSE_SMOKE=1


@pytest.mark.parametrize(
    "name, message",
    [
        ("broken_99", "cannot read broken_99.ipynb as a notebook"),
        ("missing_99", "does not exist"),
        ("unnumbered", "cannot tell the lab number from the file name 'unnumbered.py'"),
    ],
)
def test_a_submission_that_cannot_run_gets_an_error_report(graded, name, message):
    report = graded[0][name]
    assert report["status"] == "error"
    assert message in report["message"]


def test_the_whole_run_is_bounded(graded):
    assert graded[2] < 90


def test_the_total_limit_stops_a_slow_notebook(tmp_path):
    slow = tmp_path / "slow_99.py"
    slow.write_text(with_cell("import time\ntime.sleep(3)") + "\n# %%\ntime.sleep(3)\n")
    (report,) = grade(
        [slow], tmp_path / "out", cell_timeout=CELL_TIMEOUT, total_timeout=4, progress=False
    )
    assert (report["points"], report["status"]) == (0, "timeout")
    assert report["message"].startswith("the notebook ran past the total limit of 4 s in cell 1")
    assert report["elapsed_s"] < 15


# --- the command line --------------------------------------------------------------------


def test_labs_check_fails_until_labs_build_runs(solutions, tmp_path, capsys):
    labs = ["--solutions", str(solutions), "--labs", str(tmp_path / "labs")]
    assert cli.main(["labs", "check", *labs]) == 1
    assert "run `course labs build`" in capsys.readouterr().out
    assert cli.main(["labs", "build", *labs]) == 0
    assert cli.main(["labs", "check", *labs]) == 0


def test_labs_build_reports_marker_errors_as_usage_errors(tmp_path, capsys):
    (tmp_path / "01_intro.py").write_text("### END SOLUTION\n")
    assert cli.main(["labs", "build", "--solutions", str(tmp_path), "--labs", str(tmp_path)]) == 2
    assert "01_intro.py:1: ### END SOLUTION without" in capsys.readouterr().err


def test_grade_exits_zero_even_when_a_submission_fails(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["grade", str(tmp_path / "missing_02.py"), "--out", str(out)]) == 0
    assert "missing_02.py" in capsys.readouterr().out
    assert (out / "grades.csv").read_text().splitlines()[1].endswith(",2,0,0,error")


def test_grade_without_notebooks_is_a_usage_error(tmp_path):
    assert cli.main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def test_reports_of_same_named_submissions_in_different_folders_do_not_collide(tmp_path):
    submissions = [tmp_path / "alice" / "02_vae.py", tmp_path / "bob" / "02_vae.py"]
    grade(submissions, tmp_path / "out", progress=False)
    assert sorted(path.name for path in (tmp_path / "out").glob("*.json")) == [
        "alice-02_vae.json",
        "bob-02_vae.json",
    ]


def test_a_folder_of_submissions_skips_hidden_folders(tmp_path):
    from course.grading.runner import find_submissions

    for name in ["a_02.py", "b/b_02.ipynb", ".ipynb_checkpoints/a_02-checkpoint.py", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert find_submissions([tmp_path]) == [tmp_path / "a_02.py", tmp_path / "b" / "b_02.ipynb"]
