"""Grade submissions: run each one in a fresh Jupyter kernel, check it there, and report.

Each submission (a percent-format ``.py`` or an ``.ipynb``) is read with jupytext and executed
with nbclient in its own kernel, with ``COURSE_SMOKE=1``. Errors are allowed, so a broken cell
costs only what depends on it. A cell that runs past the per-cell limit is interrupted and the
run goes on; past the total limit, or when the kernel dies or cannot be interrupted, the kernel
is killed and the exercises not graded get 0. After the student's cells, one more cell in the
same kernel runs ``check_all`` and writes the per-exercise results. Student code never runs in
the grader's own process. Because the checks share the student's kernel, a determined student
could fake them: this grader catches honest mistakes, it is not a sandbox.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from course.grading.limits import CELL_TIMEOUT, CHECK_TIMEOUT, TOTAL_TIMEOUT, Limits
from course.grading.registry import MISSING_NAME, exercises, lab_from_name

_TIMEOUT_ERROR = "CellTimeoutError"
_STUB_ERROR = re.compile(r"^Exercise (?P<id>[^\s:]+)(:|$)")
_GRADING_CELL = (
    "from course.grading import check_all as _course_check_all\n"
    "_course_check_all(lab={lab}, report_path={report_path!r}, timeout={timeout})"
)


class SubmissionError(Exception):
    """A submission that cannot be graded at all (missing, unreadable, unknown lab)."""


@dataclass
class Outcome:
    """What running one submission produced: the checks' results or why there are none.

    ``stubs_hit`` maps exercise ids to the message of the NotImplementedError their stub raised
    in a cell; a stub at the top level of a cell leaves names undefined, and the report then
    says "not implemented yet" rather than "not defined".
    """

    status: str = "ok"
    message: str = ""
    notes: list[str] = field(default_factory=list)
    results: dict[str, Any] | None = None
    stubs_hit: dict[str, str] = field(default_factory=dict)


def grade(
    submissions: Iterable[str | Path],
    out_dir: str | Path,
    lab: int | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    total_timeout: float = TOTAL_TIMEOUT,
    check_timeout: float = CHECK_TIMEOUT,
    smoke: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Grade submissions into ``out_dir/<name>.json`` reports and one ``out_dir/grades.csv``.

    Args:
        submissions: notebook files, or folders searched for ``*.py`` and ``*.ipynb``.
        out_dir: where the reports go (created if needed).
        lab: the lab number; by default read from each file name (``alice_02.ipynb`` -> 2).
        cell_timeout: seconds before a cell is interrupted.
        total_timeout: seconds for a whole submission, its checks included.
        check_timeout: seconds for each exercise's check.
        smoke: run with ``COURSE_SMOKE=1`` (small data, few epochs).
        progress: print one line per submission.

    Returns:
        One report per submission (the dicts written as JSON).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = Limits(cell=cell_timeout, total=total_timeout, check=check_timeout)
    paths = find_submissions(submissions)
    reports = []
    for path, name in zip(paths, _report_names(paths)):
        report = grade_submission(path, lab, limits, smoke)
        (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        if progress:
            print(_progress_line(report), flush=True)
        reports.append(report)
    write_csv(reports, out_dir / "grades.csv")
    return reports


def grade_submission(
    path: str | Path, lab: int | None = None, limits: Limits | None = None, smoke: bool = True
) -> dict[str, Any]:
    """Grade one submission and return its report; never raises for a bad submission."""
    path = Path(path)
    limits = limits or Limits()
    started = time.monotonic()
    lab = lab if lab is not None else lab_from_name(path.name)
    try:
        if lab is None:
            raise SubmissionError(
                f"cannot tell the lab number from the file name {path.name!r}; "
                "name it like alice_02.ipynb or pass --lab 2"
            )
        outcome = _run_in_kernel(_read(path), path, lab, limits, smoke)
    except SubmissionError as error:
        outcome = Outcome(status="error", message=str(error))
    except Exception as error:  # one broken submission must not stop the batch
        outcome = Outcome(
            status="error", message=f"grading failed: {type(error).__name__}: {error}"
        )
    return _report(path, lab, outcome, time.monotonic() - started)


def write_csv(reports: list[dict[str, Any]], path: str | Path) -> None:
    """Write one row per report: submission, lab, each exercise's points, total, max, status."""
    ids = list(dict.fromkeys(entry["id"] for report in reports for entry in report["exercises"]))
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["submission", "lab", *ids, "total", "max", "status"])
        for report in reports:
            points = {entry["id"]: entry["points"] for entry in report["exercises"]}
            row = [report["submission"], report["lab"] or ""]
            row += [_number(points[key]) if key in points else "" for key in ids]
            row += [_number(report["points"]), _number(report["max_points"]), report["status"]]
            writer.writerow(row)


