"""The Gradescope bundle: unpacked into a temporary folder that stands for /autograder, its
``run_autograder`` grades a solution, an untouched lab and a crashing submission of the demo
lab (``tests/grading_fixtures/99_demo.py``) into the scores and hints of ``course grade``'s JSON
reports on the same files. setup.sh's installation is not run: the package is installed here.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from course.grading import make_lab
from course.grading.gradescope import build_bundle, pinned_requirements
from course.grading.runner import grade

FIXTURES = Path(__file__).parent / "grading_fixtures"
SUBMISSIONS = {
    "solution": (FIXTURES / "99_demo.py").read_text(),
    "untouched": make_lab((FIXTURES / "99_demo.py").read_text(), "solutions/99_demo.py")[0],
    "crashing": (FIXTURES / "submissions" / "crashing_99.py").read_text(),
}


@pytest.fixture(scope="module")
def demo_env():
    """The demo lab's checks, importable here, in run_autograder and in the kernels."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FIXTURES))
        patch.setenv("COURSE_CHECKS_PACKAGE", "demo_checks")
        patch.setenv("PYTHONPATH", str(FIXTURES), prepend=os.pathsep)
        yield


@pytest.fixture(scope="module")
def bundle(demo_env, tmp_path_factory):
    """A bundle for the demo lab, with hidden tests (a stand-in wheel: setup.sh is not run)."""
    folder = tmp_path_factory.mktemp("bundle")
    wheel = folder / "course-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"stand-in")
    return build_bundle(
        99,
        folder / "autograder.zip",
        visibility="after_published",
        package=wheel,
        total_timeout=120,
    )


@pytest.fixture(scope="module")
def runs(bundle, tmp_path_factory):
    """results.json of run_autograder and the report of `course grade`, per submission."""
    files = tmp_path_factory.mktemp("files")
    for name, text in SUBMISSIONS.items():
        (files / name).mkdir()
        (files / name / "99_demo.py").write_text(text)
    reports = grade(
        sorted(files.glob("*/99_demo.py")),
        files / "grades",
        lab=99,
        total_timeout=120,
        calibrate=False,
        progress=False,
    )
    by_name = {Path(report["submission"]).parent.name: report for report in reports}
    results = {}
    for name in SUBMISSIONS:
        root = tmp_path_factory.mktemp(f"autograder-{name}")
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(root / "source")
        shutil.copytree(files / name, root / "submission")
        script = root / "source" / "run_autograder"
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        completed = subprocess.run(
            [str(script)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable},
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        results[name] = json.loads((root / "results" / "results.json").read_text())
    return results, by_name


def test_the_zip_holds_setup_and_run_autograder_at_its_root_executable(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        setup = archive.read("setup.sh").decode()
    assert {
        "setup.sh",
        "run_autograder",
        "course-gradescope.json",
        "constraints.txt",
        "course-0.1.0-py3-none-any.whl",
    } <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert "--constraint constraints.txt ./course-0.1.0-py3-none-any.whl" in setup
    assert not any("solution" in name for name in names)


def test_dependencies_are_pinned_to_the_installed_versions():
    from importlib import metadata

    pins = pinned_requirements()
    assert f"tensorflow=={metadata.version('tensorflow')}" in pins
    assert f"keras=={metadata.version('keras')}" in pins
    assert any(pin.startswith("numpy==") for pin in pins)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SUBMISSIONS))
def test_run_autograder_scores_like_course_grade(runs, name):
    results, reports = runs
    result, report = results[name], reports[name]
    assert result["score"] == report["points"]
    assert [(t["number"], t["score"], t["max_score"], t["output"]) for t in result["tests"]] == [
        (e["id"], e["points"], e["max_points"], "Passed." if e["passed"] else e["message"])
        for e in report["exercises"]
    ]
    assert all(test["visibility"] == "after_published" for test in result["tests"])
    assert result["stdout_visibility"] == "hidden"


@pytest.mark.slow
def test_the_three_submissions_get_all_none_and_some_points(runs):
    results, reports = runs
    assert results["solution"]["score"] == sum(t["max_score"] for t in results["solution"]["tests"])
    assert results["untouched"]["score"] == 0
    assert "not implemented yet" in results["untouched"]["tests"][0]["output"]
    assert 0 < results["crashing"]["score"] < results["solution"]["score"]
    assert reports["crashing"]["message"] in results["crashing"]["output"]
    assert all(note in results["crashing"]["output"] for note in reports["crashing"]["notes"])
    assert reports["crashing"]["notes"]


def test_an_empty_submission_gets_a_message_not_a_missing_results_file(bundle, tmp_path):
    from course.grading.gradescope import run_autograder

    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(tmp_path / "source")
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notes.txt").write_text("hello")
    results = run_autograder(tmp_path)
    assert results["score"] == 0 and results["tests"] == []
    assert "no .py or .ipynb notebook" in results["output"]
    assert json.loads((tmp_path / "results" / "results.json").read_text()) == results


def test_bad_options_are_refused_before_anything_is_written(demo_env, tmp_path):
    with pytest.raises(ValueError, match="visibility 'sometimes' is not one of visible"):
        build_bundle(99, tmp_path / "a.zip", visibility="sometimes")
    (tmp_path / "b.zip").write_text("mine")
    with pytest.raises(ValueError, match="b.zip exists"):
        build_bundle(99, tmp_path / "b.zip")
    assert (tmp_path / "b.zip").read_text() == "mine"
