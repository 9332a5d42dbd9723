"""Run one submission cell by cell in its kernel, judging each exercise as soon as it can.

The kernel is an untrusted function server. Right after the cell that needs it (the exercise's
``check("X")`` cell), the grader draws the exercise's inputs with a fresh seed and asks the
kernel to run the exercise's PROBE on them (``course.grading.probes.serve``), exchanging
``.npz`` files; the VERDICT then runs here, in the grader (``course.grading.verdicts``). A
verdict, once taken, is kept: a kernel that dies, hangs or exits later costs only the exercises
not graded yet. Exercises that failed are probed once more after the last cell, unless a later
probe has put a working answer to them into the kernel (``Exercise.stands_in_for``).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient.exceptions import DeadKernelError

from course.grading.limits import Limits
from course.grading.plan import Plan, cell_label, is_code, make_plan, without_checks
from course.grading.probes import save_arrays
from course.grading.registry import (
    CheckFailed,
    CheckResult,
    CheckTimeout,
    Exercise,
    failed,
    make_inputs,
    probe_name,
)
from course.grading.session import TIMEOUT_ERROR, Scratch, Session
from course.grading.settings import Settings
from course.grading.verdicts import judge, keep

_STUB_ERROR = re.compile(r"^Exercise (?P<id>[^\s:]+)(:|$)")


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
    stood_in: dict[str, str] = field(default_factory=dict)  # exercise id -> the probe's exercise
    untouched: bool = False  # every exercise's stub is still in the notebook

    def fail(self, status: str, message: str) -> None:
        if self.status == "ok":
            self.status, self.message = status, message


def run_submission(
    notebook: nbformat.NotebookNode,
    path: Path,
    entries: list[Exercise],
    limits: Limits,
    settings: Settings,
    outcome: Outcome | None = None,
) -> Outcome:
    """Run the student's cells in a sandboxed kernel, taking each verdict as soon as it can.

    The verdicts go into ``outcome`` as they are taken (a new one by default), so that a caller
    who catches an error of the grader itself still holds the verdicts taken before it.
    """
    outcome = Outcome() if outcome is None else outcome
    cells = [(index, cell) for index, cell in enumerate(notebook.cells) if is_code(cell)]
    if not cells:
        outcome.status = "not attempted"
        outcome.message = "the notebook has no code"
        return outcome
    plan = make_plan(notebook, entries)
    text = "\n".join(str(cell.get("source", "")) for cell in notebook.cells)
    outcome.untouched = bool(entries) and all(
        f'NotImplementedError("Exercise {entry.id}:' in text for entry in entries
    )
    deadline = time.monotonic() + limits.for_total()
    with Scratch(path, settings) as scratch:
        session = Session(notebook, scratch, settings)
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


def _run_cells(session, cells, plan: Plan, deadline, limits, outcome) -> bool:
    """Run the student's code cells, probing after each planned cell; False: kernel given up."""
    for index, cell in cells:
        label = cell_label(index, cell)
        ceiling = limits.for_cell(cell.source)
        hung = plan.graph.cell_reaches(index, set(outcome.hanging))
        if hung:
            ceiling = min(ceiling, limits.after_hang)
        run = _run_timed(session, without_checks(cell), label, ceiling, deadline, limits,
                         outcome, index)
        if run is None:
            return False
        reply, elapsed, limit = run
        if reply.get("ename") == TIMEOUT_ERROR:
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
    if reply.get("ename") == TIMEOUT_ERROR and limit < ceiling:
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
    session, entry: Exercise, deadline: float, limits: Limits, outcome: Outcome, plan: Plan
) -> bool:
    """Judge one exercise: inputs here, probe in the kernel, verdict here. False: kernel lost."""
    if entry.probe is None:
        no_probe = CheckFailed("cannot be graded outside the kernel: its check has no probe")
        keep(outcome, failed(entry, no_probe))
        return True
    if entry.id in outcome.stood_in:  # the kernel has held a working answer: judge no more
        later = outcome.stood_in[entry.id]
        if entry.id not in outcome.results:  # a verdict taken before stands, with its hint
            keep(outcome, failed(entry, CheckFailed(
                f"judged after exercise {later}, whose check gives the kernel a working "
                f"{entry.id}: keep exercise {entry.id} and its check cell before exercise "
                f"{later}")))
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
    for earlier in entry.stands_in_for:
        outcome.stood_in.setdefault(earlier, entry.id)
    try:
        run = _run_timed(session, nbformat.v4.new_code_cell(source), label, ceiling, deadline,
                         limits, outcome)
        if run is None:
            return False
        reply, elapsed, limit = run
        if reply.get("ename") == TIMEOUT_ERROR:
            outcome.timed_out.add(entry.id)
            for name in own:  # what the student defined for it hangs: later users get little time
                outcome.hanging.setdefault(name, entry.id)
            keep(outcome, failed(entry, CheckTimeout(), limit))
            return _stopped(session, label, limit, limits, outcome)
        if reply.get("status") == "error":
            message = f"the grader could not call your code: {_error_line(reply)}"
            result = CheckResult(entry.id, entry.title, 0, entry.points, False, message)
        else:
            result = judge(entry, inputs, outputs_path)
        outcome.probe_times[entry.id] = max(outcome.probe_times.get(entry.id, 0), elapsed)
        keep(outcome, result, outcome.stubs_hit.get(entry.id))
        return not _asked_to_exit(reply)
    finally:
        inputs_path.unlink(missing_ok=True)
        _unlink_quietly(outputs_path)


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


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