def find_submissions(submissions: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the notebooks inside them (hidden folders skipped)."""
    paths = []
    for submission in map(Path, submissions):
        if not submission.is_dir():
            paths.append(submission)
            continue
        notebooks = (p for p in submission.rglob("*") if p.suffix in (".py", ".ipynb"))
        paths += sorted(p for p in notebooks if not _is_hidden(p.relative_to(submission)))
    return paths


def _run_in_kernel(
    notebook: nbformat.NotebookNode, path: Path, lab: int, limits: Limits, smoke: bool
) -> Outcome:
    """Execute the student's cells, then the grading cell, in one fresh kernel."""
    deadline = time.monotonic() + limits.total
    outcome = Outcome()
    kernel = _Kernel(notebook, path.parent)
    with tempfile.TemporaryDirectory() as scratch:
        report_path = Path(scratch) / "results.json"
        try:
            with kernel.started(smoke):
                if _run_student_cells(kernel, notebook, deadline, limits, outcome):
                    _run_grading_cell(kernel, lab, report_path, deadline, limits, outcome)
        except DeadKernelError:
            outcome.status = "crashed"
            outcome.message = (
                f"the kernel died in {kernel.running} (out of memory, or the code called exit()?)"
            )
        if report_path.exists():
            outcome.results = json.loads(report_path.read_text(encoding="utf-8"))
    return outcome


def _run_student_cells(
    kernel: _Kernel,
    notebook: nbformat.NotebookNode,
    deadline: float,
    limits: Limits,
    outcome: Outcome,
) -> bool:
    """Run the student's code cells; return False when the kernel had to be given up."""
    for index, cell in enumerate(notebook.cells):
        if not _is_code(cell):
            continue
        label = _cell_label(index, cell)
        limit = min(limits.cell, deadline - time.monotonic())
        reply = kernel.run(cell, limit, index, label) if limit > 0 else {"ename": _TIMEOUT_ERROR}
        if reply.get("ename") == _TIMEOUT_ERROR and limit < limits.cell:
            outcome.status = "timeout"
            outcome.message = (
                f"the notebook ran past the total limit of {limits.total:g} s in {label}"
            )
            return False
        if reply.get("ename") == _TIMEOUT_ERROR:
            outcome.notes.append(
                f"{label} ran past the {limits.cell:g} s limit and was interrupted"
            )
            if not kernel.responds(min(limits.probe, limits.cell)):
                outcome.status = "timeout"
                outcome.message = (
                    f"{label} ran past the {limits.cell:g} s limit and did not stop when "
                    "interrupted"
                )
                return False
        elif reply.get("status") == "error":
            outcome.notes.append(f"{label} raised {_error_line(reply)}")
            stub = _STUB_ERROR.match(str(reply.get("evalue", "")))
            if reply.get("ename") == "NotImplementedError" and stub:
                outcome.stubs_hit[stub["id"]] = reply["evalue"]
    return True


def _run_grading_cell(
    kernel: _Kernel, lab: int, report_path: Path, deadline: float, limits: Limits, outcome: Outcome
) -> None:
    """Run ``check_all`` in the student's kernel, writing the results to ``report_path``."""
    source = _GRADING_CELL.format(lab=lab, report_path=str(report_path), timeout=limits.check)
    limit = deadline - time.monotonic()
    reply = kernel.run(nbformat.v4.new_code_cell(source), limit) if limit > 0 else {}
    if limit <= 0 or reply.get("ename") == _TIMEOUT_ERROR:
        outcome.status = "timeout"
        outcome.message = f"the checks ran past the total limit of {limits.total:g} s"
    elif reply.get("status") == "error":
        outcome.status = "error"
        outcome.message = f"the checks could not run: {_error_line(reply)}"


class _Kernel:
    """One fresh Jupyter kernel that runs cells with a time limit each."""

    def __init__(self, notebook: nbformat.NotebookNode, workdir: Path):
        self.client = NotebookClient(
            notebook,
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT_ERROR, "evalue": "", "traceback": []},
            shutdown_kernel="immediate",
            iopub_timeout=1,  # outputs are not graded: do not wait for stragglers after a reply
            record_timing=False,
            resources={"metadata": {"path": str(workdir)}},
        )
        self.client.on_cell_executed = self._keep_reply
        self.reply: dict[str, Any] = {}
        self.running = "the checks"

    def started(self, smoke: bool):
        """Context manager: a kernel with the grading environment, killed on exit."""
        env = dict(os.environ, MPLBACKEND="Agg")
        if env.get("PYTHONPATH"):  # the kernel runs in the submission's folder, not ours
            entries = env["PYTHONPATH"].split(os.pathsep)
            env["PYTHONPATH"] = os.pathsep.join(str(Path(entry).resolve()) for entry in entries)
        if smoke:
            env["COURSE_SMOKE"] = "1"
        else:
            env.pop("COURSE_SMOKE", None)
        devnull = subprocess.DEVNULL  # kernel and C-library chatter must not flood our output
        return self.client.setup_kernel(env=env, stdout=devnull, stderr=devnull)

    def run(
        self, cell: nbformat.NotebookNode, limit: float, index: int = -1, label: str = "the checks"
    ) -> dict[str, Any]:
        """Run one cell for at most ``limit`` seconds; return the kernel's reply content.

        A cell past its limit is interrupted and its reply says ``ename: CellTimeoutError``.
        """
        self.running = label
        self.reply = {}
        self.client.timeout = max(1, math.ceil(limit))
        self.client.execute_cell(cell, index)
        return self.reply

    def responds(self, limit: float) -> bool:
        """Whether the kernel is free again after an interrupt (it runs a trivial cell)."""
        reply = self.run(nbformat.v4.new_code_cell("pass"), limit, label=self.running)
        return reply.get("status") == "ok"

    def _keep_reply(self, cell, cell_index, execute_reply) -> None:
        self.reply = execute_reply["content"]


