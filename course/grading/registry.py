"""The checks registry: exercise ids -> checks, and how to run one on a namespace.

A check has three parts, so that the grader can keep the verdict out of the student's process:

- ``inputs(rng)`` draws the inputs (a dict of numeric arrays) from a fresh random generator;
- ``probe(ns, inputs)`` calls the student's objects (``ns`` is their globals) on those inputs
  and returns plain numeric arrays; it lives in ``course.grading.probes.labNN`` and is the
  only part that runs in the student's kernel when a submission is graded;
- the verdict ``(inputs, outputs)`` compares the outputs with references computed from the
  inputs and raises ``CheckFailed(hint)`` when they are wrong::

    from course.grading import CheckFailed, exercise
    from course.grading.probes import lab02 as probes

    def sampler_inputs(rng):
        return {"z_mean": rng.normal(size=(1000, 3)), "z_log_var": rng.normal(size=(1000, 3))}

    @exercise("2.1", points=3, probe=probes.sample_z, inputs=sampler_inputs)
    def sample_z_verdict(inputs, outputs):
        ...  # raise CheckFailed("...") when outputs are not right for these inputs

In a notebook, ``check("2.1")`` runs the three parts in the kernel for instant feedback.

The checks of lab N live in the module ``<package>.labNN`` and are imported the first time an
exercise of lab N is needed. ``<package>`` is ``course.grading.checks`` unless the environment
variable ``COURSE_CHECKS_PACKAGE`` names another importable package (the tests use this for
their demo lab).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from course.grading.limits import CHECK_TIMEOUT

DEFAULT_CHECKS_PACKAGE = "course.grading.checks"
_EXERCISE_ID = re.compile(r"^(?P<lab>\d+)(\.\w+)+$")
_LAB_IN_NAME = re.compile(r"(?<!\d)\d{2}(?!\d)")
_MAX_MESSAGE = 300
MISSING_NAME = "is not defined: did you delete or rename it?"
# What a probe may return: at most this many arrays, each of at most this many elements.
MAX_OUTPUTS = 64
MAX_OUTPUT_SIZE = 10_000_000


class CheckFailed(Exception):
    """Raised by a check when the student's answer is wrong; the message is the hint shown."""


class MissingName(CheckFailed):
    """Raised when a check asks for a name the student's namespace does not define."""


class CheckTimeout(BaseException):
    """Raised inside a check that ran past its time limit.

    A ``BaseException``, so that a student's ``except Exception`` cannot swallow it.
    """


Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Exercise:
    """A registered check: the exercise id, its points and title, and its three parts.

    ``check`` is the verdict ``(inputs, outputs) -> None``; ``probe`` and ``inputs`` are
    described in this module's docstring. ``probe is None`` marks an old-style check, a single
    function of the student's namespace that runs wholly where it is called.
    """

    id: str
    points: float
    title: str
    check: Callable[..., None]
    probe: Callable[[Mapping[str, Any], Arrays], Mapping[str, Any]] | None = None
    inputs: Callable[[np.random.Generator], Mapping[str, Any]] | None = None
    stands_in_for: tuple[str, ...] = ()

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


def exercise(
    exercise_id: str,
    points: float = 1,
    title: str = "",
    probe: Callable | None = None,
    inputs: Callable | None = None,
    stands_in_for: tuple[str, ...] = (),
) -> Callable:
    """Register the decorated verdict as the check of exercise ``exercise_id``.

    Args:
        exercise_id: the exercise id, ``"<lab>.<number>"``, e.g. ``"2.1"``; it must match the
            ``### BEGIN SOLUTION 2.1`` marker in the solution notebook.
        points: points for passing the check (0 is allowed: a practice exercise).
        title: a short description; defaults to the first line of the function's docstring.
        probe: ``probe(ns, inputs) -> dict of arrays``, a module-level function of a
            ``course.grading.probes`` module (the kernel imports it by name).
        inputs: ``inputs(rng) -> dict of arrays``; without it the probe gets ``{}``.
        stands_in_for: the earlier exercises whose answer the probe puts into the kernel (a
            stand-in for the student's own, so that a mistake there costs nothing twice). Once
            the probe has run, the grader judges those exercises no more: a verdict taken
            before stands, and none taken yet is a fail that says why.
    """
    lab_of(exercise_id)
    if points < 0:
        raise ValueError(f"exercise {exercise_id}: points must be >= 0, got {points}")
    if probe is None and inputs is not None:
        raise ValueError(f"exercise {exercise_id}: inputs= needs a probe= to receive them")
    if probe is not None and "<locals>" in probe.__qualname__:
        raise ValueError(f"exercise {exercise_id}: the probe must be a module-level function")

    def register(check: Callable[..., None]) -> Callable:
        doc_title = (check.__doc__ or check.__name__).strip().splitlines()[0]
        entry = Exercise(
            id=exercise_id,
            points=points,
            title=title or doc_title,
            check=check,
            probe=probe,
            inputs=inputs,
            stands_in_for=tuple(stands_in_for),
        )
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
    entry: Exercise,
    namespace: Mapping[str, Any],
    timeout: float | None = CHECK_TIMEOUT,
    seed: int | None = None,
) -> CheckResult:
    """Run one check wholly in this process; never raises for anything the student did.

    Args:
        entry: the exercise to check.
        namespace: the student's globals.
        timeout: seconds before the probe (or an old-style check) is stopped (None: no limit).
        seed: the seed of the inputs' random generator (None: fresh entropy).
    """
    if entry.probe is None:
        try:
            _call_with_time_limit(entry.check, StudentNamespace(namespace), timeout)
        except BaseException as error:  # noqa: B036 - the student's errors, CheckTimeout too
            return failed(entry, error, timeout)
        return passed(entry)
    inputs = make_inputs(entry, seed)
    try:
        outputs = run_probe(entry.probe, namespace, inputs, timeout)
    except BaseException as error:  # noqa: B036
        return failed(entry, error, timeout)
    return judge(entry, inputs, outputs)


