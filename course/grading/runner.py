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

import copy
import io
import multiprocessing
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import numpy as np
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from course.grading import reports as report_files
from course.grading.dependencies import NameGraph
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
from course.grading.probes import ERROR_TYPE, save_arrays, verdict_from_outputs
from course.grading.registry import (
    DEFAULT_CHECKS_PACKAGE,
    MISSING_NAME,
    CheckFailed,
    CheckResult,
    CheckTimeout,
    Exercise,
    as_arrays,
    exercises,
    failed,
    lab_from_name,
    make_inputs,
    probe_name,
)
from course.grading.sandbox import BASE_UID, GIB, Sandbox, unavailable_reason

_TIMEOUT_ERROR = "CellTimeoutError"
_STUB_ERROR = re.compile(r"^Exercise (?P<id>[^\s:]+)(:|$)")
_NOTEBOOK_SUFFIXES = (".py", ".ipynb")
# A statement that only calls check("X") or check_all(...): the grader judges outside instead.
_CHECK_CALL = re.compile(
    r"^(?P<indent>[ \t]*)(?:_\s*=\s*)?check(?:_all)?\([^()\n]*\)[ \t]*;?[ \t]*(?:#.*)?$", re.M
)
_CHECK_ID = r"""check\(\s*["']{id}["']"""
MAX_OUTPUT_BYTES = 256 * 1024**2  # a probe's .npz, compressed or not
_ENV_KEEP = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "VIRTUAL_ENV",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "COURSE_DATA_DIR",
    "COURSE_CHECKS_PACKAGE",
)
_ENV_KEEP_PREFIXES = ("LC_", "TF_", "XLA_")


class SubmissionError(Exception):
    """A submission that cannot be graded at all (missing, unreadable, unknown lab)."""


@dataclass(frozen=True)
class Settings:
    """How kernels run: smoke mode, the sandbox (or why not), what it hides, memory."""

    smoke: bool = True
    sandbox: bool = True
    unsandboxed_reason: str = ""
    hide: tuple[str, ...] = ()
    memory_bytes: int | None = 8 * GIB
    slot: int = 0


@dataclass
class Outcome:
    """What running one submission produced: verdicts taken so far, notes, and what went wrong."""

    status: str = "ok"
    message: str = ""
    notes: list[str] = field(default_factory=list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    stubs_hit: dict[str, str] = field(default_factory=dict)
    cell_times: list[tuple[str, float]] = field(default_factory=list)
    probe_times: dict[str, float] = field(default_factory=dict)
    timed_out: set[str] = field(default_factory=set)
    hanging: dict[str, str] = field(default_factory=dict)  # function or class -> exercise id
    untouched: bool = False  # every exercise's stub is still in the notebook

    def fail(self, status: str, message: str) -> None:
        if self.status == "ok":
            self.status, self.message = status, message


# --- public entry points -----------------------------------------------------------------


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

    Returns:
        One report per submission, in the order of the submissions.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a folder for the reports")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out_dir.mkdir(parents=True, exist_ok=True)
    submissions = [Path(s) for s in submissions]
    paths = find_submissions(submissions)
    solutions_dir = _solutions_dir(solutions)
    settings = _settings(sandbox, smoke, memory_gb, out_dir, submissions, solutions_dir)
    ceilings = Limits(cell=cell_timeout, total=total_timeout, check=check_timeout)
    labs = {lab if lab is not None else lab_from_name(path.name) for path in paths} - {None}
    limits = {
        number: _limits_for_lab(number, ceilings, calibrate, solutions_dir, settings, cache_dir)
        for number in sorted(labs)
    }
    tasks = [(path, lab, limits.get(lab or lab_from_name(path.name), ceilings)) for path in paths]
    reports: list[dict[str, Any] | None] = [None] * len(tasks)

    def finish(index: int, report: dict[str, Any]) -> None:
        report_files.write_report(report, out_dir, report_files.report_name(paths[index]))
        report_files.rebuild_csv(out_dir)
        reports[index] = report
        if progress:
            print(_progress_line(report), flush=True)

    if jobs == 1 or len(tasks) <= 1:
        for index, (path, number, lab_limits) in enumerate(tasks):
            finish(index, grade_submission(path, number, lab_limits, settings))
    else:
        _grade_in_parallel(tasks, jobs, settings, finish)
    report_files.rebuild_csv(out_dir)
    return [report for report in reports if report is not None]


def _grade_in_parallel(tasks: list, jobs: int, settings: Settings, finish: Callable) -> None:
    """Grade the ``(path, lab, limits)`` tasks in ``jobs`` spawned processes, each with its
    own sandbox slot, calling ``finish(index, report)`` as each submission ends."""
    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(jobs):
        slots.put(slot)
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_take_slot, initargs=(slots,)
    ) as pool:
        futures = {
            pool.submit(_grade_in_worker, path, number, lab_limits, settings): index
            for index, (path, number, lab_limits) in enumerate(tasks)
        }
        for future in as_completed(futures):
            index = futures[future]
            try:
                report = future.result()
            except Exception as error:  # a worker that died: one error report
                outcome = Outcome(status="error", message=f"grading failed: {error!r}")
                report = _report(tasks[index][0], tasks[index][1], [], outcome, 0.0, settings)
            finish(index, report)


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
        outcome = run_submission(_read(path), path, entries, limits, settings)
    except SubmissionError as error:
        outcome = Outcome(status="error", message=str(error))
    except Exception as error:  # one broken submission must not stop the batch
        outcome = Outcome(
            status="error", message=f"grading failed: {type(error).__name__}: {error}"
        )
    return _report(path, lab, entries, outcome, time.monotonic() - started, settings, limits)


