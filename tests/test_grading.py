"""Grading: solutions -> labs, the checks registry and ``check()``, the grader, the CLI.

All of it runs on the demo lab ``tests/grading_fixtures/99_demo.py``, whose checks live in
``tests/grading_fixtures/demo_checks/lab99.py`` (found through ``COURSE_CHECKS_PACKAGE``).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
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
    assert text.splitlines()[1].startswith("# **Your copy of lab 99.**")
    assert "generated from solutions/99_demo.py by `course labs build`" in text


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
    assert lines[5:7] == ["# %% [markdown]", "# **Your copy of lab 1.** Fill in each exercise "
                          "(the code that raises `NotImplementedError`)"]


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
    assert result.message.startswith("add(") and "should be their sum" in result.message
    assert capsys.readouterr().out.startswith("✘ Exercise 99.1 (0/1): add(")


def test_a_failed_assert_in_a_check_gives_its_message():
    result = check("99.2", namespace=namespace(mean=lambda values: 0))
    assert result.message == "mean(values) should be sum(values) / len(values)"


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
    assert result.message == "ZeroDivisionError: float division by zero"


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
        exercise("99.1")(lambda inputs, outputs: None)


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


# --- the grader ---------------------------------------------------------------------------
#
# One folder of demo-lab submissions is graded once (two jobs in parallel): a complete one (the
# victim of the forger), the generated lab, partial ones, every fault after exercises 99.1 and
# 99.2 have been judged, a forger, and awkward file names. Real labs appear only where the
# issue demands it (lab 1 forged, lab 2 hanging) and are marked slow.

CELL_TIMEOUT = 5


def sandbox_reason():
    from course.grading.sandbox import unavailable_reason

    return unavailable_reason()


needs_sandbox = pytest.mark.skipif(
    "sandbox_reason() is not None", reason="the sandbox needs root and Linux namespaces"
)
FAULT_AFTER_99_2 = {
    "exit": "x = 1\nexit()",
    "osexit": "import os\nos._exit(0)",
    "segfault": "import ctypes\nctypes.string_at(0)",
    "sigkill": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "stubborn": (  # a bare except also catches the KeyboardInterrupt of the grader's interrupt
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except BaseException:\n"
        "        pass"
    ),
}
NOISY_CELL = (
    "import os, sys, warnings\n"
    "warnings.warn('a warning on stderr')\n"
    "print('a message on stderr', file=sys.stderr)\n"
    "squares = squares if os.environ.get('COURSE_SMOKE') == '1' else []"
)
FORGES = """
# %%
# forge 1: every check of the registry passes, with 1000 points
import course.grading.registry as registry
for entry in list(registry._REGISTRY.values()):
    registry._REGISTRY[entry.id] = registry.Exercise(entry.id, 1000, entry.title, print)
registry.judge = lambda entry, inputs, outputs: registry.passed(entry)
registry.run_check = lambda entry, *args, **kwargs: registry.passed(entry)

# %%
# forge 2: check_all writes its own report (1000 points of 2)
import json
import course.grading
def fake_check_all(*args, report_path="report.json", **kwargs):
    exercise = {{"id": "99.1", "title": "", "points": 1000, "max_points": 2, "passed": True,
                "message": ""}}
    with open(report_path, "w") as file:
        json.dump({{"lab": 99, "points": 1000, "max_points": 2, "exercises": [exercise]}}, file)
course.grading.check_all = fake_check_all
fake_check_all()

# %%
# forge 3: numpy says yes to every comparison
import numpy as np
np.allclose = np.array_equal = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: np.True_

# %%
# forge 4: the probe server answers without calling any code
import course.grading.probes as probes
real_serve = probes.serve
def fake_serve(module, function, inputs_path, outputs_path, namespace=None):
    if {fake_only!r} not in (None, function):
        return real_serve(module, function, inputs_path, outputs_path, globals())
    probes.save_arrays({{"sums": np.zeros(5), "mean": np.array(0.0)}}, outputs_path)
probes.serve = fake_serve

