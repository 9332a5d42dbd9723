"""Grade submissions: run each in a sandboxed kernel, judge its exercises in the grader.

The student's kernel is an untrusted function server. It runs the student's cells (copied into
a scratch folder, in the sandbox of ``course.grading.sandbox``: hidden solutions, checks,
reports and other submissions; an unprivileged user; resource limits; every process killed at
the end). Right after the cell that needs it (the exercise's ``check("X")`` cell), the grader
draws the exercise's inputs with a fresh seed and asks the kernel to run the exercise's PROBE on
them (``course.grading.probes.serve``), exchanging ``.npz`` files; the VERDICT then runs here,
in the grader's process, on the returned arrays. Nothing the kernel prints or writes is taken
as a score, so patching the checks, numpy or the reports inside the kernel gains nothing.

A verdict, once taken, is kept: a kernel that dies, hangs or exits later costs only the
exercises not graded yet. Exercises that failed are probed once more after the last cell (a
student may fix a function further down). Per-cell limits are calibrated from the lab's
solution (``course.grading.limits``). Reports and ``grades.csv`` are written atomically and the
CSV is rebuilt from every report in the output folder (``course.grading.reports``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from course.grading import reports as report_files
from course.grading.answer_key.copies import settings_for
from course.grading.answer_key.flags import flags as answer_key_flags
from course.grading.execution import Outcome, run_submission
from course.grading.feedback import write_feedback
from course.grading.limits import (
    CELL_TIMEOUT,
    CHECK_TIMEOUT,
    TOTAL_TIMEOUT,
    Calibration,
    Limits,
    cache_path,
    load_cached,
    save_cached,
)
from course.grading.plan import SubmissionError, find_submissions, read_notebook
from course.grading.registry import Exercise, exercises, lab_from_name
from course.grading.roster import Roster, assign, read_roster
from course.grading.settings import Settings, make_settings, solutions_dir_for
from course.grading.workers import grade_in_workers, stop_signals_interrupt

__all__ = ["SubmissionError", "calibrate_lab", "find_submissions", "grade", "grade_submission",
           "write_csv"]


@stop_signals_interrupt()  # SIGTERM and SIGHUP clean up like SIGINT
def grade(
    submissions: Iterable[str | Path],
    out_dir: str | Path,
    lab: int | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    check_timeout: float = CHECK_TIMEOUT,
    smoke: bool = True,
    progress: bool = True,
    jobs: int = 1,
    calibrate: bool = True,
    solutions: str | Path | None = None,
    sandbox: bool | None = None,
    memory_gb: float | None = 8,
    cache_dir: str | Path | None = None,
    roster: str | Path | Roster | None = None,
    feedback: bool = True,
) -> list[dict[str, Any]]:
    """Grade submissions into ``out_dir/<name>-<hash>.json`` reports and ``out_dir/grades.csv``.

    Args:
        submissions: notebook files, or folders searched for ``*.py`` and ``*.ipynb`` (any case).
        out_dir: where the reports go (created if needed; must not be a file).
        lab: the lab number; by default read from each file name (``alice_02.ipynb`` -> 2).
        cell_timeout, total_timeout, check_timeout: ceilings (seconds) of a cell, a whole
            submission and one exercise's probe.
        smoke: run with ``COURSE_SMOKE=1`` (small data, few epochs).
        progress: print one line per submission.
        jobs: submissions graded in parallel.
        calibrate: derive the limits from a run of the lab's solution (cached).
        solutions: the folder of solution notebooks (default: ``./solutions``, else the one
            next to the ``course`` package).
        sandbox: True: require the sandbox; False: run unsandboxed (the reports say so);
            None: sandbox when the machine allows it, else run unsandboxed with a warning.
        memory_gb: the kernel's address-space limit (None: no limit).
        cache_dir: where calibrations are cached (default ``~/.cache/course/grading``).
        roster: ``roster.csv`` (or a read ``Roster``): each submission's student goes into its
            report (``out_dir/<student_id>_labNN.json``) and each roster student without a
            submission of a graded lab gets a ``missing`` report; a submission that names no
            student or two stops the run before anything is graded (``course.grading.roster``).
        feedback: write ``out_dir/feedback/<report name>.html`` and ``.md`` for each report.

    Returns:
        One report per submission, in the order of the submissions.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a folder for the reports")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    submissions = [Path(s) for s in submissions]
    paths = find_submissions(submissions)
    lab_of = {path: lab if lab is not None else lab_from_name(path.name) for path in paths}
    if roster is not None:  # refuse before anything is graded or written
        roster = roster if isinstance(roster, Roster) else read_roster(roster)
        owners = assign(roster, paths, submissions, lab_of)
    else:
        owners = {}
    report_files.make_folder(out_dir)
    solutions_dir = solutions_dir_for(solutions)
    settings = make_settings(sandbox, smoke, memory_gb, out_dir, submissions, solutions_dir,
                             Path(cache_dir) if cache_dir else None)
    ceilings = Limits(cell=cell_timeout, total=total_timeout, check=check_timeout)
    labs = {lab if lab is not None else lab_from_name(path.name) for path in paths} - {None}
    limits = {
        number: _limits_for_lab(number, ceilings, calibrate, solutions_dir, settings, cache_dir,
                                progress)
        for number in sorted(labs)
    }
    tasks = [(path, lab, limits.get(lab or lab_from_name(path.name), ceilings)) for path in paths]
    reports: list[dict[str, Any] | None] = [None] * len(tasks)

    def finish(index: int, report: dict[str, Any]) -> None:
        path = paths[index]
        name = report_files.report_name(path)
        if path in owners:
            report["student"] = owners[path].as_dict()
            name = report_files.student_report_name(owners[path].id, lab_of[path])
        report_files.write_report(report, out_dir, name)
        report_files.rebuild_csv(out_dir)
        if feedback:
            write_feedback(report, out_dir, name, path, solutions_dir)
        reports[index] = report
        if progress:
            print(report_files.progress_line(report), flush=True)

    if jobs == 1 or len(tasks) <= 1:
        for index, (path, number, lab_limits) in enumerate(tasks):
            finish(index, grade_submission(path, number, lab_limits, settings))
    else:
        _grade_in_parallel(tasks, jobs, settings, finish)
    if roster is not None:
        _mark_missing(roster, owners, lab_of, out_dir, feedback, progress)
    report_files.rebuild_csv(out_dir)
    return [report for report in reports if report is not None]


