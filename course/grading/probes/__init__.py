"""Probes: the part of each check that runs in the student's kernel.

``course.grading.probes.labNN`` holds one function per exercise, ``probe(ns, inputs)``, that
calls the student's objects (``ns`` is their globals) on the inputs the grader drew and returns
plain numeric arrays. Probes hold no reference answers: the verdicts that judge their outputs
live in ``course.grading.checks`` and run in the grader's process.

While grading, the grader asks the kernel to run one probe with ``serve``, exchanging ``.npz``
files; nothing else the kernel writes or prints is read.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from course.grading.registry import (
    Arrays,
    CheckFailed,
    CheckResult,
    CheckTimeout,
    Exercise,
    as_arrays,
    failed,
    judge,
)

ERROR_TYPE = "__error_type__"
ERROR_MESSAGE = "__error_message__"
_MAX_ERROR_MESSAGE = 2000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,60}$")


def serve(
    module: str,
    function: str,
    inputs_path: str,
    outputs_path: str,
    namespace: Mapping[str, Any] | None = None,
) -> None:
    """Run probe ``module.function`` on the inputs in ``inputs_path``; write ``outputs_path``.

    Called by the grader inside the student's kernel. The outputs (or, when the student's code
    raised, the error's type and message) are written as ``.npz``, atomically.
    """
    from course.grading.registry import run_probe

    namespace = inspect.currentframe().f_back.f_globals if namespace is None else namespace
    with np.load(inputs_path, allow_pickle=False) as stored:
        inputs = {key: stored[key] for key in stored.files}
    try:
        probe = getattr(importlib.import_module(module), function)
        outputs = run_probe(probe, namespace, inputs)
    except BaseException as error:  # noqa: B036 - every student error is reported, not raised
        outputs = {
            ERROR_TYPE: np.array(type(error).__name__),
            ERROR_MESSAGE: np.array(str(error)[:_MAX_ERROR_MESSAGE]),
        }
    save_arrays(outputs, outputs_path)


def save_arrays(arrays: Arrays, path: str | Path) -> None:
    """Write ``arrays`` to ``path`` as ``.npz`` via a temporary file and a rename."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        np.savez(file, **arrays)
    os.replace(temporary, path)


def load_arrays(path: str | Path) -> Arrays:
    """Read a ``.npz`` written by ``save_arrays``, refusing pickled objects and non-numbers."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError) as error:
        raise CheckFailed(f"the probe's outputs could not be read ({error})") from None
    return as_arrays(arrays, "the probe's outputs")


def verdict_from_outputs(entry: Exercise, inputs: Arrays, outputs: Arrays) -> CheckResult:
    """The grader's result for ``entry`` from a probe's outputs (or its error record)."""
    if ERROR_TYPE in outputs:
        return failed(entry, _error_from_record(outputs))
    return judge(entry, inputs, outputs)


def _error_from_record(outputs: Arrays) -> BaseException:
    """An exception like the one the probe reported: same type name, same message."""
    name = str(outputs[ERROR_TYPE])
    message = str(outputs.get(ERROR_MESSAGE, ""))
    known = {
        "NotImplementedError": NotImplementedError,
        "AssertionError": AssertionError,
        "CheckTimeout": CheckTimeout,
    }
    if name in known:
        return known[name](message)
    if name in ("CheckFailed", "MissingName"):
        return CheckFailed(message)
    if name in ("KeyboardInterrupt", "SystemExit"):
        return type(name, (BaseException,), {})(message)
    return type(name if _IDENTIFIER.match(name) else "Error", (Exception,), {})(message)
