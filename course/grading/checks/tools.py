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
    "bce_against_one",
    "bce_against_zero",
    "call_twice",
    "close",
    "compare",
    "expect_finite",
    "expect_keys",
    "expect_logs",
    "expect_loss_falls",
    "expect_shape",
    "fit_on_one_batch",
    "probability_bce",
    "scalar",
    "sigmoid",
    "softplus",
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


def gradient_step(loss_function, weights, learning_rate: float):
    """The reference of one plain SGD step: the loss at ``weights`` and the weights after it.

    ``loss_function(variables)`` computes the loss with TensorFlow from float64 variables of
    ``weights``; returns ``(loss, new_weights)`` as float64 numpy values.
    """
    import tensorflow as tf

    variables = [tf.Variable(np.asarray(weight, np.float64)) for weight in weights]
    with tf.GradientTape() as tape:
        loss = loss_function(variables)
    gradients = tape.gradient(loss, variables)
    return float(loss), [
        variable.numpy() - learning_rate * gradient.numpy()
        for variable, gradient in zip(variables, gradients)
    ]


NO_GRADIENTS = (
    "no gradient reached the weights: compute the loss inside the `with tf.GradientTape() "
    "as tape:` block, from the networks' outputs, and take the gradients of that loss"
)


def expect_training_step(
    outputs: Mapping[str, np.ndarray],
    before: Mapping[str, list[np.ndarray]],
    after: Mapping[str, list[np.ndarray]],
    loss_name: str = "the loss",
) -> None:
    """Fail, saying why, unless the weights after the probe's step equal the reference step.

    Args:
        outputs: the probe's outputs: ``no_gradients`` and ``<part>_<index>`` weights after
            its one SGD step (``course.grading.probes.tools.train_one_step``).
        before: each part's (``"encoder"``, ``"decoder"``) weights before the step.
        after: each part's weights after the reference step.
        loss_name: what the step should minimize, for the hints.
    """
    if int(outputs.get("no_gradients", 0)):
        raise CheckFailed(NO_GRADIENTS)
    student, moved = {}, {}
    for part, weights in before.items():
        keys = [f"{part}_{index}" for index in range(len(weights))]
        expect_keys(outputs, keys)
        student[part] = [np.asarray(outputs[key], np.float64) for key in keys]
        for new, old in zip(student[part], weights):
            expect_shape(new, old.shape, f"a weight of the {part}")
            expect_finite(new, f"the {part}'s weights after one step")
        moved[part] = any(not np.allclose(new, old, rtol=0, atol=1e-9)
                          for new, old in zip(student[part], weights))
    if not any(moved.values()):
        raise CheckFailed(
            "train_step never changed the weights: take the gradients of the loss with "
            "tape.gradient and apply them with self.optimizer.apply"
        )
    for part, part_moved in moved.items():
        if not part_moved:
            raise CheckFailed(
                f"the {part} is never trained, its weights stay the same: take the gradients "
                "with respect to all the model's weights (self.trainable_weights), encoder "
                "and decoder alike, and apply them to the same list"
            )
    step = np.concatenate([(new - old).ravel() for part in before
                           for new, old in zip(student[part], before[part])])
    reference = np.concatenate([(new - old).ravel() for part in before
                                for new, old in zip(after[part], before[part])])
    scale = np.linalg.norm(reference)
    if np.linalg.norm(step - reference) <= 2e-3 * scale + 1e-7:
        return
    if np.linalg.norm(step + reference) <= 2e-2 * scale:
        raise CheckFailed(
            f"the step went uphill: the weights moved against the gradient of {loss_name}; "
            "minimize the loss itself, not its negative"
        )
    ratio = float(step @ reference / scale**2)
    if np.linalg.norm(step - ratio * reference) <= 2e-2 * abs(ratio) * scale:
        raise CheckFailed(
            f"the step points the right way but is {ratio:.3g} times the gradient step of "
            f"{loss_name}: is the loss you differentiate scaled (summed or averaged over "
            "the wrong axis)?"
        )
    raise CheckFailed(
        f"the weights did not move along the gradient of {loss_name}: differentiate the "
        "loss you log, with respect to self.trainable_weights, and apply those gradients"
    )


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


def close(a, b, tolerance: float = 1e-3) -> bool:
    """Whether ``a`` and ``b`` agree to ``tolerance``, absolutely and relatively (arrays too)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tolerance + tolerance * np.abs(b)))


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
