"""Probes of lab 2 (a VAE for MNIST): call the student's functions on the grader's inputs.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab02``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.grading.probes.tools import to_numpy, train_one_step

GRADIENT_ROWS = 64


def sample_z(ns, inputs):
    """Two calls of the student's sampler, and the gradients of a third one's sum."""
    import tensorflow as tf

    sampler = ns["sample_z"]
    z_mean, z_log_var = tf.constant(inputs["z_mean"]), tf.constant(inputs["z_log_var"])
    outputs = {
        "first": to_numpy(sampler(z_mean, z_log_var), "sample_z"),
        "second": to_numpy(sampler(z_mean, z_log_var), "sample_z"),
    }
    mean = tf.constant(inputs["z_mean"][:GRADIENT_ROWS])
    log_var = tf.constant(inputs["z_log_var"][:GRADIENT_ROWS])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([mean, log_var])
        z = sampler(mean, log_var)
        total = tf.reduce_sum(tf.convert_to_tensor(z, tf.float32))
    outputs["z_traced"] = to_numpy(z, "sample_z")
    for name, variable in (("z_mean", mean), ("z_log_var", log_var)):
        gradient = tape.gradient(total, variable)
        outputs[f"has_gradient_{name}"] = int(gradient is not None)
        outputs[f"gradient_{name}"] = np.zeros(variable.shape) if gradient is None else gradient
    return outputs


def kl_divergence(ns, inputs):
    """The student's KL divergence of random posteriors (the first rows equal the prior)."""
    kl = ns["kl_divergence"](inputs["z_mean"], inputs["z_log_var"])
    return {"kl": to_numpy(kl, "kl_divergence")}


def tiny_vae_networks(inputs):
    """The grader's small encoder (image -> z_mean, z_log_var) and decoder (z -> pixel logits).

    Dense networks of the lab's shape, with the weights ``encoder_<i>`` and ``decoder_<i>``
    from the inputs.
    """
    import keras
    from keras import layers

    image_shape = tuple(int(size) for size in inputs["images"].shape[1:])
    hidden_units = inputs["encoder_0"].shape[1]
    latent_dim = inputs["encoder_2"].shape[1]
    images = keras.Input(image_shape)
    hidden = layers.Dense(hidden_units, activation="relu")(layers.Flatten()(images))
    encoder = keras.Model(
        images, [layers.Dense(latent_dim)(hidden), layers.Dense(latent_dim)(hidden)], name="encoder"
    )
    z = keras.Input((latent_dim,))
    logits = layers.Dense(int(np.prod(image_shape)))(
        layers.Dense(hidden_units, activation="relu")(z)
    )
    decoder = keras.Model(z, layers.Reshape(image_shape)(logits), name="decoder")
    encoder.set_weights([inputs[f"encoder_{index}"] for index in range(6)])
    decoder.set_weights([inputs[f"decoder_{index}"] for index in range(4)])
    return encoder, decoder


@contextlib.contextmanager
def _global_replaced(function, name: str, value):
    """Replace the global ``name`` that ``function`` sees (its module or notebook globals)."""
    namespace = getattr(function, "__globals__", None)
    if namespace is None:
        yield
        return
    missing = object()
    previous = namespace.get(name, missing)
    namespace[name] = value
    try:
        yield
    finally:
        if previous is missing:
            namespace.pop(name, None)
        else:
            namespace[name] = previous


def vae_train_step(ns, inputs):
    """One SGD step of the student's ``DigitVAE`` from the grader's weights and batch.

    So that the grader can recompute the step, the student's ``sample_z`` is replaced during
    the step by a sampler whose noise epsilon comes from the inputs; ``used_sample_z`` says
    whether the step called it.
    """
    from keras import ops

    encoder, decoder = tiny_vae_networks(inputs)
    vae = ns["DigitVAE"](encoder, decoder)
    epsilon = ops.convert_to_tensor(inputs["epsilon"])
    calls = []

    def sampler_with_given_noise(z_mean, z_log_var):
        calls.append(1)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    step = getattr(type(vae), "train_step", None)
    with _global_replaced(step, "sample_z", sampler_with_given_noise):
        outputs = train_one_step(
            vae, inputs["images"], float(inputs["learning_rate"]),
            {"encoder": encoder, "decoder": decoder},
        )
    return outputs | {"used_sample_z": int(bool(calls))}


class RecordingDecoder:
    """A stand-in decoder with the grader's random linear map from z to pixel logits."""

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, image_shape: tuple[int, ...]):
        self.kernel, self.bias, self.image_shape = kernel, bias, image_shape

    def __call__(self, z, training=False):
        import keras

        z = np.asarray(keras.ops.convert_to_numpy(z), np.float32).reshape(-1, len(self.kernel))
        logits = (z @ self.kernel + self.bias).reshape((len(z), *self.image_shape))
        return keras.ops.convert_to_tensor(logits.astype("float32"))

    def predict(self, z, **kwargs):
        import keras

        return keras.ops.convert_to_numpy(self(z))


def decode_grid(ns, inputs):
    """The student's grid of images decoded by a stand-in decoder."""
    decoder = RecordingDecoder(inputs["kernel"], inputs["bias"], (28, 28, 1))
    images = ns["decode_grid"](decoder, int(inputs["points_per_side"]), float(inputs["extent"]))
    return {"images": to_numpy(images, "decode_grid")}
