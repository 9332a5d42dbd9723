"""The checks registry: exercise ids -> check functions, and how to run one on a namespace.

A check is a plain function of the student's namespace (a dict of their globals). It returns
nothing when the exercise is right and raises when it is not::

    from course.grading import CheckFailed, exercise

    @exercise("2.1", points=2, title="Sample z with the reparameterization trick")
    def check_sampler(ns):
        z = ns["sample_z"](mean, log_var)       # a missing name fails with a clear message
        if z.shape != mean.shape:
            raise CheckFailed(f"z should have shape {mean.shape}, not {z.shape}")

The checks of lab N live in the module ``<package>.labNN`` and are imported the first time an
exercise of lab N is needed. ``<package>`` is ``course.grading.checks`` unless the environment
variable ``COURSE_CHECKS_PACKAGE`` names another importable package (the tests use this for
their demo lab).
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from course.grading.limits import CHECK_TIMEOUT

DEFAULT_CHECKS_PACKAGE = "course.grading.checks"
_EXERCISE_ID = re.compile(r"^(?P<lab>\d+)(\.\w+)+$")
_LAB_IN_NAME = re.compile(r"(?<!\d)\d{2}(?!\d)")
_MAX_MESSAGE = 300
MISSING_NAME = "is not defined: did you delete or rename it?"


class CheckFailed(Exception):
    """Raised by a check when the student's answer is wrong; the message is the hint shown."""


class MissingName(CheckFailed):
    """Raised when a check asks for a name the student's namespace does not define."""


class CheckTimeout(BaseException):
    """Raised inside a check that ran past its time limit.

    A ``BaseException``, so that a student's ``except Exception`` cannot swallow it.
    """


@dataclass(frozen=True)
class Exercise:
    """A registered check: the exercise id, its points and title, and the check function."""

    id: str
    points: float
    title: str
    check: Callable[[Mapping[str, Any]], None]

    @property
    def lab(self) -> int:
        """The lab number, the part of the id before the first dot."""
        return lab_of(self.id)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one exercise's check."""

    id: str
    title: str
    points: float
    max_points: float
    passed: bool
    message: str

    def __str__(self) -> str:
        mark = "✔" if self.passed else "✘"
        score = f"{self.points:g}/{self.max_points:g}"
        return f"{mark} Exercise {self.id} ({score}): {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return asdict(self)

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: ``check()`` has already printed the result line."""


class StudentNamespace(dict):
    """The student's globals; looking up a name they do not define fails their exercise."""

    def __missing__(self, name: str) -> Any:
        raise MissingName(f"`{name}` {MISSING_NAME}")


_REGISTRY: dict[str, Exercise] = {}


def exercise(exercise_id: str, points: float = 1, title: str = "") -> Callable:
    """Register the decorated function as the check of exercise ``exercise_id``.

    Args:
        exercise_id: the exercise id, ``"<lab>.<number>"``, e.g. ``"2.1"``; it must match the
            ``### BEGIN SOLUTION 2.1`` marker in the solution notebook.
        points: points for passing the check (0 is allowed: a practice exercise).
        title: a short description; defaults to the first line of the function's docstring.
    """
    lab_of(exercise_id)
    if points < 0:
        raise ValueError(f"exercise {exercise_id}: points must be >= 0, got {points}")

    def register(check: Callable[[Mapping[str, Any]], None]) -> Callable:
        doc_title = (check.__doc__ or check.__name__).strip().splitlines()[0]
        entry = Exercise(id=exercise_id, points=points, title=title or doc_title, check=check)
        previous = _REGISTRY.get(exercise_id)
        if previous is not None and _qualified_name(previous.check) != _qualified_name(check):
            raise ValueError(
                f"exercise {exercise_id} is registered twice: by "
                f"{_qualified_name(previous.check)} and {_qualified_name(check)}; "
                "give one of them another id"
            )
        _REGISTRY[exercise_id] = entry
        return check

    return register


def lab_of(exercise_id: str) -> int:
    """The lab number of an exercise id: ``"2.1"`` -> 2."""
    match = _EXERCISE_ID.match(exercise_id)
    if not match:
        raise ValueError(f"{exercise_id!r} is not an exercise id; write it like '2.1'")
    return int(match["lab"])


def lab_from_name(name: str) -> int | None:
    """The lab number written as two digits in a file name, or None if there is not exactly one.

    ``02_vae_mnist.py`` -> 2, ``alice_02.ipynb`` -> 2, ``alice.ipynb`` -> None.
    """
    found = {int(digits) for digits in _LAB_IN_NAME.findall(os.path.basename(name))}
    return found.pop() if len(found) == 1 else None


def checks_module(lab: int) -> str:
    """The dotted name of the module holding lab ``lab``'s checks."""
    package = os.environ.get("COURSE_CHECKS_PACKAGE") or DEFAULT_CHECKS_PACKAGE
    return f"{package}.lab{lab:02d}"


def exercises(lab: int) -> list[Exercise]:
    """All exercises of lab ``lab`` in registration order, importing its checks module first."""
    module = checks_module(lab)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or not module.startswith(error.name):
            raise
        raise ValueError(f"there are no checks for lab {lab}: module {module} not found") from None
    return [entry for entry in _REGISTRY.values() if entry.lab == lab]


def get_exercise(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id``, importing its lab's checks if needed."""
    known = exercises(lab_of(exercise_id))
    for entry in known:
        if entry.id == exercise_id:
            return entry
    ids = ", ".join(entry.id for entry in known) or "none"
    raise ValueError(f"there is no exercise {exercise_id}; this lab has: {ids}")


def run_check(
    entry: Exercise, namespace: Mapping[str, Any], timeout: float | None = CHECK_TIMEOUT
) -> CheckResult:
    """Run one check on the student's namespace; never raises for anything the student did.

    Args:
        entry: the exercise to check.
        namespace: the student's globals.
        timeout: seconds before the check is stopped (None: no limit).
    """
    try:
        _call_with_time_limit(entry.check, StudentNamespace(namespace), timeout)
    except CheckTimeout:
        message = f"took longer than {timeout:g} s and was stopped (an infinite loop?)"
    except NotImplementedError as error:
        message = (
            f"not implemented yet: {_first_line(error) or f'Exercise {entry.id}: {entry.title}'}"
        )
    except AssertionError as error:
        message = _first_line(error) or "the answer is not right yet (the check gave no details)"
    except CheckFailed as error:
        message = _first_line(error)
    except Exception as error:  # any error in student code costs this exercise only
        detail = _first_line(error)
        message = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    else:
        return CheckResult(entry.id, entry.title, entry.points, entry.points, True, entry.title)
    return CheckResult(entry.id, entry.title, 0, entry.points, False, message)


def _call_with_time_limit(function: Callable, argument: Any, timeout: float | None) -> None:
    """Call ``function(argument)``, raising CheckTimeout inside it after ``timeout`` seconds.

    The limit uses SIGALRM, so it applies only in the main thread of a POSIX process (always
    the case inside a Jupyter kernel on Linux or macOS); elsewhere the check runs unlimited.
    """
    if timeout is None or not _can_use_alarm():
        function(argument)
        return

    def on_alarm(signum, frame):
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        function(argument)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, shortened for a one-line report."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _qualified_name(function: Callable) -> str:
    return f"{function.__module__}.{function.__qualname__}"
