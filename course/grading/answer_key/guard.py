"""Kernel side of the answer key: the check that a guarded or stubbed object runs at the top.

The copy of the package made for lab N (``course.grading.answer_key.copies``) starts each
listed object with ``refuse(...)``. A stub always raises :class:`AnswerUnavailable`; a guard
returns when its direct caller is one of the allowed package functions working on an instance
of a package class, and raises otherwise. Callers are compared by code object identity (a
cell cannot make one of the package's code objects) and ``self`` by class identity (a fake
``self`` or a student's subclass does not pass). Standard library only: this runs inside the
package while it is still being imported.
"""

from __future__ import annotations

import importlib
import inspect
import sys

_ALLOWED_CODE: dict[tuple[str, ...], frozenset] = {}


class AnswerUnavailable(NotImplementedError):
    """Raised by an object of ``course`` that answers an exercise of the lab being graded."""

    # TensorFlow's autograph re-raises errors of traced code as "in user code: ..." errors,
    # which would hide this message; it lets an error with this attribute through unchanged.
    ag_pass_through = True


def refuse(name: str, exercises: str, lab: int, callers: tuple[str, ...] = ()) -> None:
    """Raise AnswerUnavailable unless the caller of the object that called this is allowed.

    Args:
        name: the object, e.g. ``course.distribute.scale_loss``.
        exercises: the exercises it answers, e.g. ``"6.1"``.
        lab: the lab being graded.
        callers: ``"module:qualname"`` of the package functions that may call it.
    """
    if callers and _allowed(sys._getframe(2), callers):
        return
    raise AnswerUnavailable(
        f"{name} is not available while lab {lab} is graded (it answers exercise {exercises}): "
        "write it yourself"
    )


def _allowed(frame, callers: tuple[str, ...]) -> bool:
    if frame is None or frame.f_code not in _allowed_code(callers):
        return False
    instance = frame.f_locals.get("self")
    return instance is None or _is_package_class(type(instance))


def _allowed_code(callers: tuple[str, ...]) -> frozenset:
    if callers not in _ALLOWED_CODE:
        _ALLOWED_CODE[callers] = frozenset(_code(caller) for caller in callers)
    return _ALLOWED_CODE[callers]


def _code(target: str):
    """The code object of ``"module:qualname"`` (a function or a method)."""
    module_name, qualname = target.split(":")
    value = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = inspect.getattr_static(value, part)
    value = inspect.unwrap(getattr(value, "__func__", value))
    return value.__code__


def _is_package_class(cls: type) -> bool:
    """Whether ``cls`` is a class of ``course`` itself (not a subclass made elsewhere)."""
    module = sys.modules.get(getattr(cls, "__module__", "") or "")
    if module is None or not module.__name__.startswith("course."):
        return False
    value = module
    for part in cls.__qualname__.split("."):
        value = getattr(value, part, None)
    return value is cls
