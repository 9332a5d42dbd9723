"""Grading in worker processes, and stopping a grading run in order.

``grade_in_workers`` grades submissions in a pool of spawned processes. A worker that dies (the
kernel's memory counted against it, a signal, a crash) breaks the pool: the pool is replaced,
the submissions it had not finished are graded again, and those that were being graded when it
broke are graded alone from then on, so that the next death is attributed exactly. A
submission whose worker dies twice gets an error report; no other submission loses anything.

``stop_signals_interrupt`` makes SIGTERM (``timeout``, batch schedulers) and SIGHUP (a closed
terminal) stop the grader the way SIGINT does: as a ``KeyboardInterrupt``, whose unwinding
shuts every kernel down and removes every scratch folder (``course.grading.session``). Workers
do the same on their own signal; on a stop, the main process also stops its workers and waits
for them to clean up before it leaves.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import shutil
import signal
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEATHS_ALLOWED = 1  # a submission whose worker dies a second time gets an error report
STOP_PATIENCE = 30.0  # seconds the workers get to clean up after a stop, then SIGKILL
DIED_TWICE = (
    "grading failed: the grading process died twice while grading this submission (killed "
    "for memory, or by a signal); the other submissions were graded"
)


@contextlib.contextmanager
def stop_signals_interrupt():
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt`` like SIGINT while the block runs; a second
    stop signal is ignored while the first one's cleanup runs (SIGKILL still ends everything).

    A signal set to be ignored (``nohup``) stays ignored; outside the main thread nothing
    changes (Python runs signal handlers there only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    stopping: list[int] = []

    def interrupt(number, frame):
        if stopping:
            return
        stopping.append(number)
        raise KeyboardInterrupt(f"stopped by {signal.Signals(number).name}")

    for number, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def grade_in_workers(
    tasks: list[tuple],
    jobs: int,
    settings,
    finish: Callable[[int, dict[str, Any]], None],
    error_report: Callable[[int, str], dict[str, Any]],
) -> None:
    """Grade ``tasks`` (``(path, lab, limits)``) in ``jobs`` worker processes, calling
    ``finish(index, report)`` as each ends; ``error_report(index, message)`` is the report of a
    submission that cannot be graded (its worker died twice)."""
    context = multiprocessing.get_context("spawn")
    pending = set(range(len(tasks)))
    deaths: Counter[int] = Counter()  # pools that broke while it was being graded
    waited: Counter[int] = Counter()  # pools that broke while it waited
    alone: set[int] = set()  # graded one at a time: its worker's death is its own
    # Unsandboxed kernels leave no lease to reap: a dead worker's scratch folders are in here.
    scratch = None if settings.sandbox else tempfile.mkdtemp(prefix="course-grade-run-")
    try:
        while pending:
            together = sorted(pending - alone)
            batch = together or [min(pending)]
            done, started, broken = _run_pool(context, min(jobs, len(batch)), batch, tasks,
                                              settings, finish, scratch)
            pending -= done
            if not broken:
                continue
            suspects = (started & pending) or (set(batch) & pending)
            for index in sorted(set(batch) & pending - suspects):
                waited[index] += 1
                if waited[index] > DEATHS_ALLOWED:  # a start its worker never announced
                    alone.add(index)
            for index in sorted(suspects):
                deaths[index] += 1
                alone.add(index)
                if deaths[index] > DEATHS_ALLOWED:
                    finish(index, error_report(index, DIED_TWICE))
                    pending.discard(index)
            if settings.sandbox:  # a dead worker's kernel, cgroup and scratch folder
                from course.grading.session import reap_stale

                reap_stale()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_pool(context, width: int, batch: list[int], tasks, settings, finish, scratch):
    """Grade ``batch`` in one pool of ``width`` workers (their scratch folders in ``scratch``,
    when given). Returns the indices finished, those a worker started, and whether the pool
    broke."""
    slots, started = context.Queue(), context.Queue()
    for slot in range(width):
        slots.put(slot)
    done: set[int] = set()
    broken = False
    pool = ProcessPoolExecutor(
        width, mp_context=context, initializer=_start_worker,
        initargs=(slots, started, scratch),
    )
    try:
        futures = {
            pool.submit(grade_in_worker, index, *tasks[index], settings): index
            for index in batch
        }
        for future in as_completed(futures):
            try:
                report = future.result()
            except BrokenProcessPool:
                broken = True
                continue
            finish(futures[future], report)
            done.add(futures[future])
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    return done, _drain(started), broken


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's workers after a stop or an error: each gets SIGTERM (it unwinds, shutting
    its kernel down and removing its scratch folder), then SIGKILL after STOP_PATIENCE."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(STOP_PATIENCE)
            if process.is_alive():
                process.kill()


def _drain(started) -> set[int]:
    indices = set()
    with contextlib.suppress(queue.Empty, OSError, ValueError):
        while True:
            indices.add(started.get(timeout=0.1))
    return indices


# --- in the worker process ---------------------------------------------------------------

_WORKER: dict[str, Any] = {"slot": 0, "started": None, "grading": False, "stopping": False}


def _start_worker(slots, started, scratch: str | None) -> None:
    """A worker's start: its sandbox slot, where its scratch folders go, and stop signals that
    unwind a grading in progress (cleaning up its kernel and scratch folder) or end an idle
    worker at once."""
    _WORKER.update(slot=slots.get(), started=started)
    if scratch is not None:
        tempfile.tempdir = scratch
    for number in STOP_SIGNALS:
        signal.signal(number, _stop_worker)


def _stop_worker(number, frame) -> None:
    if _WORKER["stopping"]:
        return
    _WORKER["stopping"] = True
    if _WORKER["grading"]:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(number).name}")
    os._exit(128 + number)


def grade_in_worker(index: int, path, lab, limits, settings) -> dict[str, Any]:
    """Grade one submission in a worker (its sandbox slot from ``_start_worker``)."""
    from course.grading.runner import grade_submission

    _WORKER["started"].put(index)
    _WORKER["grading"] = True
    try:
        return grade_submission(path, lab, limits, replace(settings, slot=_WORKER["slot"]))
    except KeyboardInterrupt:  # stopped: the kernel and scratch are gone; leave at once
        os._exit(128 + signal.SIGTERM)
    finally:
        _WORKER["grading"] = False