def make_inputs(entry: Exercise, seed: int | None = None) -> Arrays:
    """The inputs of ``entry``'s probe, drawn from a generator seeded with ``seed``."""
    if entry.inputs is None:
        return {}
    return as_arrays(entry.inputs(np.random.default_rng(seed)), "the inputs")


def run_probe(
    probe: Callable, namespace: Mapping[str, Any], inputs: Arrays, timeout: float | None = None
) -> Arrays:
    """Call ``probe`` on the student's namespace and return its outputs as numeric arrays.

    Raises whatever the student's code raised, ``CheckTimeout`` past ``timeout``, and
    ``CheckFailed`` when the outputs are not a dict of numeric arrays.
    """
    box: list[Any] = []
    _call_with_time_limit(
        lambda ns: box.append(probe(ns, dict(inputs))), StudentNamespace(namespace), timeout
    )
    return as_arrays(box[0], "the probe's outputs")


def judge(entry: Exercise, inputs: Arrays, outputs: Arrays) -> CheckResult:
    """The verdict on a probe's outputs: full points when ``entry.check`` accepts them, else 0.

    Runs in the grader's process; the outputs came from the student's kernel and are trusted
    for nothing but being numeric arrays.
    """
    try:
        entry.check(dict(inputs), as_arrays(outputs, "the probe's outputs"))
    except (CheckFailed, AssertionError) as error:  # a verdict's assert gives its message too
        return failed(entry, error)
    except Exception as error:  # outputs a verdict did not expect: a failure, not a crash
        return failed(entry, CheckFailed(f"the outputs could not be checked ({error})"))
    return passed(entry)


def passed(entry: Exercise) -> CheckResult:
    """The result of a passed check: exactly the exercise's points."""
    return CheckResult(entry.id, entry.title, entry.points, entry.points, True, entry.title)


def failed(entry: Exercise, error: BaseException, timeout: float | None = None) -> CheckResult:
    """The result of a failed check (0 points), with a one-line hint made from ``error``."""
    return CheckResult(entry.id, entry.title, 0, entry.points, False, hint(entry, error, timeout))


def hint(entry: Exercise, error: BaseException, timeout: float | None = None) -> str:
    """The one-line message shown for a check that raised ``error``."""
    if isinstance(error, CheckTimeout):
        limit = f"{timeout:g} s" if timeout is not None else "its time limit"
        return f"took longer than {limit} and was stopped (an infinite loop?)"
    if isinstance(error, NotImplementedError):
        return f"not implemented yet: {_first_line(error) or f'Exercise {entry.id}: {entry.title}'}"
    if isinstance(error, AssertionError):
        return _first_line(error) or "the answer is not right yet (the check gave no details)"
    if isinstance(error, CheckFailed):
        return _first_line(error)
    if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit in student code
        return f"stopped by {type(error).__name__}"
    detail = _first_line(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def as_arrays(values: Any, what: str) -> Arrays:
    """``values`` as a dict of numeric numpy arrays, or CheckFailed saying what is wrong.

    Tensors are converted; bool, integer, float and short string arrays are accepted (strings
    carry error records between kernel and grader); objects, pickles and huge arrays are not.
    """
    if not isinstance(values, Mapping):
        raise CheckFailed(f"{what} are a {type(values).__name__}, not a dict of arrays")
    if len(values) > MAX_OUTPUTS:
        raise CheckFailed(f"{what} hold {len(values)} arrays; at most {MAX_OUTPUTS} are allowed")
    arrays = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise CheckFailed(f"{what} have a key {key!r} that is not a string")
        arrays[key] = _as_array(value, f"{what}[{key!r}]")
    return arrays


def _as_array(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, (np.ndarray, np.generic, int, float, bool, str)):
        import keras

        try:
            value = keras.ops.convert_to_numpy(value)
        except Exception:
            raise CheckFailed(f"{what} is a {type(value).__name__}, not an array") from None
    array = np.asarray(value)
    if array.dtype.kind not in "biufU":
        raise CheckFailed(f"{what} has dtype {array.dtype}, not a number")
    if array.size > MAX_OUTPUT_SIZE:
        raise CheckFailed(f"{what} has {array.size} elements; at most {MAX_OUTPUT_SIZE}")
    return array


def probe_name(probe: Callable) -> tuple[str, str]:
    """The (module, function) names by which a kernel imports ``probe``."""
    module = inspect.getmodule(probe)
    return (module.__name__ if module else probe.__module__), probe.__qualname__


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
