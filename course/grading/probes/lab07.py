"""Probes of lab 7 (the Deep Generative Decoder): run the student's code on the grader's inputs.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab07``.
The probes of 7.3 and 7.4 build the student's ``LabDGD`` with Keras' own ``Embedding`` as the
representation table and the grader's mixture density (its source comes with their inputs), so
that a mistake in 7.1 or 7.2 does not cost 7.3 or 7.4 again.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.grading.probes.tools import dense_network, to_numpy
from course.grading.registry import CheckFailed


def representations(ns, inputs):
    """The student's table: its trainable weights, and a lookup of the grader's cells."""
    import tensorflow as tf

    n_cells, latent_dim = (int(value) for value in inputs["size"])
    layer = ns["Representations"](n_cells, latent_dim)
    table = getattr(layer, "table", None)
    if table is None:
        raise CheckFailed("the layer has no attribute `table`: store the weight as self.table")
    outputs = {"initial": to_numpy(table, "the table"),
               "trainable": np.array([tuple(w.shape) for w in layer.trainable_weights]
                                     ).reshape(-1, len(table.shape))}
    if tuple(table.shape) == (n_cells, latent_dim) and hasattr(table, "assign"):
        table.assign(inputs["table"])
        with tf.GradientTape() as tape:
            rows = layer(tf.constant(inputs["indices"]))
            value = tf.reduce_sum(rows * inputs["weights"])
        gradient = tape.gradient(value, table)
        outputs["rows"] = to_numpy(rows, "the layer")
        outputs["gradient"] = np.zeros(0) if gradient is None else np.asarray(
            tf.convert_to_tensor(gradient), np.float64)
    return outputs


def gmm_log_density(ns, inputs):
    """The student's mixture log-density of random points (some far from every component),
    traced as ``fit`` traces the prior: a graph function of Keras variables."""
    import keras
    import tensorflow as tf

    z = tf.constant(inputs["z"])
    parameters = [keras.Variable(inputs[key]) for key in
                  ("means", "log_variances", "weight_logits")]
    function = tf.function(lambda: ns["gmm_log_density"](z, *parameters))
    try:
        values = function()
    except NotImplementedError as error:
        if "eager execution" not in str(error):
            raise
        raise CheckFailed("a numpy value meets a Keras variable inside the graph that fit "
                          "traces: write constants as Python floats, e.g. "
                          "math.log(2 * math.pi)") from None
    return {"values": to_numpy(values, "gmm_log_density")}


class _Table:
    """Builds Keras' Embedding as the representation table (``.table`` is its weight)."""

    def __new__(cls, n_cells, latent_dim, **kwargs):
        import keras

        layer = keras.layers.Embedding(n_cells, latent_dim, **kwargs)
        layer.build()
        layer.table = layer.embeddings
        return layer


@contextlib.contextmanager
def _toolkit_pieces(ns, inputs):
    """While the model is built and used: Keras' Embedding as the table and the grader's
    mixture density in the notebook's globals (restored afterwards)."""
    namespace = getattr(ns["LabDGD"].__init__, "__globals__", None)
    if namespace is None:
        raise CheckFailed("LabDGD must be the class defined in the notebook")
    density: dict = {}
    exec(compile(str(inputs["density_source"]), "<grader>", "exec"), density)  # noqa: S102
    values = {"Representations": _Table, "gmm_log_density": density["mixture_log_density"]}
    missing = object()
    previous = {name: namespace.get(name, missing) for name in values}
    namespace.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def lab_dgd(ns, inputs):
    """The student's LabDGD with the grader's weights (decoder, table, mixture, dispersion);
    call it inside ``_toolkit_pieces``."""
    decoder = dense_network(inputs, "decoder", ["relu", "softmax"])
    model = ns["LabDGD"](decoder, n_cells=len(inputs["table"]),
                         n_components=len(inputs["weight_logits"]))
    model.representations.table.assign(inputs["table"])
    for name in ("means", "log_variances", "weight_logits", "log_theta"):
        getattr(model, name).assign(inputs[name])
    return model, decoder


def _state(model, decoder) -> dict:
    outputs = {"table": to_numpy(model.representations.table, "the table")}
    for name in ("means", "log_variances", "weight_logits", "log_theta"):
        outputs[name] = to_numpy(getattr(model, name), name)
    for index, weight in enumerate(decoder.get_weights()):
        outputs[f"decoder_{index}"] = weight
    return outputs


def map_train_step(ns, inputs):
    """One step of the student's train_step: SGD for the network, SGD for the table."""
    with _toolkit_pieces(ns, inputs):
        return _one_step(ns, inputs)


def _one_step(ns, inputs) -> dict:
    import keras
    import tensorflow as tf

    model, decoder = lab_dgd(ns, inputs)
    model.compile(optimizer=keras.optimizers.SGD(float(inputs["learning_rate"])),
                  representation_optimizer=keras.optimizers.SGD(
                      float(inputs["representation_learning_rate"])),
                  jit_compile=False)
    batch = tf.data.Dataset.from_tensors((inputs["counts"], inputs["indices"]))
    try:
        history = model.fit(batch, epochs=1, verbose=0)
    except ValueError as error:
        if "Unknown variable" in str(error):
            raise CheckFailed("an optimizer was given variables it does not manage: "
                              "self.optimizer for self.network_weights, "
                              "self.representation_optimizer for the table") from None
        if "No gradients provided" not in str(error):
            raise
        raise CheckFailed("no gradient reached the weights: compute the loss inside the "
                          "GradientTape and differentiate it") from None
    logs = {f"log_{key}": np.float64(values[-1]) for key, values in history.history.items()
            if key.isidentifier()}
    return _state(model, decoder) | logs


def infer_representations(ns, inputs):
    """The student's inference for new cells with a grader-built model; the model afterwards."""
    with _toolkit_pieces(ns, inputs):
        model, decoder = lab_dgd(ns, inputs)
        z = ns["infer_representations"](model, inputs["counts"], inputs["initial_z"].copy(),
                                        int(inputs["steps"]), float(inputs["learning_rate"]))
    return {"z": to_numpy(z, "infer_representations")} | _state(model, decoder)
