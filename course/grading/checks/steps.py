"""The reference of one training step (grader side): a plain SGD step recomputed in float64.

A training-step exercise's probe runs the student's ``train_step`` once with plain SGD from
random weights (``course.grading.probes.tools.train_one_step``); the verdict recomputes that
step here with :func:`gradient_step` and compares with :func:`expect_training_step`, which names
what went wrong: no gradient, a part never trained, a step uphill or of the wrong size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from course.grading.checks.tools import expect_finite, expect_keys, expect_shape
from course.grading.registry import CheckFailed


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
