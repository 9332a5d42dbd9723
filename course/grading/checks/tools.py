"""Helpers of the verdicts (grader side): expectations on the arrays a probe returned.

Not a lab: ``labNN`` modules import these; nothing here registers an exercise. The kernel-side
helpers (``to_numpy``, ``fit_on_one_batch``, ...) are in ``course.grading.probes.tools`` and
are re-exported here for the checks not yet split into probe and verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from course.grading.probes.tools import TrainingRun, call_twice, fit_on_one_batch, to_numpy
from course.grading.registry import CheckFailed

__all__ = [
    "TrainingRun",
    "call_twice",
    "expect_finite",
    "expect_keys",
    "expect_logs",
    "expect_loss_falls",
    "expect_shape",
    "fit_on_one_batch",
    "to_numpy",
]


def expect_keys(outputs: Mapping[str, np.ndarray], keys: Iterable[str]) -> None:
    """Fail unless the probe's outputs hold every one of ``keys`` (they are not trusted)."""
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise CheckFailed(f"the probe's outputs lack {', '.join(missing)}: was the probe changed?")


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


def expect_logs(run: TrainingRun, keys: list[str]) -> None:
    """Fail unless the train_step returned finite values for every key in ``keys``."""
    for key in keys:
        if key not in run.logs:
            raise CheckFailed(
                f"train_step did not return {key!r} (it returned {sorted(run.logs)}): return "
                "{metric.name: metric.result() for metric in self.metrics}"
            )
        if not np.all(np.isfinite(run.logs[key])):
            raise CheckFailed(f"the {key} became NaN or infinite during training")


def expect_loss_falls(run: TrainingRun, key: str = "loss", factor: float = 0.9) -> None:
    """Fail, saying why, unless the logged ``key`` falls below ``factor`` times its first value."""
    if not run.weights_changed:
        raise CheckFailed(
            "train_step never changed the weights: compute the gradients with "
            "tape.gradient(loss, self.trainable_weights) and apply them with "
            "self.optimizer.apply(gradients, self.trainable_weights)"
        )
    values = run.logs[key]
    first, last = values[0], min(values[-3:])
    if last > first:
        raise CheckFailed(
            f"the {key} went up during training ({first:.3g} -> {last:.3g}): minimize the loss "
            "itself (not its negative) and apply the gradients of that loss"
        )
    if last > factor * first:
        raise CheckFailed(
            f"the {key} hardly fell on a tiny batch ({first:.3g} -> {last:.3g}): are the "
            "gradients taken of the loss you return, inside the GradientTape?"
        )