"""
FORGES_THAT_NEED_THE_SANDBOX = '''
# %%
# forge 5: run the solution, read another submission
found = []
for path in [{solution!r}, {victim!r}]:
    try:
        exec(open(path).read()) if path.endswith(".py") else open(path).read()
        found.append("read " + path)
    except Exception as error:
        found.append(type(error).__name__)
raise RuntimeError("forge 5: " + ", ".join(found))

# %%
# forge 6: write into --out now, and from a detached process after the grader has gone
import glob, os, subprocess, sys
targets = [{out!r}]
for cmdline in glob.glob("/proc/*/cmdline"):
    try:
        words = open(cmdline, "rb").read().split(b"\\0")
    except OSError:
        continue
    if b"--out" in words:
        targets.append(words[words.index(b"--out") + 1].decode())
done = []
for target in targets:
    try:
        with open(os.path.join(target, "forged.json"), "w") as file:
            file.write("{{}}")
        done.append("wrote " + target)
    except OSError as error:
        done.append(type(error).__name__)
DAEMON = """
import glob, os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
for _ in range(120):
    time.sleep(0.25)
    for path in glob.glob(sys.argv[1] + "/*.json") + glob.glob(sys.argv[1] + "/*.csv"):
        try:
            with open(path, "w") as file:
                file.write("forged")
        except OSError:
            pass
"""
subprocess.Popen([sys.executable, "-c", DAEMON, {out!r}], start_new_session=True)
raise RuntimeError("forge 6: " + ", ".join(done))
'''


def forge_cells(**names) -> str:
    """The forges as notebook cells. Without a sandbox the kernel CAN read the solutions and
    write the reports (documented), so those forges are left out there."""
    forges = FORGES + (FORGES_THAT_NEED_THE_SANDBOX if sandbox_reason() is None else "")
    return forges.format(**names)


def with_cell(source: str, before_99_3: bool = False) -> str:
    """The demo solution with one more code cell at the end (or before exercise 99.3)."""
    text = SOLUTION.read_text()
    if not before_99_3:
        return text + f"\n# %%\n{source}\n"
    marker = "# %% [markdown]\n# ## Exercise 99.3"
    assert marker in text
    return text.replace(marker, f"# %%\n{source}\n\n{marker}")


def grade(*args, **kwargs):
    from course.grading.runner import grade

    return grade(*args, **kwargs)


def by_name(reports) -> dict:
    return {Path(report["submission"]).stem: report for report in reports}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade a folder of demo-lab submissions once; return the reports by name, out, time."""
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    solutions = tmp_path_factory.mktemp("solutions")
    shutil.copy(SOLUTION, solutions)
    notebook = jupytext.reads(SOLUTION.read_text(), fmt="py:percent")
    jupytext.write(notebook, folder / "complete_99.ipynb")
    (folder / "empty_99.py").write_text(lab_text())
    for name in ["half_99.py", "crashing_99.py"]:
        shutil.copy(FIXTURES / "submissions" / name, folder)
    (folder / "hanging_99.py").write_text(with_cell("while True:\n    pass"))
    (folder / "noisy_99.py").write_text(with_cell(NOISY_CELL))
    for name, source in FAULT_AFTER_99_2.items():
        (folder / f"{name}_99.py").write_text(with_cell(source, before_99_3=True))
    forges = forge_cells(
        solution=str(solutions / SOLUTION.name),
        victim=str(folder / "complete_99.ipynb"),
        out=str(out),
        fake_only=None,
    )
    (folder / "forger_99.py").write_text(lab_text() + forges)
    # file names: any case of .ipynb, same stems in folders, a name that is not UTF-8, no cells
    (folder / "UPPER_99.IPYNB").write_text(jupytext.writes(notebook, fmt="ipynb"))
    for name in ["alice/x_99.py", "bob/x_99.py", "alice-x_99.py"]:
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.copy(SOLUTION, folder / name)
    shutil.copy(SOLUTION, os.fsdecode(bytes(folder) + b"/caf\xe9_99.py"))
    (folder / "blank_99.py").write_text("")
    (folder / "broken_99.ipynb").write_text("{ not json")
    (folder / "unnumbered.py").write_text("# %%\nx = 1\n")
    # a malformed report already in the output folder must not stop the batch
    (out / "malformed.json").write_text(json.dumps({"schema": "course-grade-report/2"}))
    started = time.monotonic()
    reports = grade(
        # the two that wait on their limits first, then the folder (each file graded once)
        [folder / "stubborn_99.py", folder / "hanging_99.py", folder, folder / "missing_99.py"],
        out,
        cell_timeout=CELL_TIMEOUT,
        total_timeout=60,
        jobs=2,
        solutions=solutions,
        calibrate=False,
        progress=False,
    )
    elapsed = time.monotonic() - started
    victim = (out / next(p.name for p in out.glob("complete_99-*.json"))).read_text()
    time.sleep(3)  # the forger's detached process would write now
    return by_name(reports), out, elapsed, victim, len(reports)


