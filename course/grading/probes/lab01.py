"""Probes of lab 1 (Keras basics): call the student's functions on the grader's inputs.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab01``.
"""

from __future__ import annotations

from course.grading.probes.tools import dense_network, to_numpy, train_one_step, weight_shapes
from course.grading.registry import CheckFailed


def standardize(ns, inputs):
    """The student's ``standardize`` of a random expression matrix."""
    result = ns["standardize"](inputs["expression"])
    return {"standardized": to_numpy(result, "standardize")}


def encoder(ns, inputs):
    """The student's encoder: its weight shapes, and its codes with the grader's weights.

    When the encoder's weights have the shapes of the grader's, they are set (so the verdict
    can recompute the codes); otherwise only the shapes are returned.
    """
    import keras

    n_genes, latent_dim = int(inputs["n_genes"]), int(inputs["latent_dim"])
    model = ns["build_encoder"](n_genes, latent_dim)
    if model is None:
        raise CheckFailed("build_encoder returned None: did you forget the `return`?")
    if not isinstance(model, keras.Model):
        raise CheckFailed(
            f"build_encoder returned a {type(model).__name__}, not a model: return "
            "keras.Model(inputs, outputs, name='encoder')"
        )
    outputs = {"weight_shapes": weight_shapes(model.get_weights()), "n_outputs": len(model.outputs)}
    try:
        model.set_weights([inputs[f"weight_{index}"] for index in range(4)])
    except ValueError:  # other layers than the grader's: the verdict explains the shapes
        return outputs | {"weights_set": 0}
    outputs["weights_set"] = 1
    codes = model(inputs["expression"])
    if isinstance(codes, (list, tuple)):
        codes = codes[0]
    outputs["codes"] = to_numpy(codes, "the encoder")
    return outputs


def reconstruction_loss(ns, inputs):
    """The student's loss of a random reconstruction, and of a perfect one."""
    loss = ns["reconstruction_loss"]
    expression = inputs["expression"]
    return {
        "loss": to_numpy(loss(expression, inputs["reconstruction"]), "reconstruction_loss"),
        "perfect": to_numpy(loss(expression, expression), "reconstruction_loss"),
    }


def train_step(ns, inputs):
    """One SGD step of the student's ``Autoencoder`` from the grader's weights and batch, and
    the student's own ``reconstruction_loss`` (exercise 1.3) at the starting point."""
    encoder = dense_network(inputs, "encoder", ["relu", None])
    decoder = dense_network(inputs, "decoder", ["relu", None])
    own_loss = _own_loss(ns, inputs["expression"], decoder(encoder(inputs["expression"])))
    model = ns["Autoencoder"](encoder, decoder)
    return own_loss | train_one_step(
        model, inputs["expression"], float(inputs["learning_rate"]),
        {"encoder": encoder, "decoder": decoder},
    )


def _own_loss(ns, expression, reconstruction) -> dict:
    """The student's ``reconstruction_loss`` of the networks' reconstruction of the batch and
    its gradient with respect to that reconstruction, so that the verdict can judge the step
    with the student's own loss; ``own_loss_ok`` = 0 when it cannot be had (e.g. 1.3 is not
    done yet: the step then fails on its own)."""
    import tensorflow as tf

    reconstruction = tf.constant(reconstruction)
    try:
        with tf.GradientTape() as tape:
            tape.watch(reconstruction)
            loss = ns["reconstruction_loss"](tf.constant(expression), reconstruction)
        gradient = tape.gradient(loss, reconstruction)
        if gradient is None:
            return {"own_loss_ok": 0}
        return {"own_loss_ok": 1, "own_loss": to_numpy(loss, "reconstruction_loss"),
                "own_loss_gradient": to_numpy(gradient, "reconstruction_loss")}
    except Exception:  # noqa: BLE001 -- any failure of the student's loss: judge without it
        return {"own_loss_ok": 0}
