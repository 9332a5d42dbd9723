"""Students' work is safe: no ``course labs`` command replaces or deletes a lab (or an .ipynb
copy) that was edited after the build wrote it, ``course labs check`` tells an edited lab from
an out-of-date one, and ``course labs start`` gives a student a copy of their own.

Everything runs on the demo lab ``tests/grading_fixtures/99_demo.py`` (pure Python checks).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

from course import cli
from course.grading.labs import EDITED, fingerprint, is_edited

FIXTURES = Path(__file__).parent / "grading_fixtures"
ANSWER = "    return a + b  # the student's answer"


@pytest.fixture(autouse=True)
def demo_checks(monkeypatch):
    """Make the demo lab's checks importable (``course labs check`` looks them up)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv("COURSE_CHECKS_PACKAGE", "demo_checks")


@pytest.fixture
def course_dir(tmp_path, monkeypatch):
    """A course folder with solutions/99_demo.py and a freshly built labs/, as the cwd."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(FIXTURES / "99_demo.py", tmp_path / "solutions")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["labs", "build"]) == 0
    return tmp_path


def save_answer_as_jupyter_does(path: Path) -> str:
    """Fill in exercise 99.1 the way JupyterLab saves a notebook: jupytext reads and writes it."""
    notebook = jupytext.read(path, fmt="py:percent")
    cell = next(cell for cell in notebook.cells if "def add(a, b):" in cell.source)
    cell.source = cell.source.replace(
        '    raise NotImplementedError("Exercise 99.1: Return the sum of a and b.")', ANSWER
    )
    jupytext.write(notebook, path, fmt="py:percent")
    return path.read_text()


def change_solution(course_dir: Path) -> None:
    with open(course_dir / "solutions" / "99_demo.py", "a") as file:
        file.write("\n# %%\nprint('a cell the instructor added')\n")


def test_a_lab_edited_and_saved_by_a_student_survives_labs_build_and_labs_check(course_dir, capsys):
    lab = course_dir / "labs" / "99_demo.py"
    saved = save_answer_as_jupyter_does(lab)
    assert ANSWER in saved
    change_solution(course_dir)
    capsys.readouterr()

    assert cli.main(["labs", "check"]) == 1
    out = capsys.readouterr().out
    assert f"labs/99_demo.py: {EDITED}" in out and "out of date" not in out
    assert "course labs start NN" in out

    assert cli.main(["labs", "build"]) == 2
    err = capsys.readouterr().err
    assert "labs/99_demo.py" in err and "nothing was written" in err
    for option in ("course labs start 99", "course labs build --backup", "--force"):
        assert option in err
    assert cli.main(["labs", "build", "--ipynb", "notebooks"]) == 2
    assert lab.read_text() == saved
    assert not (course_dir / "notebooks").exists()


def test_an_untouched_lab_is_out_of_date_and_rebuilt(course_dir, capsys):
    change_solution(course_dir)
    capsys.readouterr()
    assert cli.main(["labs", "check"]) == 1
    assert "labs/99_demo.py: out of date\n" in capsys.readouterr().out
    assert cli.main(["labs", "build"]) == 0
    assert "a cell the instructor added" in (course_dir / "labs" / "99_demo.py").read_text()
    assert cli.main(["labs", "check"]) == 0


def test_backup_keeps_a_copy_of_the_edited_lab_then_builds(course_dir, capsys):
    saved = save_answer_as_jupyter_does(course_dir / "labs" / "99_demo.py")
    change_solution(course_dir)
    assert cli.main(["labs", "build", "--backup"]) == 0
    (backup,) = (course_dir / "labs").glob("backup-*/99_demo.py")
    assert backup.read_text() == saved
    assert "a cell the instructor added" in (course_dir / "labs" / "99_demo.py").read_text()
    assert f"copied the edited 99_demo.py to labs/{backup.parent.name}/" in capsys.readouterr().out
    assert cli.main(["labs", "check"]) == 0


def test_an_edited_lab_whose_solution_is_gone_is_not_deleted(course_dir):
    lab = course_dir / "labs" / "99_demo.py"
    saved = save_answer_as_jupyter_does(lab)
    (course_dir / "solutions" / "99_demo.py").unlink()
    assert cli.main(["labs", "build"]) == 2
    assert lab.read_text() == saved
    assert cli.main(["labs", "build", "--force"]) == 0
    assert not lab.exists()


def test_the_fingerprint_tells_a_saved_but_unchanged_lab_from_an_edited_one(course_dir):
    lab = course_dir / "labs" / "99_demo.py"
    text = lab.read_text()
    assert not is_edited(text)
    round_trip = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    assert not is_edited(round_trip)
    assert is_edited(text.replace("def add(a, b):", "def add(a, b):  # mine"))
    assert is_edited(text.replace(f"fingerprint {fingerprint(text)}", "fingerprint 0123"))


def test_the_lab_header_speaks_to_students(course_dir):
    header = jupytext.read(course_dir / "labs" / "99_demo.py").cells[0]
    assert header.cell_type == "markdown"
    assert header.source.startswith("**Your copy of lab 99.** Fill in each exercise")
    assert 'check("99.1")' in header.source and "course labs start 99" in header.source
    assert "Instructors: edit `solutions/99_demo.py` instead" in header.source


def test_labs_start_copies_a_lab_into_a_folder_of_ones_own_and_never_over_a_copy(
    course_dir, capsys
):
    assert cli.main(["labs", "start", "99", "--dir", "mine"]) == 0
    copy = course_dir / "mine" / "99_demo.py"
    assert copy.read_text() == (course_dir / "labs" / "99_demo.py").read_text()
    assert f"jupyter lab {Path('mine') / '99_demo.py'}" in capsys.readouterr().out
    copy.write_text(copy.read_text() + "\n# my work\n")
    assert cli.main(["labs", "start", "99", "--dir", "mine"]) == 2
    assert f"you already have a copy of lab 99: {Path('mine') / '99_demo.py'}" in (
        capsys.readouterr().err
    )
    assert copy.read_text().endswith("# my work\n")
    change_solution(course_dir)
    assert cli.main(["labs", "build"]) == 0
    assert copy.read_text().endswith("# my work\n")
    assert cli.main(["labs", "start", "7"]) == 2
    assert "there is no lab 7 in labs/ (labs there: 99)" in capsys.readouterr().err


def test_ipynb_copies_that_were_edited_are_never_overwritten(course_dir, capsys):
    assert cli.main(["labs", "build", "--ipynb", "notebooks"]) == 0
    path = course_dir / "notebooks" / "99_demo.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nbformat.write(notebook, path)
    change_solution(course_dir)
    assert cli.main(["labs", "build", "--ipynb", "notebooks"]) == 0  # outputs are no edit
    assert "a cell the instructor added" in path.read_text()

    notebook = nbformat.read(path, as_version=4)
    notebook.cells[-1].source = "print('my answer')"
    nbformat.write(notebook, path)
    edited = path.read_text()
    lab = (course_dir / "labs" / "99_demo.py").read_text()
    change_solution(course_dir)
    capsys.readouterr()
    assert cli.main(["labs", "build", "--ipynb", "notebooks"]) == 2
    assert "notebooks/99_demo.ipynb" in capsys.readouterr().err
    assert path.read_text() == edited
    assert (course_dir / "labs" / "99_demo.py").read_text() == lab
    assert cli.main(["labs", "build", "--ipynb", "notebooks", "--backup"]) == 0
    (backup,) = (course_dir / "notebooks").glob("backup-*/99_demo.ipynb")
    assert backup.read_text() == edited