def survivors(out: Path) -> str:
    """The processes still running whose command line names ``out`` (the forger's daemon)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(out).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:  # the process ended meanwhile
            continue
    return " ".join(found)


def messages(report: dict) -> list[str]:
    return [entry["message"] for entry in report["exercises"]]


def points(report: dict) -> list[float]:
    return [entry["points"] for entry in report["exercises"]]


def csv_rows(out: Path) -> list[dict]:
    with open(out / "grades.csv", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_grades_csv_has_one_row_per_report_and_a_reason_column(graded):
    reports, out, _, _, count = graded
    rows = csv_rows(out)
    assert list(rows[0]) == [
        "submission",
        "lab",
        "99.1",
        "99.2",
        "99.3",
        "total",
        "max",
        "status",
        "reason",
    ]
    complete = next(row for row in rows if row["submission"].endswith("complete_99.ipynb"))
    assert complete | {"submission": ""} == {
        "submission": "",
        "lab": "99",
        "99.1": "1",
        "99.2": "2",
        "99.3": "1",
        "total": "4",
        "max": "4",
        "status": "ok",
        "reason": "",
    }
    half = next(row for row in rows if row["submission"].endswith("half_99.py"))
    assert (half["total"], half["reason"]) == (
        "2",
        "99.2: " + reports["half_99"]["exercises"][1]["message"],
    )
    malformed = [row for row in rows if row["submission"] == "malformed.json"]
    assert malformed[0]["status"] == "error"
    assert malformed[0]["reason"].startswith("invalid report: 'submission' is missing")
    assert len(rows) == count + 1 == len(list(out.glob("*.json")))


@pytest.mark.slow
def test_every_file_name_gives_exactly_one_report_and_one_row(graded):
    reports, out, _, _, count = graded
    rows = csv_rows(out)
    for stem in ["UPPER_99", "x_99", "alice-x_99", "caf\\xe9_99", "blank_99"]:
        matching = [row["submission"] for row in rows if Path(row["submission"]).stem == stem]
        assert len(matching) == (2 if stem == "x_99" else 1), stem
    report_files = [p for p in out.glob("*.json") if p.name != "malformed.json"]
    assert len(report_files) == len(rows) - 1 == count
    assert reports["UPPER_99"]["points"] == 4
    assert reports["caf\\xe9_99"]["points"] == 4
    assert reports["blank_99"]["status"] == "not attempted"
    assert messages(reports["blank_99"])[0] == "not attempted: the notebook has no code"


@pytest.mark.slow
def test_the_generated_lab_is_not_attempted(graded):
    report = graded[0]["empty_99"]
    assert (report["points"], report["status"]) == (0, "not attempted")
    assert messages(report) == [
        "not implemented yet: Exercise 99.1: Return the sum of a and b.",
        "not implemented yet: Exercise 99.2: Return the arithmetic mean of a list of numbers.",
        "not implemented yet: Exercise 99.3: Make `squares` the list of the squares of 0, 1, 2, 3 "
        "and 4.",
    ]


@pytest.mark.slow
def test_complete_half_and_crashing_submissions(graded):
    reports = graded[0]
    assert (reports["complete_99"]["points"], reports["complete_99"]["status"]) == (4, "ok")
    assert points(reports["half_99"]) == [1, 0, 1]
    assert points(reports["crashing_99"]) == [1, 0, 1]
    assert (
        messages(reports["crashing_99"])[1] == "`mean` is not defined: did you delete or rename it?"
    )
    crash, syntax_error = reports["crashing_99"]["notes"]
    assert crash.startswith("cell 3 (`raise RuntimeError(")
    assert (
        syntax_error.startswith("cell 4 (`def mean(values) return")
        and "SyntaxError" in syntax_error
    )


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULT_AFTER_99_2))
def test_a_fault_costs_only_the_exercises_not_yet_judged(graded, fault):
    report = graded[0][f"{fault}_99"]
    assert points(report) == [1, 2, 0]
    status = "timeout" if fault == "stubborn" else "crashed"
    assert report["status"] == status
    assert "cell 7 (`" in report["message"]  # the cell that did it, not the next one
    assert messages(report)[2].startswith("not graded: ")
    if fault == "exit":
        assert report["message"].startswith("the notebook called exit() in cell 7 (`x = 1`)")
    if fault == "stubborn":
        assert report["elapsed_s"] < 3 * CELL_TIMEOUT + 20


@pytest.mark.slow
def test_a_hanging_cell_is_interrupted_and_the_rest_still_runs(graded):
    report = graded[0]["hanging_99"]
    assert (report["points"], report["status"]) == (4, "ok")
    assert report["notes"] == [
        f"cell 10 (`while True:`) ran past its {CELL_TIMEOUT} s limit and was interrupted"
    ]


@pytest.mark.slow
def test_stderr_costs_nothing_and_the_kernel_runs_in_smoke_mode(graded):
    assert graded[0]["noisy_99"]["points"] == 4


@pytest.mark.slow
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


@pytest.mark.slow
def test_forging_the_checks_numpy_or_the_probe_server_gets_nothing(graded):
    report = graded[0]["forger_99"]
    assert (report["points"], report["max_points"]) == (0, 4)
    assert all(not entry["passed"] for entry in report["exercises"])


@pytest.mark.slow
@needs_sandbox
def test_a_submission_cannot_read_solutions_or_others_nor_touch_the_reports(graded):
    reports, out, _, victim, _ = graded
    notes = "\n".join(reports["forger_99"]["notes"])
    assert "forge 5: FileNotFoundError, FileNotFoundError" in notes
    assert "wrote" not in notes and "forge 6: " in notes
    assert not (out / "forged.json").exists()
    assert reports["forger_99"]["sandboxed"] is True
    # the detached process died with the kernel: the victim's report and the CSV are intact
    path = next(out.glob("complete_99-*.json"))
    assert path.read_text() == victim
    assert json.loads(victim)["points"] == 4
    assert (out / "grades.csv").read_text().startswith("submission,")
    assert survivors(out) == ""


@pytest.mark.slow
def test_parallel_grading_is_bounded(graded):
    assert graded[2] < 240


@pytest.mark.slow
def test_calibrated_limits_stop_a_hanging_cell_in_seconds(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    shutil.copy(SOLUTION, solutions)
    hanging = tmp_path / "hanging_99.py"
    hanging.write_text(with_cell("while True:\n    pass"))
    cache = tmp_path / "cache"
    (report,) = grade(
        [hanging], tmp_path / "out", solutions=solutions, cache_dir=cache, progress=False
    )  # ceilings: 300 s a cell, 1800 s in all
    (cached,) = cache.glob("99_demo-*.json")
    assert report["limits"]["calibrated"] is True
    (note,) = report["notes"]
    limit = float(re.search(r"past its ([\d.]+) s limit", note)[1])
    assert 10 <= limit < 30  # the floor plus 3 times the solution cell's time
    assert limit == report["limits"]["cell_max"]  # a cell like none of the solution's
    assert report["points"] == 4
    before = cached.stat().st_mtime_ns
    complete = tmp_path / "complete_99.py"  # no hang needed to see the limits: they are reported
    shutil.copy(SOLUTION, complete)
    (again,) = grade(
        [complete], tmp_path / "out", solutions=solutions, cache_dir=cache, progress=False
    )
    assert cached.stat().st_mtime_ns == before  # the calibration came from the cache
    assert again["limits"] == report["limits"] and again["points"] == 4


@pytest.mark.slow
def test_the_total_limit_stops_a_slow_notebook(tmp_path):
    slow = tmp_path / "slow_99.py"
    slow.write_text(with_cell("import time\ntime.sleep(3)") + "\n# %%\ntime.sleep(3)\n")
    (report,) = grade(
        [slow],
        tmp_path / "out",
        cell_timeout=CELL_TIMEOUT,
        total_timeout=4,
        calibrate=False,
        progress=False,
    )
    assert (points(report), report["status"]) == ([1, 2, 0], "timeout")  # judged before: kept
    assert report["message"].startswith("the notebook ran past its total limit of 4 s")


@pytest.mark.slow
def test_without_the_sandbox_every_report_says_so(tmp_path):
    (report,) = grade([SOLUTION], tmp_path / "out", sandbox=False, calibrate=False, progress=False)
    assert (report["points"], report["sandboxed"]) == (4, False)
    assert report["warnings"][0].startswith("NOT SANDBOXED (--no-sandbox was given")


# --- real labs: lab 1 forged, lab 2 hanging ------------------------------------------------
#
# Graded together in one run (two jobs): a lab-1 solution (the victim), a lab-1 forger, and a
# lab-2 solution whose sampler hangs. Every probe gets 10 s (a lab-1 probe takes under 0.5 s).

REPOSITORY = Path(__file__).resolve().parents[1]
WRONG_LAB_1 = """
# %%
# wrong answers that a patched numpy would accept
def standardize(expression):
    return expression


