"""Helpers of the probes (kernel side): numbers out of student code, one tiny training run.

Nothing here knows an answer; the grader-side helpers are in ``course.grading.checks.tools``.
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


def call_twice(function: Callable, *args) -> tuple[np.ndarray, np.ndarray]:
    """Two calls of ``function(*args)`` as numpy arrays (to tell random from deterministic)."""
    name = getattr(function, "__name__", "the function")
    return to_numpy(function(*args), name), to_numpy(function(*args), name)