def find_submissions(submissions: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the notebooks inside them (``.py``/``.ipynb`` in any
    case; hidden folders and symbolic links skipped); each file once."""
    paths, seen = [], set()
    for submission in map(Path, submissions):
        if submission.is_dir():
            found = sorted(
                p
                for p in submission.rglob("*")
                if p.suffix.lower() in _NOTEBOOK_SUFFIXES
                and p.is_file()
                and not p.is_symlink()
                and not _is_hidden(p.relative_to(submission))
            )
        else:
            found = [submission]
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


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
    outcome = run_submission(_read(solution), solution, entries, ceilings, settings)
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


def run_submission(
    notebook: nbformat.NotebookNode,
    path: Path,
    entries: list[Exercise],
    limits: Limits,
    settings: Settings,
) -> Outcome:
    """Run the student's cells in a sandboxed kernel, taking each verdict as soon as it can."""
    outcome = Outcome()
    cells = [(index, cell) for index, cell in enumerate(notebook.cells) if _is_code(cell)]
    if not cells:
        outcome.status = "not attempted"
        outcome.message = "the notebook has no code"
        return outcome
    plan = _plan(notebook, entries)
    text = "\n".join(str(cell.get("source", "")) for cell in notebook.cells)
    outcome.untouched = bool(entries) and all(
        f'NotImplementedError("Exercise {entry.id}:' in text for entry in entries
    )
    deadline = time.monotonic() + limits.for_total()
    with _Scratch(path, settings) as scratch:
        session = _Session(notebook, scratch, settings)
        try:
            with session.started():
                if _run_cells(session, cells, plan, deadline, limits, outcome):
                    for entry in entries:  # after the last cell: what failed gets a second try
                        result = outcome.results.get(entry.id)
                        if result is None or not (result.passed or entry.id in outcome.timed_out):
                            if not _probe(session, entry, deadline, limits, outcome, plan):
                                break
        except DeadKernelError:  # a RuntimeError too: first
            outcome.fail(
                "crashed",
                f"the kernel died in {session.running} (a crash, "
                "os._exit(), a signal, or out of memory?)",
            )
        except RuntimeError as error:
            if session.ready:
                raise
            outcome.fail("error", f"the kernel could not start: {error} ({session.log_tail()})")
        finally:
            session.close()
    return outcome


def _run_cells(session, cells, plan: _Plan, deadline, limits, outcome) -> bool:
    """Run the student's code cells, probing after each planned cell; False: kernel given up."""
    for index, cell in cells:
        label = _cell_label(index, cell)
        ceiling = limits.for_cell(cell.source)
        hung = plan.graph.cell_reaches(index, set(outcome.hanging))
        if hung:
            ceiling = min(ceiling, limits.after_hang)
        run = _run_timed(session, _without_checks(cell), label, ceiling, deadline, limits,
                         outcome, index)
        if run is None:
            return False
        reply, elapsed, limit = run
        if reply.get("ename") == _TIMEOUT_ERROR:
            because = _because_hung(hung, outcome)
            outcome.notes.append(
                f"{label} ran past its {limit:g} s limit{because} and was interrupted"
            )
            if not _stopped(session, label, limit, limits, outcome):
                return False
        else:
            outcome.cell_times.append((cell.source, round(elapsed, 3)))
            if reply.get("status") == "error":
                outcome.notes.append(f"{label} raised {_error_line(reply)}")
                stub = _STUB_ERROR.match(str(reply.get("evalue", "")))
                if reply.get("ename") == "NotImplementedError" and stub:
                    outcome.stubs_hit[stub["id"]] = str(reply["evalue"])
        if _asked_to_exit(reply):
            outcome.fail(
                "crashed", f"the notebook called exit() in {label}; the cells after it did not run"
            )
            return False
        for entry in plan.after.get(index, []):
            if not _probe(session, entry, deadline, limits, outcome, plan):
                return False
    return True


def _run_timed(session, cell, label: str, ceiling: float, deadline: float, limits: Limits,
               outcome: Outcome, index: int = -1) -> tuple[dict[str, Any], float, float] | None:
    """Run ``cell`` for at most ``ceiling`` seconds, cut to what is left before ``deadline``.

    Returns the kernel's reply, the seconds the run took and its limit; None when the
    notebook's total limit ran out before or during the run (the outcome then says so).
    """
    limit = min(ceiling, deadline - time.monotonic())
    if limit <= 0:
        outcome.fail("timeout", f"the notebook ran past its total limit of "
                                f"{limits.for_total():g} s before {label}")
        return None
    started = time.monotonic()
    reply = session.run(cell, limit, index, label)
    elapsed = time.monotonic() - started
    if reply.get("ename") == _TIMEOUT_ERROR and limit < ceiling:
        outcome.fail("timeout", f"the notebook ran past its total limit of "
                                f"{limits.for_total():g} s in {label}")
        return None
    return reply, elapsed, limit


def _stopped(session, label: str, limit: float, limits: Limits, outcome: Outcome) -> bool:
    """After ``label`` ran past its ``limit``: whether the kernel stopped when interrupted (if
    not, the notebook fails)."""
    if session.responds(limits.interrupt):
        return True
    outcome.fail(
        "timeout", f"{label} ran past its {limit:g} s limit and did not stop when interrupted"
    )
    return False


def _because_hung(hung: set[str], outcome: Outcome) -> str:
    if not hung:
        return ""
    name = sorted(hung)[0]
    return f" (it uses `{name}`, which hung in exercise {outcome.hanging[name]})"


def _probe(
    session, entry: Exercise, deadline: float, limits: Limits, outcome: Outcome, plan: _Plan
) -> bool:
    """Judge one exercise: inputs here, probe in the kernel, verdict here. False: kernel lost."""
    if entry.probe is None:
        no_probe = CheckFailed("cannot be graded outside the kernel: its check has no probe")
        _keep(outcome, failed(entry, no_probe))
        return True
    label = f"the probe of exercise {entry.id}"
    ceiling = limits.for_probe(entry.id)
    own = plan.names.get(entry.id, set())
    if plan.graph.reaches(own, set(outcome.hanging) - own):
        ceiling = min(ceiling, limits.after_hang)
    inputs = make_inputs(entry, seed=secrets.randbits(64))
    nonce = secrets.token_hex(16)
    inputs_path = session.scratch.inputs / f"in-{nonce}.npz"
    outputs_path = session.scratch.work / f".probe-{nonce}.npz"
    save_arrays(inputs, inputs_path)
    os.chmod(inputs_path, 0o644)
    module, function = probe_name(entry.probe)
    source = (
        "__import__('course.grading.probes', fromlist=['serve']).serve("
        f"{module!r}, {function!r}, {str(inputs_path)!r}, {str(outputs_path)!r})"
    )
    try:
        run = _run_timed(session, nbformat.v4.new_code_cell(source), label, ceiling, deadline,
                         limits, outcome)
        if run is None:
            return False
        reply, elapsed, limit = run
        if reply.get("ename") == _TIMEOUT_ERROR:
            outcome.timed_out.add(entry.id)
            for name in own:  # what the student defined for it hangs: later users get little time
                outcome.hanging.setdefault(name, entry.id)
            _keep(outcome, failed(entry, CheckTimeout(), limit))
            return _stopped(session, label, limit, limits, outcome)
        if reply.get("status") == "error":
            message = f"the grader could not call your code: {_error_line(reply)}"
            result = CheckResult(entry.id, entry.title, 0, entry.points, False, message)
        else:
            result = _judge(entry, inputs, outputs_path)
        outcome.probe_times[entry.id] = max(outcome.probe_times.get(entry.id, 0), elapsed)
        _keep(outcome, result, outcome.stubs_hit.get(entry.id))
        return not _asked_to_exit(reply)
    finally:
        inputs_path.unlink(missing_ok=True)
        _unlink_quietly(outputs_path)


def _judge(entry: Exercise, inputs: dict, outputs_path: Path) -> CheckResult:
    """The verdict, in this process, on the arrays the kernel wrote (read with care)."""
    try:
        outputs = read_outputs(outputs_path)
    except ValueError as error:
        return CheckResult(entry.id, entry.title, 0, entry.points, False, str(error))
    return verdict_from_outputs(entry, inputs, outputs)


def read_outputs(path: Path) -> dict[str, np.ndarray]:
    """A probe's outputs: a regular file (no link), at most MAX_OUTPUT_BYTES packed and
    unpacked, no pickles, numeric arrays only (or the two text fields of an error record)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise ValueError("the probe wrote no outputs (did your code stop the kernel?)") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_OUTPUT_BYTES:
            raise ValueError("the probe's outputs are not a file of a reasonable size")
        data = file.read(MAX_OUTPUT_BYTES + 1)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(member.file_size for member in archive.infolist()) > MAX_OUTPUT_BYTES:
                raise ValueError("the probe's outputs are too large once unpacked")
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        arrays = as_arrays(arrays, "the probe's outputs")
    except ValueError:
        raise
    except Exception as error:  # a damaged archive: zipfile and numpy raise many kinds
        raise ValueError(
            f"the probe's outputs could not be read ({type(error).__name__})"
        ) from None
    if ERROR_TYPE not in arrays:
        for key, array in arrays.items():
            if array.dtype.kind not in "biuf":
                raise ValueError(f"the probe's output {key!r} is not numeric ({array.dtype})")
    return arrays


def _keep(outcome: Outcome, result: CheckResult, stub: str | None = None) -> None:
    """Keep the best verdict of an exercise (a pass is never taken back)."""
    if stub and MISSING_NAME in result.message:
        result = CheckResult(
            result.id, result.title, 0, result.max_points, False, f"not implemented yet: {stub}"
        )
    previous = outcome.results.get(result.id)
    if previous is None or not previous.passed:
        outcome.results[result.id] = result


@dataclass
class _Plan:
    """When each exercise is judged (after which cell), the functions and classes it defines,
    and what every cell uses."""

    after: dict[int, list[Exercise]]
    names: dict[str, set[str]]
    graph: NameGraph


def _plan(notebook: nbformat.NotebookNode, entries: list[Exercise]) -> _Plan:
    """Each exercise is judged after its ``check("X")`` cell, else after the last code cell
    before the next exercise heading; exercises found nowhere wait for the end. Its cells run
    from its heading (or its check cell) to that cell."""
    cells = list(enumerate(notebook.cells))
    graph = NameGraph({i: c.source for i, c in cells if _is_code(c)})
    after: dict[int, list[Exercise]] = {}
    names: dict[str, set[str]] = {}
    for entry in entries:
        escaped = re.escape(entry.id)
        checker = re.compile(_CHECK_ID.format(id=escaped))
        heading = re.compile(rf"Exercise\s+{escaped}\b")
        start = next(
            (i for i, c in cells if c.get("cell_type") == "markdown" and heading.search(c.source)),
            None,
        )
        at = next((i for i, c in cells if _is_code(c) and checker.search(c.source)), None)
        if at is None and start is not None:
            for i, cell in cells[start + 1 :]:
                if cell.get("cell_type") == "markdown" and re.search(r"Exercise\s+\d", cell.source):
                    break
                if _is_code(cell):
                    at = i
        if at is not None:
            after.setdefault(at, []).append(entry)
            first = start if start is not None and start < at else at
            names[entry.id] = graph.definitions(range(first, at + 1))
    return _Plan(after, names, graph)


def _without_checks(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The cell with statement-level ``check(...)``/``check_all(...)`` calls replaced by ``pass``:
    while grading, the checks (hidden from the kernel) run in the grader instead."""
    source = _CHECK_CALL.sub(r"\g<indent>pass  # judged by the grader", cell.source)
    return nbformat.v4.new_code_cell(source) if source != cell.source else cell


# --- the kernel ----------------------------------------------------------------------------


class _SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command runs inside ``self.sandbox`` (when set)."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        return self.sandbox.wrap(command) if self.sandbox is not None else command


class _Scratch:
    """A fresh scratch folder: ``work`` (the kernel's, holding a copy of the submission) and
    ``inputs`` (the grader's, readable by the kernel); removed with everything in it."""

    def __init__(self, submission: Path, settings: Settings):
        self.settings = settings
        self.uid = BASE_UID + settings.slot
        self.base = Path(tempfile.mkdtemp(prefix="course-grade-"))
        os.chmod(self.base, 0o711)
        self.work = self.base / "work"
        self.inputs = self.base / "inputs"
        self.work.mkdir(mode=0o700)
        self.inputs.mkdir(mode=0o711)
        os.chmod(self.inputs, 0o711)
        copy = self.work / _safe_file_name(submission)
        shutil.copyfile(submission, copy)
        if settings.sandbox:
            for path in (self.work, copy):
                os.chown(path, self.uid, self.uid)

    def __enter__(self) -> _Scratch:
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class _Session:
    """One kernel for one submission, running cells with a time limit each."""

    def __init__(self, notebook: nbformat.NotebookNode, scratch: _Scratch, settings: Settings):
        self.scratch = scratch
        self.settings = settings
        self.km = _SandboxedKernelManager(kernel_name="python3")
        self.client = NotebookClient(
            copy.deepcopy(notebook),
            km=self.km,
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT_ERROR, "evalue": "", "traceback": []},
            shutdown_kernel="immediate",
            iopub_timeout=1,  # outputs are not graded: do not wait for stragglers after a reply
            record_timing=False,
            store_widget_state=False,
            startup_timeout=120,
        )
        self.client.on_cell_executed = self._keep_reply
        self.reply: dict[str, Any] = {}
        self.running = "the kernel's start"
        self.ready = False

    def started(self):
        """Context manager: a (sandboxed) kernel with the grading environment, killed on exit."""
        env = _kernel_env(self.settings.smoke)
        if self.settings.sandbox:
            self.km.sandbox = Sandbox(
                scratch=str(self.scratch.work),
                hide=self.settings.hide,
                expose=(*_runtime_paths(), str(self.scratch.base)),
                uid=self.scratch.uid,
                memory_bytes=self.settings.memory_bytes,
                cpu_seconds=int(4 * TOTAL_TIMEOUT * (os.cpu_count() or 1)),
            )
        else:
            env["HOME"] = str(self.scratch.work)
        # Kernel and C-library chatter must not flood our output: it goes to a log file that
        # explains a kernel that fails to start (RLIMIT_FSIZE bounds it).
        self.log = open(self.scratch.base / "kernel.log", "wb")  # noqa: SIM115
        return self.client.setup_kernel(
            env=env,
            cwd=str(self.scratch.work),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            cleanup_kc=True,
        )

    def close(self) -> None:
        if getattr(self, "log", None) is not None:
            self.log.close()

    def log_tail(self) -> str:
        """The last line the kernel (or the sandbox) wrote on stderr."""
        try:
            lines = (self.scratch.base / "kernel.log").read_bytes()[-4000:].splitlines()
        except OSError:
            return ""
        text = [line.decode(errors="replace").strip() for line in lines if line.strip()]
        return text[-1][:300] if text else ""

    def run(
        self, cell: nbformat.NotebookNode, limit: float, index: int = -1, label: str = ""
    ) -> dict[str, Any]:
        """Run one cell for at most ``limit`` seconds; return the kernel's reply content.

        A cell past its limit is interrupted and its reply says ``ename: CellTimeoutError``.
        """
        self.ready = True
        self.running = label or self.running
        self.reply = {}
        self.client.timeout = max(1, int(limit + 0.999))
        self.client.execute_cell(cell, index, store_history=index >= 0)
        return self.reply

    def responds(self, limit: float) -> bool:
        """Whether the kernel is free again after an interrupt (it runs a trivial cell)."""
        reply = self.run(nbformat.v4.new_code_cell("pass"), limit)
        return reply.get("status") == "ok"

    def _keep_reply(self, cell, cell_index, execute_reply) -> None:
        self.reply = execute_reply["content"]