def reconstruction_loss(expression, reconstruction):
    return keras.ops.zeros(())
"""
SAMPLER = (
    "    epsilon = keras.random.normal(ops.shape(z_mean), seed=seed_generator)\n"
    "    return z_mean + ops.exp(0.5 * z_log_var) * epsilon\n"
)
REAL_CHECK_TIMEOUT = 10


@pytest.fixture(scope="module")
def real_labs(tmp_path_factory):
    """Grade the real-lab submissions with the labs' own checks (not the demo's), in the grader
    and in its kernels; return the reports by name, out, and the victim's report as written."""
    (solution_1,) = (REPOSITORY / "solutions").glob("01_*.py")
    (lab_1,) = (REPOSITORY / "labs").glob("01_*.py")
    (solution_2,) = (REPOSITORY / "solutions").glob("02_*.py")
    folder, out = tmp_path_factory.mktemp("real_labs"), tmp_path_factory.mktemp("real_grades")
    shutil.copy(solution_1, folder / "victim_01.py")
    forges = forge_cells(
        solution=str(solution_1),
        victim=str(folder / "victim_01.py"),
        out=str(out),
        fake_only="train_step",
    )
    (folder / "forger_01.py").write_text(lab_1.read_text() + WRONG_LAB_1 + forges)
    text = solution_2.read_text()
    assert SAMPLER in text
    # it sleeps rather than spins, leaving the CPU to the lab-1 job (busy loops: hanging_99)
    hanging = "    import time\n\n    while True:\n        time.sleep(0.1)\n"
    (folder / "hanging_02.py").write_text(text.replace(SAMPLER, hanging))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("COURSE_CHECKS_PACKAGE", raising=False)
        reports = by_name(
            grade(
                # the longest first: the other job grades the two lab-1 notebooks meanwhile
                [folder / "hanging_02.py", folder / "forger_01.py", folder / "victim_01.py"],
                out,
                jobs=2,
                calibrate=False,
                check_timeout=REAL_CHECK_TIMEOUT,
                cell_timeout=300,
                progress=False,
            )
        )
    victim = next(out.glob("victim_01-*.json")).read_text()
    time.sleep(3)  # the forger's detached process would write now
    return reports, out, victim