def _read(path: Path) -> nbformat.NotebookNode:
    """Read a submission as a notebook, or raise SubmissionError saying why it cannot be."""
    if not path.is_file():
        raise SubmissionError(f"{path} does not exist or is not a file")
    if path.suffix not in (".py", ".ipynb"):
        raise SubmissionError(f"{path.name} is not a notebook; submit a .py or .ipynb file")
    try:
        return jupytext.read(path, fmt="py:percent" if path.suffix == ".py" else None)
    except Exception as error:  # jupytext and nbformat raise many kinds
        raise SubmissionError(
            f"cannot read {path.name} as a notebook: {type(error).__name__}: {error}"
        ) from None


def _report(path: Path, lab: int | None, outcome: Outcome, elapsed: float) -> dict[str, Any]:
    """The JSON report of one submission."""
    if outcome.results is None:
        graded = _ungraded(lab, outcome.message)
    else:
        graded = outcome.results["exercises"]
        for entry in graded:
            if entry["id"] in outcome.stubs_hit and MISSING_NAME in entry["message"]:
                entry["message"] = f"not implemented yet: {outcome.stubs_hit[entry['id']]}"
    return {
        "submission": str(path),
        "lab": lab,
        "points": sum(entry["points"] for entry in graded),
        "max_points": sum(entry["max_points"] for entry in graded),
        "elapsed_s": round(elapsed, 1),
        "status": outcome.status,
        "message": outcome.message,
        "notes": outcome.notes,
        "exercises": graded,
    }


def _ungraded(lab: int | None, reason: str) -> list[dict[str, Any]]:
    """Zero points for every exercise of the lab, saying why it was not graded."""
    if lab is None:
        return []
    try:
        known = exercises(lab)
    except Exception:  # no checks, or they fail to import: the report already says why
        return []
    return [
        {
            "id": entry.id,
            "title": entry.title,
            "points": 0,
            "max_points": entry.points,
            "passed": False,
            "message": f"not graded: {reason}",
        }
        for entry in known
    ]


def _report_names(paths: list[Path]) -> list[str]:
    """Report file names: the submission's stem, prefixed by its folder when stems collide."""
    stems = [path.stem for path in paths]
    names = [f"{p.parent.name}-{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    return [name if names.count(name) == 1 else f"{name}-{i}" for i, name in enumerate(names)]


def _progress_line(report: dict[str, Any]) -> str:
    name = Path(report["submission"]).name
    score = f"{_number(report['points'])}/{_number(report['max_points'])}"
    line = f"{name:<32} {score:>9}  {report['elapsed_s']:6.1f} s  {report['status']}"
    return f"{line}: {report['message']}" if report["message"] else line


def _error_line(reply: dict[str, Any]) -> str:
    detail = str(reply.get("evalue", "")).strip().splitlines()
    return f"{reply.get('ename', 'Error')}: {detail[0]}" if detail else reply.get("ename", "Error")


def _cell_label(index: int, cell: nbformat.NotebookNode) -> str:
    """How a report names a cell: its number in the notebook and its first line of code."""
    first_line = next(line.strip() for line in cell.source.splitlines() if line.strip())
    return f"cell {index + 1} (`{first_line[:40]}`)"


def _is_hidden(path: Path) -> bool:
    """Whether a path lies in a hidden folder or is a hidden file (``.ipynb_checkpoints``)."""
    return any(part.startswith(".") for part in path.parts)


def _is_code(cell: nbformat.NotebookNode) -> bool:
    return cell.get("cell_type") == "code" and bool(str(cell.get("source", "")).strip())


def _number(value: float) -> str:
    return f"{value:g}"