def _mark_missing(roster: Roster, owners: dict, lab_of: dict, out_dir: Path, feedback: bool,
                  progress: bool) -> None:
    """Write a ``missing`` report for each roster student without a submission of a graded lab,
    unless the folder already holds a graded report of theirs for it (an earlier batch)."""
    for number in sorted({lab_of[path] for path in owners}):
        submitted = {owners[path].id for path in owners if lab_of[path] == number}
        for student in roster.students:
            if student.id in submitted:
                continue
            name = report_files.student_report_name(student.id, number)
            if _graded_before(out_dir / f"{name}.json"):
                continue
            report = report_files.missing_report(student.as_dict(), number, exercises(number))
            report_files.write_report(report, out_dir, name)
            if feedback:
                write_feedback(report, out_dir, name)
            if progress:
                print(report_files.progress_line(report), flush=True)


def _graded_before(path: Path) -> bool:
    """Whether ``path`` is a report of a submission (not of a missing one)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") != "missing"
    except (OSError, ValueError, AttributeError):
        return False


def _grade_in_parallel(tasks: list, jobs: int, settings: Settings, finish: Callable) -> None:
    """Grade the ``(path, lab, limits)`` tasks in ``jobs`` spawned processes, each with its
    own sandbox slot, calling ``finish(index, report)`` as each submission ends; a worker that
    dies costs only its own submission (``course.grading.workers``)."""

    def error_report(index: int, message: str) -> dict[str, Any]:
        path, number = tasks[index][0], tasks[index][1]
        number = number if number is not None else lab_from_name(path.name)
        try:
            entries = exercises(number) if number is not None else []
        except ValueError:  # a lab without checks: the report says so elsewhere
            entries = []
        outcome = Outcome(status="error", message=message)
        return report_files.build_report(path, number, entries, outcome, 0.0, settings)

    grade_in_workers(tasks, jobs, settings, finish, error_report)


def grade_submission(
    path: str | Path,
    lab: int | None = None,
    limits: Limits | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Grade one submission and return its report; never raises for a bad submission."""
    path = Path(path)
    limits = limits or Limits()
    settings = settings or Settings(sandbox=False, unsandboxed_reason="not requested")
    started = time.monotonic()
    lab = lab if lab is not None else lab_from_name(path.name)
    entries: list[Exercise] = []
    flags: list[str] = []
    outcome = Outcome()
    try:
        if lab is None:
            shown = report_files.display_path(path.name)
            raise SubmissionError(
                f"cannot tell the lab number from the file name {shown!r}; "
                "name it like alice_02.ipynb or pass --lab 2"
            )
        try:
            entries = exercises(lab)
        except ValueError as error:
            raise SubmissionError(str(error)) from None
        notebook = read_notebook(path)
        flags = answer_key_flags(notebook, lab)
        # The kernel imports a copy of the package whose answers to this lab refuse to run.
        outcome = run_submission(notebook, path, entries, limits, settings_for(lab, settings),
                                 outcome)
    except SubmissionError as error:
        outcome = Outcome(status="error", message=str(error))
    except Exception as error:  # an error of the grader costs this submission only
        outcome.status = "error"
        outcome.message = f"grading failed: {type(error).__name__}: {str(error)[:300]}" + (
            "; the verdicts taken before it are kept" if outcome.results else ""
        )
    elapsed = time.monotonic() - started
    report = report_files.build_report(path, lab, entries, outcome, elapsed, settings, limits)
    return report | {"flags": flags}