@pytest.mark.slow
def test_lab_1_forged_gets_nothing_and_cannot_touch_a_solved_submission(real_labs):
    reports, out, victim = real_labs
    forger = reports["forger_01"]
    assert forger["max_points"] > 0 and forger["points"] == 0
    assert reports["victim_01"]["points"] == reports["victim_01"]["max_points"]
    if sandbox_reason() is None:  # unsandboxed, the forger's daemon could write the reports
        assert next(out.glob("victim_01-*.json")).read_text() == victim
        assert (out / "grades.csv").read_text().startswith("submission,")
        assert survivors(out) == ""
        notes = "\n".join(forger["notes"])
        assert "forge 5: FileNotFoundError, FileNotFoundError" in notes
        assert "wrote" not in notes


@pytest.mark.slow
def test_lab_2_a_hanging_sampler_costs_seconds_per_cell(real_labs):
    report = real_labs[0]["hanging_02"]
    by_id = {entry["id"]: entry for entry in report["exercises"]}
    assert by_id["2.1"]["message"] == (
        f"took longer than {REAL_CHECK_TIMEOUT} s and was stopped (an infinite loop?)"
    )
    assert by_id["2.2"]["passed"]
    interrupted = [note for note in report["notes"] if note.endswith("interrupted")]
    assert interrupted, "the cells that use sample_z after it hung"
    for note in interrupted:  # 5 s each instead of the 300 s ceiling
        assert note.endswith(
            "ran past its 5 s limit (it uses `sample_z`, which hung in exercise 2.1) and was "
            "interrupted"
        )
    for note in set(report["notes"]) - set(interrupted):  # a cell reading what they never made
        assert " raised " in note, note