def _runtime_paths() -> tuple[str, ...]:
    """The folders a kernel needs to read: Python, its packages, ``course``, PYTHONPATH."""
    import site

    import course

    paths = [sys.base_prefix, sys.prefix, *site.getsitepackages()]
    paths.append(str(Path(course.__file__).resolve().parent))
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    real = [os.path.realpath(p) for p in paths if os.path.isdir(p)]
    return tuple(dict.fromkeys(real))


def _kernel_env(smoke: bool) -> dict[str, str]:
    """The kernel's environment: an allow-list of the grader's (no secrets passed on)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _ENV_KEEP or key.startswith(_ENV_KEEP_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise here
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1", COURSE_GRADING="1")
    if os.environ.get("PYTHONPATH"):  # the kernel runs in a scratch folder, not ours
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    if smoke:
        env["COURSE_SMOKE"] = "1"
    return env


# --- settings, limits, reports -------------------------------------------------------------


def _settings(
    sandbox: bool | None,
    smoke: bool,
    memory_gb: float | None,
    out_dir: Path,
    submissions: list[Path],
    solutions_dir: Path | None,
) -> Settings:
    reason = unavailable_reason() if sandbox is not False else "--no-sandbox was given"
    if sandbox is True and reason:
        raise ValueError(f"cannot sandbox the kernels: {reason}")
    if reason:
        print(
            f"WARNING: grading WITHOUT a sandbox ({reason}): student code can read the "
            "solutions and write anywhere this user can. Every report says so.",
            file=sys.stderr,
            flush=True,
        )
    hide = _hidden_paths(out_dir, submissions, solutions_dir) if not reason else ()
    memory = int(memory_gb * GIB) if memory_gb else None
    return Settings(
        smoke=smoke,
        sandbox=not reason,
        unsandboxed_reason=reason or "",
        hide=hide,
        memory_bytes=memory,
    )


def _hidden_paths(out_dir: Path, submissions: list[Path], solutions_dir: Path | None) -> tuple:
    """What the kernel must not see: the solutions, the checks, the output folder, the
    submission folders and the course's repository (its tests hold mistakes and hints, its
    ``.git`` every solution), all but what the kernel needs to run (Python, its packages, the
    ``course`` package without its checks, the PYTHONPATH)."""
    import importlib.util
    import site

    import course

    package_dir = Path(course.__file__).resolve().parent
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())}
    needed.add(package_dir)
    needed |= {
        Path(entry).resolve()
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry
    }
    hide: list[Path] = []
    repository = package_dir.parent
    if (repository / ".git").exists() or (repository / "pyproject.toml").exists():
        hide += _all_but(repository, needed)
    for folder in [out_dir] + [s if s.is_dir() else s.parent for s in submissions]:
        hide += _all_but(folder.resolve(), needed)
    if solutions_dir is not None:
        hide.append(solutions_dir.resolve())
    for package in {DEFAULT_CHECKS_PACKAGE, os.environ.get("COURSE_CHECKS_PACKAGE") or ""} - {""}:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            hide.append(Path(location).resolve())
    return tuple(dict.fromkeys(str(path) for path in hide if path.exists()))


def _all_but(folder: Path, needed: set[Path]) -> list[Path]:
    """``folder`` if it holds nothing in ``needed``, else its other entries, recursively
    (symbolic links are left alone: hiding one would hide its target)."""
    if not any(path == folder or path.is_relative_to(folder) for path in needed):
        return [folder]
    if folder in needed or not folder.is_dir():
        return []
    hidden = []
    for child in sorted(folder.iterdir()):
        if not child.is_symlink() and (child.is_dir() or child.is_file()):
            hidden += _all_but(child, needed)
    return hidden


def _solutions_dir(solutions: str | Path | None) -> Path | None:
    if solutions is not None:
        return Path(solutions)
    import course

    for candidate in (
        Path.cwd() / "solutions",
        Path(course.__file__).resolve().parents[1] / "solutions",
    ):
        if candidate.is_dir():
            return candidate
    return None


def _limits_for_lab(lab, ceilings, calibrate, solutions_dir, settings, cache_dir) -> Limits:
    if not calibrate or solutions_dir is None:
        return ceilings
    matches = sorted(solutions_dir.glob(f"{lab:02d}_*.py"))
    if len(matches) != 1:
        return ceilings
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
    return ceilings.calibrated(calibration)


def _report(
    path: Path,
    lab: int | None,
    entries: list[Exercise],
    outcome: Outcome,
    elapsed: float,
    settings: Settings,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The JSON report of one submission (validated against the schema when written)."""
    graded = [_graded(entry, outcome) for entry in entries]
    status, message = outcome.status, outcome.message
    if status == "ok" and _nothing_attempted(outcome, graded):
        status, message = (
            "not attempted",
            "no exercise was attempted (each still raises NotImplementedError)",
        )
    warnings = []
    if not settings.sandbox:
        warnings.append(
            f"NOT SANDBOXED ({settings.unsandboxed_reason}): the kernel could read "
            "the solutions and write outside its folder"
        )
    return {
        "schema": report_files.SCHEMA,
        "submission": report_files.display_path(path),
        "lab": lab,
        "points": sum(e["points"] for e in graded),
        "max_points": sum(e["max_points"] for e in graded),
        "elapsed_s": round(elapsed, 1),
        "status": status,
        "message": message,
        "sandboxed": settings.sandbox,
        "warnings": warnings,
        "limits": (limits or Limits()).describe(),
        "notes": outcome.notes,
        "exercises": graded,
    }


