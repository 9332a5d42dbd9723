"""Helpers of the probes (kernel side): numbers out of student code, one training step.

Nothing here knows an answer; the grader-side helpers are in ``course.grading.checks.tools``.
"""

from __future__ import annotations

from collections.abc import Callable

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


def weight_shapes(weights) -> np.ndarray:
    """The shapes of a model's weights as rows of an int array, padded with -1 to 4 dims."""
    rows = [list(np.shape(weight))[:4] for weight in weights]
    return np.array([row + [-1] * (4 - len(row)) for row in rows], dtype=np.int64).reshape(-1, 4)


def dense_network(inputs, prefix: str, activations: list[str | None]):
    """A chain of Dense layers with the weights ``inputs[f"{prefix}_{i}"]`` (kernel, bias, ...).

    The grader draws the weights; the input width is the first kernel's number of rows.
    """
    import keras

    weights = [inputs[f"{prefix}_{index}"] for index in range(2 * len(activations))]
    values = keras.Input((weights[0].shape[0],))
    outputs = values
    for kernel, activation in zip(weights[::2], activations):
        outputs = keras.layers.Dense(kernel.shape[1], activation=activation)(outputs)
    network = keras.Model(values, outputs, name=prefix)
    network.set_weights(weights)
    return network


def train_one_step(model, data, learning_rate: float, parts: dict) -> dict:
    """One step of ``model.fit`` on ``data`` as one batch with plain SGD (traced, as in a lab).

    Returns the logged values (``log_<name>``; computed before the update), the weights of each
    sub-model in ``parts`` after the step (``<part>_<index>``), and ``no_gradients`` = 1 when
    Keras found no gradient for any weight (the other values are then absent).
    """
    import keras

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), jit_compile=False)
    try:
        history = model.fit(data, epochs=1, batch_size=len(data), shuffle=False, verbose=0)
    except ValueError as error:
        if "No gradients provided" not in str(error):
            raise
        return {"no_gradients": 1}
    outputs = {"no_gradients": 0}
    for key, values in history.history.items():
        if key.isidentifier():
            outputs[f"log_{key}"] = np.float64(values[-1])
    for name, part in parts.items():
        for index, weight in enumerate(part.get_weights()):
            outputs[f"{name}_{index}"] = weight
    return outputs


def value_and_gradients(function: Callable, arrays, what: str) -> dict:
    """``function(*arrays)`` on float32 tensors, and its gradient with respect to each array.

    Returns ``value`` and ``gradient_<i>`` arrays; ``no_gradient`` = 1 when no gradient reaches
    the arrays (the function left TensorFlow, e.g. through numpy), and the gradients are absent.
    """
    import tensorflow as tf

    tensors = [tf.constant(np.asarray(array, np.float32)) for array in arrays]
    with tf.GradientTape() as tape:
        for tensor in tensors:
            tape.watch(tensor)
        value = function(*tensors)
    outputs = {"value": to_numpy(value, what)}
    try:
        gradients = tape.gradient(value, tensors)
    except (TypeError, ValueError, AttributeError):  # not a tensor the tape can differentiate
        gradients = [None]
    outputs["no_gradient"] = int(any(gradient is None for gradient in gradients))
    if not outputs["no_gradient"]:
        for index, gradient in enumerate(gradients):
            outputs[f"gradient_{index}"] = np.asarray(gradient, np.float64)
    return outputs
