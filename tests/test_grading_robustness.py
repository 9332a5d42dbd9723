"""A neighbour must not sink an honest student, and a stopped grader leaves nothing behind
(issue 17, items 6 and 7), on the demo lab of ``tests/test_grading.py``.

One grading run (``--jobs 2``) puts complete submissions beside hostile ones: a kernel that
kills its grading process, a notebook with a cell of 1.5 million lines. Separately: what a
kernel prints costs the grader no memory, a notebook's size is checked before it is parsed, an
error of the grader keeps the verdicts taken before it, and ``course grade`` stopped by SIGTERM
or SIGHUP leaves no process, no scratch folder and valid reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import nbformat
import pytest
from processes import alive, descendants
from test_grading import SOLUTION, by_name, demo_checks, sandbox_reason, with_cell  # noqa: F401

from course.grading import execution, workers
from course.grading.plan import MAX_NOTEBOOK_BYTES, SubmissionError, read_notebook

MIB = 2**20
KILLS_ITS_WORKER = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
PRINTS_200_MIB = "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 2**20)"
HANGS = "import time\nwhile True:\n    time.sleep(0.1)"


def giant_cell(lines: int = 1_500_000) -> str:
    return "# %%\n" + "x = 1\n" * lines


@pytest.fixture(scope="module")
def beside_hostile(tmp_path_factory):
    """Complete demo submissions graded with --jobs 2 beside hostile ones (unsandboxed, so that
    a kernel can kill its grading process); the reports by name, the output folder and the
    temporary folder of the run."""
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    private = tmp_path_factory.mktemp("tmp")
    (folder / "complete_99.py").write_text(SOLUTION.read_text())
    # graded first, beside the complete one: its kernel kills the grading process
    (folder / "killer_99.py").write_text(with_cell(KILLS_ITS_WORKER, before_99_3=True))
    (folder / "giant_99.py").write_text(SOLUTION.read_text() + giant_cell())
    (folder / "second_99.py").write_text(SOLUTION.read_text())
    from course.grading.runner import grade

    order = ["complete", "killer", "giant", "second"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(private))
        patch.setenv("TMPDIR", str(private))
        reports = grade([folder / f"{name}_99.py" for name in order], out, jobs=2,
                        sandbox=False, calibrate=False, progress=False, feedback=False,
                        total_timeout=120)
    time.sleep(2)  # a kernel whose worker died notices it
    return by_name(reports), out, private


@pytest.mark.slow
def test_complete_submissions_keep_full_marks_beside_hostile_ones(beside_hostile):
    reports = beside_hostile[0]
    for name in ["complete_99", "second_99"]:
        report = reports[name]
        assert (report["status"], report["points"]) == ("ok", report["max_points"]), report


@pytest.mark.slow
def test_a_worker_killed_twice_costs_only_its_own_submission(beside_hostile):
    reports, out, private = beside_hostile
    killer = reports["killer_99"]
    assert killer["status"] == "error" and killer["message"] == workers.DIED_TWICE
    assert [e["points"] for e in killer["exercises"]] == [0, 0, 0]
    assert len(list(out.glob("*.json"))) == 4
    assert not list(private.iterdir())  # the dead workers' scratch folders
    assert not running_with(str(private))  # their kernels


@pytest.mark.slow
def test_a_giant_cell_is_refused_with_a_reason(beside_hostile):
    giant = beside_hostile[0]["giant_99"]
    assert giant["status"] == "error"
    assert "1,500," in giant["message"] and "the grader reads at most" in giant["message"]


# --- reading a notebook -------------------------------------------------------------------


def peak_bytes(function, *args):
    """The largest Python memory ``function(*args)`` held at once, and what it returned or
    raised."""
    tracemalloc.start()
    try:
        result = function(*args)
    except Exception as error:  # noqa: BLE001 - returned for the caller to check
        result = error
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, result


def test_a_cell_of_a_million_lines_is_refused_before_parsing(tmp_path):
    path = tmp_path / "giant_01.py"
    path.write_text("# %%\nprint(1)\n" + giant_cell())
    peak, error = peak_bytes(read_notebook, path)
    assert isinstance(error, SubmissionError), error
    assert "1,500,004 lines" in str(error) and "at most 20,000" in str(error)
    assert peak < 64 * MIB


def test_a_long_cell_and_a_large_file_are_refused(tmp_path):
    long_cell = tmp_path / "long_01.py"
    long_cell.write_text("# %%\nx = 1\n" + giant_cell(6_000))
    with pytest.raises(SubmissionError, match="cell 2 of long_01.py has 6,000 lines"):
        read_notebook(long_cell)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1\n" * 30_000)])
    (tmp_path / "long_01.ipynb").write_text(nbformat.writes(notebook))
    with pytest.raises(SubmissionError, match="30,001 lines of cells"):
        read_notebook(tmp_path / "long_01.ipynb")
    large = tmp_path / "large_01.ipynb"
    with open(large, "wb") as file:
        file.truncate(MAX_NOTEBOOK_BYTES + 1)  # sparse: nothing to read but its size
    with pytest.raises(SubmissionError, match="larger than the grader reads"):
        read_notebook(large)


def test_a_notebooks_outputs_are_dropped_unread(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text="y\n" * 50_000)]
    (tmp_path / "a_01.ipynb").write_text(nbformat.writes(notebook))
    (cell,) = read_notebook(tmp_path / "a_01.ipynb").cells
    assert cell.source == "x = 1" and cell.outputs == []


# --- what a kernel sends --------------------------------------------------------------------


@pytest.mark.slow
def test_printing_hundreds_of_mib_costs_the_grader_no_memory(tmp_path):
    """200 MiB in 1 MiB writes, then one 100 MiB print (over the message cap): before, the
    grader kept the output (165 and 341 MB of Python memory at the peak)."""
    from course.grading.session import Scratch, Session
    from course.grading.settings import Settings

    settings = Settings(sandbox=False, unsandboxed_reason="test")
    path = tmp_path / "printer_01.py"
    path.write_text("# %%\nx = 1\n")
    notebook = read_notebook(path)
    with Scratch(path, settings) as scratch:
        session = Session(notebook, scratch, settings)
        with session.started():
            session.run(nbformat.v4.new_code_cell("x = 1"), 120)
            for source in [PRINTS_200_MIB, "print('x' * (100 * 2**20))"]:
                peak, reply = peak_bytes(session.run, nbformat.v4.new_code_cell(source), 120)
                assert reply.get("status") == "ok" and peak < 16 * MIB, (source, peak)
            assert session.run(nbformat.v4.new_code_cell("x + 1"), 30).get("status") == "ok"
        session.close()


@pytest.mark.slow
def test_an_error_of_the_grader_keeps_the_verdicts_taken_before_it(tmp_path, monkeypatch):
    from course.grading.runner import grade_submission

    judge = execution.judge

    def judge_failing_on_the_last(entry, inputs, outputs_path):
        if entry.id == "99.3":
            raise RuntimeError("a bug in the grader")
        return judge(entry, inputs, outputs_path)

    monkeypatch.setattr(execution, "judge", judge_failing_on_the_last)
    path = tmp_path / "complete_99.py"
    path.write_text(SOLUTION.read_text())
    report = grade_submission(path)
    assert report["status"] == "error"
    assert report["message"] == ("grading failed: RuntimeError: a bug in the grader; the "
                                 "verdicts taken before it are kept")
    assert [e["points"] for e in report["exercises"]] == [1, 2, 0]


# --- stopping the grader --------------------------------------------------------------------

GRADE = "import sys\nfrom course.cli import main\nsys.exit(main(sys.argv[1:]))"


def running_with(text: str) -> list[int]:
    """The live processes whose command line holds ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes() and alive(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("stop, jobs", [(signal.SIGTERM, 2), (signal.SIGHUP, 1)])
def test_a_stopped_grader_leaves_no_process_and_no_scratch(tmp_path, stop, jobs):
    """``course grade`` stopped while kernels hang: every process it started ends, every
    scratch folder goes, and the reports written before stay valid (before: SIGTERM killed the
    grader alone; its workers, kernels and scratch folders stayed)."""
    from course.grading.reports import validate

    folder, out, scratch = tmp_path / "in", tmp_path / "out", tmp_path / "tmp"
    for path in (folder, scratch):
        path.mkdir()
    (folder / "a_complete_99.py").write_text(SOLUTION.read_text())
    for name in ["b_hanging_99.py", "c_hanging_99.py"]:
        (folder / name).write_text(with_cell(HANGS, before_99_3=True))
    env = dict(os.environ, TMPDIR=str(scratch))
    grader = subprocess.Popen(
        [sys.executable, "-c", GRADE, "grade", str(folder), "--out", str(out), "--jobs",
         str(jobs), "--no-calibrate", "--no-feedback"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    started, seen = time.monotonic(), set()
    while time.monotonic() - started < 240:
        seen |= descendants(grader.pid)
        hanging = len(list(scratch.glob("course-grade-*")))
        if list(out.glob("*.json")) and hanging >= jobs and len(seen) > 2:
            break
        assert grader.poll() is None, grader.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    time.sleep(2)  # the hanging cells run
    seen |= descendants(grader.pid)
    grader.send_signal(stop)
    try:
        grader.wait(timeout=60)
    finally:
        stderr = grader.stderr.read().decode()[-2000:]
    time.sleep(1)
    left = sorted(pid for pid in seen if alive(pid))
    assert not left, (left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left])
    assert not list(scratch.glob("course-grade-*")), stderr
    reports = [validate(json.loads(path.read_text())) for path in out.glob("*.json")]
    assert [report["status"] for report in reports] == ["ok"], stderr
    assert "a_complete_99.py" in (out / "grades.csv").read_text()