def _graded(entry: Exercise, outcome: Outcome) -> dict[str, Any]:
    """One exercise in the report: its verdict, or why it has none."""
    result = outcome.results.get(entry.id)
    if result is None:
        why = outcome.message or "its cell never ran"
        state = "not attempted" if outcome.status == "not attempted" else "not graded"
        result = CheckResult(entry.id, entry.title, 0, entry.points, False, f"{state}: {why}")
    return {
        "id": entry.id,
        "title": entry.title,
        "points": entry.points if result.passed else 0,  # a verdict never gives more or less
        "max_points": entry.points,
        "passed": bool(result.passed),
        "message": result.message,
    }


def _nothing_attempted(outcome: Outcome, graded: list[dict[str, Any]]) -> bool:
    """Whether no exercise passed and each one still raises its NotImplementedError stub."""
    if not graded or any(exercise["passed"] for exercise in graded):
        return False
    return outcome.untouched or all(
        exercise["message"].startswith("not implemented yet") for exercise in graded
    )


def _grade_in_worker(path, lab, limits, settings) -> dict[str, Any]:
    from dataclasses import replace

    return grade_submission(path, lab, limits, replace(settings, slot=_SLOT["slot"]))


_SLOT = {"slot": 0}


def _take_slot(slots) -> None:
    _SLOT["slot"] = slots.get()