# --- reports and grades.csv (no kernels) ----------------------------------------------------


def fake_report(path: Path, points_99_1: float = 1) -> dict:
    from course.grading.reports import SCHEMA

    entry = {
        "id": "99.1",
        "title": "t",
        "points": points_99_1,
        "max_points": 1,
        "passed": points_99_1 == 1,
        "message": "",
    }
    return {
        "schema": SCHEMA,
        "submission": str(path),
        "lab": 99,
        "points": points_99_1,
        "max_points": 1,
        "status": "ok",
        "message": "",
        "exercises": [entry],
    }


def test_report_names_are_unique_for_any_paths(tmp_path):
    from course.grading.reports import report_name

    paths = [
        tmp_path / "alice" / "x_01.py",
        tmp_path / "bob" / "x_01.py",
        tmp_path / "alice-x_01.py",
        tmp_path / "X_01.PY",
        tmp_path / "x_01.ipynb",
        Path(os.fsdecode(bytes(tmp_path) + b"/x\xff_01.py")),
        Path(os.fsdecode(bytes(tmp_path) + b"/x\xfe_01.py")),
    ]
    names = [report_name(path) for path in paths]
    assert len(set(names)) == len(paths)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    assert report_name(paths[0]) == report_name(tmp_path / "alice" / ".." / "alice" / "x_01.py")


def test_points_above_the_maximum_are_an_invalid_report(tmp_path):
    from course.grading.reports import InvalidReport, validate

    report = fake_report(tmp_path / "a_99.py")
    report["exercises"][0]["points"] = report["points"] = 1000
    with pytest.raises(InvalidReport, match=r"points must lie in \[0, max_points\]"):
        validate(report)
    del report["exercises"]
    with pytest.raises(InvalidReport, match="'exercises' is missing"):
        validate(report)


def test_an_interrupted_regrade_leaves_the_csv_in_step_with_the_reports(tmp_path, monkeypatch):
    from course.grading import runner

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ["a_99.py", "b_99.py", "c_99.py"]:
        (folder / name).write_text("# %%\nx = 1\n")
    calls = []

    def fake_grade_submission(path, lab, limits, settings):
        calls.append(path.name)
        if len(calls) == 5:  # the second run is interrupted at its second submission
            raise KeyboardInterrupt
        return fake_report(path, points_99_1=len(calls) % 2)

    monkeypatch.setattr(runner, "grade_submission", fake_grade_submission)
    out = tmp_path / "out"
    runner.grade([folder], out, calibrate=False, progress=False)
    with pytest.raises(KeyboardInterrupt):
        runner.grade([folder], out, calibrate=False, progress=False)
    rows = {Path(row["submission"]).name: row["total"] for row in csv_rows(out)}
    on_disk = {
        Path(
            json.loads(p.read_text())["submission"]
        ).name: f"{json.loads(p.read_text())['points']:g}"
        for p in out.glob("*.json")
    }
    assert rows == on_disk == {"a_99.py": "0", "b_99.py": "0", "c_99.py": "1"}
    assert not list(out.glob(".*tmp"))


