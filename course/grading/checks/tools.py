"""Helpers shared by the lab checks: numbers out of student code, tiny training runs.

Not a lab: ``labNN`` modules import these; nothing here registers an exercise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from course.grading.registry import CheckFailed


def to_numpy(value, what: str) -> np.ndarray:
    """A student's tensor or array as a float64 numpy array, or a CheckFailed saying what it is."""
    import keras

    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget the `return`?")
    try:
        return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CheckFailed(
            f"{what} returned {type(value).__name__}, not a tensor: {error}"
        ) from None


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


@dataclass
class TrainingRun:
    """What a few epochs of ``fit`` on one batch did: the logged values and the weight change."""

    logs: dict[str, list[float]]
    weights_before: list[np.ndarray]
    weights_after: list[np.ndarray]

    @property
    def weights_changed(self) -> bool:
        return any(
            not np.array_equal(before, after)
            for before, after in zip(self.weights_before, self.weights_after)
        )

    def changed(self, indices: list[int]) -> bool:
        """Whether any of the weights at ``indices`` changed."""
        return any(
            not np.array_equal(self.weights_before[i], self.weights_after[i]) for i in indices
        )


def fit_on_one_batch(model, data, epochs: int, optimizer=None) -> TrainingRun:
    """Compile ``model`` (no XLA, so tracing is quick) and fit it on ``data`` as one batch.

    Each epoch is then one call of the student's ``train_step``, and the History holds the
    values it returned step by step.
    """
    import keras

    optimizer = optimizer or keras.optimizers.Adam(learning_rate=0.01)
    model.compile(optimizer=optimizer, jit_compile=False)
    before = [np.array(weight) for weight in model.get_weights()]
    try:
        history = model.fit(data, epochs=epochs, batch_size=len(data), shuffle=False, verbose=0)
    except ValueError as error:
        if "No gradients provided" not in str(error):
            raise
        raise CheckFailed(
            "no gradient reached the weights: compute the loss inside the "
            "`with tf.GradientTape() as tape:` block, then call tape.gradient(loss, "
            "self.trainable_weights)"
        ) from None
    after = [np.array(weight) for weight in model.get_weights()]
    return TrainingRun(history.history, before, after)


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


def call_twice(function: Callable, *args) -> tuple[np.ndarray, np.ndarray]:
    """Two calls of ``function(*args)`` as numpy arrays (to tell random from deterministic)."""
    name = getattr(function, "__name__", "the function")
    return to_numpy(function(*args), name), to_numpy(function(*args), name)