def write_csv(out_dir: str | Path) -> Path:
    """Rebuild ``out_dir/grades.csv`` from the reports in ``out_dir``."""
    return report_files.rebuild_csv(Path(out_dir))


def calibrate_lab(
    lab: int,
    solution: Path,
    ceilings: Limits,
    settings: Settings,
    cache_dir: str | Path | None = None,
) -> Calibration:
    """The measured times of a lab's solution, from the cache or from grading it now."""
    cached_at = cache_path(solution, settings.smoke, cache_dir)
    cached = load_cached(cached_at)
    if cached is not None:
        return cached
    started = time.monotonic()
    entries = exercises(lab)
    lab_settings = settings_for(lab, settings)
    outcome = run_submission(read_notebook(solution), solution, entries, ceilings, lab_settings)
    calibration = Calibration(
        cells=tuple(outcome.cell_times),
        probes=dict(outcome.probe_times),
        total=round(time.monotonic() - started, 2),
        solution=str(solution),
        points=sum(result.points for result in outcome.results.values()),
        max_points=sum(entry.points for entry in entries),
    )
    if outcome.status == "ok":  # cache only a run that went through
        save_cached(calibration, cached_at)
    return calibration


# --- running one submission --------------------------------------------------------------


def _limits_for_lab(lab, ceilings, calibrate, solutions_dir, settings, cache_dir,
                    progress=False) -> Limits:
    if not calibrate or solutions_dir is None:
        return ceilings
    matches = sorted(solutions_dir.glob(f"{lab:02d}_*.py"))
    if len(matches) != 1:
        return ceilings
    cached = load_cached(cache_path(matches[0], settings.smoke, cache_dir))
    if progress and cached is None:
        print(f"calibrating lab {lab} on its solution {matches[0].name} "
              f"({_expected_calibration(matches[0], cache_dir)})...", flush=True)
    try:
        calibration = calibrate_lab(lab, matches[0], ceilings, settings, cache_dir)
    except Exception as error:  # noqa: BLE001 - the ceilings are always a safe fallback
        print(
            f"WARNING: lab {lab}: calibration failed ({error}); using the ceilings", file=sys.stderr
        )
        return ceilings
    if calibration.points < calibration.max_points:
        print(
            f"WARNING: lab {lab}: the solution {matches[0]} gets only "
            f"{calibration.points:g}/{calibration.max_points:g}",
            file=sys.stderr,
        )
    if progress:
        how = "from the cache" if cached is not None else "measured now"
        print(f"lab {lab}: time limits from its solution's run of {calibration.total:.0f} s "
              f"({how})", flush=True)
    return ceilings.calibrated(calibration)


def _expected_calibration(solution: Path, cache_dir) -> str:
    """How long calibrating ``solution`` should take: the last calibration of a lab of that
    name (an earlier version of the solution, or the other mode), else that it is unknown."""
    folder = cache_path(solution, True, cache_dir).parent
    cached = sorted(folder.glob(f"{solution.stem}-*.json"), key=lambda path: path.stat().st_mtime)
    earlier = [load_cached(path) for path in cached]
    times = [calibration.total for calibration in earlier if calibration is not None]
    if not times:
        return "one run of the solution; its time is cached afterwards"
    return f"about {times[-1]:.0f} s, as last time"