def test_out_naming_a_file_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "grades.csv"
    target.write_text("")
    assert cli.main(["grade", str(SOLUTION), "--out", str(target)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


def test_folders_are_searched_for_notebooks_of_any_case_once_each(tmp_path):
    from course.grading.runner import find_submissions

    for name in [
        "a_02.py",
        "b/b_02.ipynb",
        "C_02.IPYNB",
        ".ipynb_checkpoints/a_02-checkpoint.py",
        "notes.txt",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "link_02.py").symlink_to(tmp_path / "a_02.py")
    found = find_submissions([tmp_path, tmp_path / "a_02.py"])
    assert found == [tmp_path / "C_02.IPYNB", tmp_path / "a_02.py", tmp_path / "b" / "b_02.ipynb"]


def test_grade_without_notebooks_is_a_usage_error(tmp_path):
    assert cli.main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == 2


def test_grade_exits_zero_even_when_a_submission_fails(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        cli.main(["grade", str(tmp_path / "missing_99.py"), "--out", str(out), "--no-calibrate"])
        == 0
    )
    assert "missing_99.py" in capsys.readouterr().out
    (row,) = csv_rows(out)
    assert (row["lab"], row["total"], row["status"]) == ("99", "0", "error")
    assert "does not exist" in row["reason"]


# --- limits and the name graph (no kernels) ---------------------------------------------


def test_a_cell_reaches_a_hung_function_through_classes_and_variables():
    from course.grading.dependencies import NameGraph

    graph = NameGraph(
        {
            0: "import numpy as np\ndef sample_z(m, v):\n    while True:\n        pass",
            1: "class VAE:\n    def step(self, x):\n        return sample_z(x, x)",
            2: "vae = VAE()\n%matplotlib inline",
            3: "history = vae.step(np.ones(3))",
            4: "def decode(z):\n    return np.tanh(z)\nprint(decode(1))",
            5: "def broken(:\n    pass",
        }
    )
    assert graph.definitions([0, 1]) == {"sample_z", "VAE"}
    assert graph.cell_reaches(3, {"sample_z"}) == {"sample_z"}
    assert graph.cell_reaches(1, {"sample_z"}) == set()  # defining a class runs nothing
    assert graph.cell_reaches(4, {"sample_z"}) == set()
    assert graph.cell_reaches(5, {"sample_z"}) == set()


def test_calibrated_limits_follow_the_most_alike_solution_cell():
    from course.grading.limits import CELL_FLOOR, Calibration, Limits

    calibration = Calibration(
        cells=(("import keras\nx = load()", 20.0), ("model.fit(x, epochs=EPOCHS)", 2.0)),
        probes={"2.1": 1.0},
        total=30.0,
    )
    limits = Limits(cell=50).calibrated(calibration)
    assert limits.for_cell("model.fit(x, epochs=EPOCHS)  # mine") == 3 * 2.0 + CELL_FLOOR
    assert limits.for_cell("import keras\nx = load()") == 50  # 70 s, capped by the ceiling
    assert limits.for_cell("something else entirely, nothing alike") == 50  # the largest
    assert limits.for_probe("2.1") == 13.0 and limits.for_probe("9.9") == limits.check
    assert Limits(cell=50).for_cell("anything") == 50
    assert Calibration.from_json(calibration.to_json()) == calibration


def test_a_report_carries_the_runs_warnings_and_says_when_it_was_not_sandboxed(tmp_path):
    """What the machine could not give this run (no cgroups, no setpriv) is in every report, as
    is a missing sandbox, so a grade read later says under what it was taken."""
    from course.grading.execution import Outcome
    from course.grading.registry import get_exercise
    from course.grading.reports import build_report, validate
    from course.grading.settings import Settings

    no_cgroups = "no cgroup per kernel (test): CPU is shared by weight of process"
    settings = Settings(sandbox=False, unsandboxed_reason="--no-sandbox was given",
                        warnings=(no_cgroups,))
    report = validate(build_report(tmp_path / "x_99.py", 99, [get_exercise("99.1")], Outcome(),
                                   1.0, settings))
    assert report["warnings"][0].startswith("NOT SANDBOXED (--no-sandbox was given)")
    assert report["warnings"][1:] == [no_cgroups]