def _read(path: Path) -> nbformat.NotebookNode:
    """Read a submission as a notebook, or raise SubmissionError saying why it cannot be."""
    shown = report_files.display_path(path.name)
    if not path.is_file():
        raise SubmissionError(f"{report_files.display_path(path)} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in _NOTEBOOK_SUFFIXES:
        raise SubmissionError(f"{shown} is not a notebook; submit a .py or .ipynb file")
    try:
        if suffix == ".py":
            return jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
        return jupytext.reads(path.read_text(encoding="utf-8"), fmt="ipynb")
    except Exception as error:  # jupytext and nbformat raise many kinds
        raise SubmissionError(
            f"cannot read {shown} as a notebook: {type(error).__name__}: {error}"
        ) from None


def _progress_line(report: dict[str, Any]) -> str:
    name = Path(report["submission"]).name
    score = f"{report['points']:g}/{report['max_points']:g}"
    line = f"{name:<32} {score:>9}  {report['elapsed_s']:6.1f} s  {report['status']}"
    return f"{line}: {report['message']}" if report["message"] else line


def _error_line(reply: dict[str, Any]) -> str:
    detail = str(reply.get("evalue", "")).strip().splitlines()
    name = str(reply.get("ename", "Error"))
    text = f"{name}: {detail[0]}" if detail else name
    return text if len(text) <= 300 else text[:297] + "..."


def _asked_to_exit(reply: dict[str, Any]) -> bool:
    """Whether the cell called ``exit()``/``quit()`` (the kernel stops after its reply)."""
    payloads = reply.get("payload") or []
    return any(
        isinstance(p, dict) and p.get("source") == "ask_exit" and not p.get("keepkernel")
        for p in payloads
    )


def _cell_label(index: int, cell: nbformat.NotebookNode) -> str:
    """How a report names a cell: its number in the notebook and its first line of code."""
    lines = [line.strip() for line in str(cell.source).splitlines() if line.strip()]
    return f"cell {index + 1} (`{lines[0][:40] if lines else ''}`)"


def _safe_file_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", report_files.display_path(path.name)).strip("._")
    return name or "submission.py"


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _is_hidden(path: Path) -> bool:
    """Whether a path lies in a hidden folder or is a hidden file (``.ipynb_checkpoints``)."""
    return any(part.startswith(".") for part in path.parts)


def _is_code(cell: nbformat.NotebookNode) -> bool:
    return cell.get("cell_type") == "code" and bool(str(cell.get("source", "")).strip())
