"""Helpers of the verdicts (grader side): expectations on the arrays a probe returned.

Not a lab: ``labNN`` modules import these; nothing here registers an exercise. The reference of
a training step is in ``course.grading.checks.steps``; the kernel-side helpers (``to_numpy``,
``train_one_step``, ...) are in ``course.grading.probes.tools``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from course.grading.registry import CheckFailed


def expect_keys(outputs: Mapping[str, np.ndarray], keys: Iterable[str]) -> None:
    """Fail unless the probe's outputs hold every one of ``keys`` (they are not trusted)."""
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise CheckFailed(f"the probe's outputs lack {', '.join(missing)}: was the probe changed?")


def expect_flags(outputs: Mapping[str, np.ndarray], flags: Iterable[tuple[str, bool, str]]) -> None:
    """Fail with the hint of the first of the probe's yes/no ``flags`` that is not as expected.

    A flag is what the kernel says about itself, so it may only FAIL an exercise (and name the
    mistake); it never passes one. A verdict that calls this passes only on numbers it
    recomputes from its own inputs (4.4: the weights after both players' steps), so a forged
    flag gains nothing.

    Args:
        outputs: the probe's outputs, holding 0 or 1 under each flag's key.
        flags: ``(key, expected, hint)`` triples, in the order their hints should be given.
    """
    for key, expected, hint in flags:
        if bool(int(outputs[key])) != expected:
            raise CheckFailed(hint)


def expect_shape(array: np.ndarray, shape: tuple[int, ...], what: str, hint: str = "") -> None:
    """Fail unless ``array`` has ``shape``, with an optional hint on how to fix it."""
    if tuple(array.shape) != tuple(shape):
        message = f"{what} has shape {tuple(array.shape)}; expected {tuple(shape)}"
        raise CheckFailed(f"{message}: {hint}" if hint else message)


def expect_finite(array: np.ndarray, what: str, hint: str = "") -> None:
    """Fail if ``array`` holds NaN or infinite values."""
    if not np.all(np.isfinite(array)):
        message = f"{what} contains NaN or infinite values"
        raise CheckFailed(f"{message}: {hint}" if hint else message)


# --- Scalars and binary cross-entropies (labs 4 and 5) ----------------------------------------


def scalar(value, what: str) -> float:
    """A student's loss as a float, failing when it is not a single finite number."""
    array = np.asarray(value, dtype="float64")
    if array.size != 1:
        raise CheckFailed(
            f"{what} should return one number, got an array of shape {array.shape}: average "
            "the per-example losses with ops.mean"
        )
    number = float(array.reshape(()))
    if not np.isfinite(number):
        raise CheckFailed(f"{what} returned {number}; it should be a finite number")
    return number


def close(a, b, rtol: float = 1e-3, atol: float = 1e-3) -> bool:
    """Whether arrays ``a`` and ``b`` have the same shape and agree to ``rtol`` and ``atol``.

    The defaults suit a float32 loss against its float64 formula; a lab whose answers are
    arrays computed the same way in float32 asks for ``rtol=1e-4, atol=1e-4``.
    """
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def compare(got: float, expected: float, mistakes: list[tuple[float, str]], where: str) -> None:
    """Pass when ``got`` matches ``expected``; otherwise name the first mistake it matches."""
    if close(got, expected):
        return
    for value, message in mistakes:
        if close(got, value):
            raise CheckFailed(message)
    raise CheckFailed(f"{where}: expected {expected:.4f}, got {got:.4f}")


def softplus(x):
    """log(1 + exp(x)): the BCE of logit -x against label 1, and of logit x against label 0."""
    return np.logaddexp(0.0, np.asarray(x, dtype="float64"))


def bce_against_one(logits) -> float:
    """Mean BCE of ``logits`` against the label 1 ("real")."""
    return float(softplus(-np.asarray(logits, dtype="float64")).mean())


def bce_against_zero(logits) -> float:
    """Mean BCE of ``logits`` against the label 0 ("fake")."""
    return float(softplus(logits).mean())


def probability_bce(labels, values) -> float:
    """The mean BCE a student gets by treating logits as probabilities.

    Keras clips them to [1e-7, 1 - 1e-7] in float32, where 1 - 1e-7 rounds to 1 - 1.19e-7.
    """
    epsilon = np.float32(1e-7)
    values = np.clip(np.asarray(values, np.float32), epsilon, np.float32(1) - epsilon)
    complement = (np.float32(1) - values).astype("float64")
    values = values.astype("float64")
    return float(-(labels * np.log(values) + (1 - labels) * np.log(complement)).mean())


def sigmoid(x):
    """The logistic function, 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype="float64")))
