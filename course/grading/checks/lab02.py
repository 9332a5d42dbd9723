"""Checks of lab 2, a VAE for MNIST digits (solutions/02_vae_mnist.py)."""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import (
    call_twice,
    expect_finite,
    expect_logs,
    expect_loss_falls,
    expect_shape,
    fit_on_one_batch,
    to_numpy,
)
from course.grading.registry import CheckFailed, exercise

# Means and variances of three latent dimensions for the sampler's check. The variances are
# far from 1, so exp(log_var) and exp(0.5 * log_var) give visibly different spreads.
SAMPLER_MEANS = np.array([-1.0, 0.5, 2.0], dtype="float32")
SAMPLER_VARIANCES = np.array([0.25, 4.0, 0.5], dtype="float32")
SAMPLER_DRAWS = 20000


def reference_kl(z_mean, z_log_var) -> np.ndarray:
    """The closed-form KL(N(z_mean, exp(z_log_var)) || N(0, I)) per row, in float64."""
    z_mean, z_log_var = np.float64(z_mean), np.float64(z_log_var)
    return -0.5 * np.sum(1.0 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=-1)


@exercise("2.1", points=3, title="Sample z with the reparameterization trick")
def sample_z_is_random_right_and_differentiable(ns):
    import tensorflow as tf

    sample_z = ns["sample_z"]
    z_mean = np.tile(SAMPLER_MEANS, (SAMPLER_DRAWS, 1))
    z_log_var = np.tile(np.log(SAMPLER_VARIANCES), (SAMPLER_DRAWS, 1))
    first, second = call_twice(sample_z, tf.constant(z_mean), tf.constant(z_log_var))
    expect_shape(
        first,
        z_mean.shape,
        "sample_z(z_mean, z_log_var)",
        "z must have the shape of z_mean (one draw per row)",
    )
    expect_finite(first, "z")
    if np.array_equal(first, second):
        raise CheckFailed(
            "sample_z returns the same value every call: did you forget epsilon? Draw new noise "
            "on every call with keras.random.normal(ops.shape(z_mean), seed=seed_generator)"
        )
    _expect_mean_and_variance(first)
    _expect_gradients_flow(sample_z)


def _expect_mean_and_variance(z: np.ndarray) -> None:
    means, variances = z.mean(axis=0), z.var(axis=0)
    if not np.allclose(means, SAMPLER_MEANS, atol=0.1):
        raise CheckFailed(
            f"the average of many draws is {np.round(means, 2).tolist()}, not z_mean = "
            f"{SAMPLER_MEANS.tolist()}: z should be z_mean plus zero-mean noise"
        )
    if np.allclose(variances, SAMPLER_VARIANCES, rtol=0.1):
        return
    if np.allclose(variances, SAMPLER_VARIANCES**2, rtol=0.1):
        raise CheckFailed(
            "the variance of z is exp(2 * z_log_var), not exp(z_log_var): you scaled epsilon by "
            "exp(z_log_var); the standard deviation is exp(0.5 * z_log_var)"
        )
    if np.allclose(variances, np.sqrt(SAMPLER_VARIANCES), rtol=0.1):
        raise CheckFailed(
            "the variance of z is exp(0.5 * z_log_var), not exp(z_log_var): scale epsilon by the "
            "standard deviation exp(0.5 * z_log_var), not by its square root"
        )
    raise CheckFailed(
        f"the variance of many draws is {np.round(variances, 2).tolist()}, but exp(z_log_var) = "
        f"{SAMPLER_VARIANCES.tolist()}: multiply standard normal noise by exp(0.5 * z_log_var)"
    )


def _expect_gradients_flow(sample_z) -> None:
    import tensorflow as tf

    z_mean = tf.Variable(np.tile(SAMPLER_MEANS, (8, 1)))
    z_log_var = tf.Variable(np.tile(np.log(SAMPLER_VARIANCES), (8, 1)))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(sample_z(z_mean, z_log_var))
    mean_gradient, log_var_gradient = tape.gradient(total, [z_mean, z_log_var])
    for name, gradient in [("z_mean", mean_gradient), ("z_log_var", log_var_gradient)]:
        if gradient is None or not np.any(to_numpy(gradient, f"the gradient of {name}")):
            raise CheckFailed(
                f"no gradient reaches {name} through sample_z: compute z from z_mean and "
                "z_log_var with keras.ops (no numpy, no sampling from a distribution object)"
            )


@exercise("2.2", points=2, title="The KL divergence to the prior")
def kl_divergence_matches_the_closed_form(ns):
    kl_divergence = ns["kl_divergence"]
    zeros = np.zeros((5, 3), dtype="float32")
    at_prior = to_numpy(kl_divergence(zeros, zeros), "kl_divergence")
    if at_prior.shape == ():
        raise CheckFailed(
            "kl_divergence returned one number for the whole batch: return one value per "
            "example, summing only over the latent dimensions (axis=-1)"
        )
    expect_shape(
        at_prior,
        (5,),
        "kl_divergence(z_mean, z_log_var) for 5 examples of 3 dimensions",
        "sum over the latent dimensions (axis=-1)",
    )
    if not np.allclose(at_prior, 0.0, atol=1e-5):
        raise CheckFailed(
            f"KL is {at_prior[0]:.3g}, not 0, when the posterior equals the prior (z_mean = 0, "
            "z_log_var = 0): check the constant 1 inside the sum"
        )
    rng = np.random.default_rng(2)
    z_mean = rng.normal(0.0, 1.5, (64, 3)).astype("float32")
    z_log_var = rng.normal(0.0, 1.0, (64, 3)).astype("float32")
    kl = to_numpy(kl_divergence(z_mean, z_log_var), "kl_divergence")
    expected = reference_kl(z_mean, z_log_var)
    if np.allclose(kl, expected, rtol=1e-4, atol=1e-4):
        return
    if np.allclose(kl, -expected, rtol=1e-4, atol=1e-4) or np.any(kl < -1e-5):
        raise CheckFailed(
            "KL is negative: check the sign. KL = -0.5 * sum(1 + z_log_var - z_mean**2 - "
            "exp(z_log_var)), and it is never below 0"
        )
    if np.allclose(kl, expected / 3, rtol=1e-4, atol=1e-4):
        raise CheckFailed("KL is the mean over the latent dimensions: sum them instead")
    if np.allclose(kl, 2 * expected, rtol=1e-4, atol=1e-4):
        raise CheckFailed("KL is twice the closed form: did you forget the factor -0.5?")
    raise CheckFailed(
        f"KL(z_mean={np.round(z_mean[0], 2).tolist()}, z_log_var="
        f"{np.round(z_log_var[0], 2).tolist()}) is {kl[0]:.4g}; the closed form gives "
        f"{expected[0]:.4g}"
    )


def _tiny_vae_parts(keras, image_shape=(8, 8, 1), latent_dim=2):
    """A seeded encoder (image -> z_mean, z_log_var) and decoder (z -> logits) to train fast."""
    init = keras.initializers.GlorotUniform
    layers = keras.layers
    images = keras.Input(image_shape)
    hidden = layers.Dense(32, activation="relu", kernel_initializer=init(1))(
        layers.Flatten()(images)
    )
    z_mean = layers.Dense(latent_dim, kernel_initializer=init(2))(hidden)
    z_log_var = layers.Dense(latent_dim, kernel_initializer=init(3))(hidden)
    encoder = keras.Model(images, [z_mean, z_log_var], name="encoder")
    z = keras.Input((latent_dim,))
    hidden = layers.Dense(32, activation="relu", kernel_initializer=init(4))(z)
    logits = layers.Dense(int(np.prod(image_shape)), kernel_initializer=init(5))(hidden)
    decoder = keras.Model(z, layers.Reshape(image_shape)(logits), name="decoder")
    return encoder, decoder


def _tiny_images(n: int = 16) -> np.ndarray:
    """Two blurred "digits" (a bar and a ring) on an 8x8 canvas, as grey values in [0, 1]."""
    rng = np.random.default_rng(0)
    bar = np.zeros((8, 8))
    bar[:, 3:5] = 1.0
    ring = np.zeros((8, 8))
    ring[1:7, 1:7] = 1.0
    ring[3:5, 3:5] = 0.0
    prototypes = np.stack([bar, ring])[rng.integers(0, 2, n)]
    images = np.clip(prototypes + rng.normal(0.0, 0.1, prototypes.shape), 0.0, 1.0)
    return images[..., None].astype("float32")


@exercise("2.3", points=4, title="The ELBO training step")
def train_step_minimizes_the_negative_elbo(ns):
    import keras

    images = _tiny_images()
    vae = ns["DigitVAE"](*_tiny_vae_parts(keras))
    keys = ["loss", "reconstruction_loss", "kl_loss"]
    frozen = fit_on_one_batch(vae, images, 3, keras.optimizers.SGD(learning_rate=0.0))
    expect_logs(frozen, keys)
    _expect_negative_elbo(frozen.logs)
    if len(set(frozen.logs["reconstruction_loss"])) == 1:
        raise CheckFailed(
            "the reconstruction loss is the same on every step although the weights did not "
            "change: decode a random z = sample_z(z_mean, z_log_var), not z_mean"
        )
    training = fit_on_one_batch(vae, images, 40)
    expect_loss_falls(training, "reconstruction_loss")
    encoder_weights = list(range(len(vae.encoder.get_weights())))
    if not training.changed(encoder_weights):
        raise CheckFailed(
            "the encoder's weights never change: encode inside the GradientTape and take the "
            "gradients of the loss with respect to self.trainable_weights"
        )


def _expect_negative_elbo(logs: dict[str, list[float]]) -> None:
    loss, reconstruction, kl = (
        np.array(logs[key]) for key in ["loss", "reconstruction_loss", "kl_loss"]
    )
    if np.allclose(loss, reconstruction + kl, rtol=1e-4, atol=1e-3):
        return
    if np.allclose(loss, reconstruction, rtol=1e-4, atol=1e-3):
        raise CheckFailed(
            "the loss is the reconstruction loss alone: add the KL term, "
            "loss = ops.mean(reconstruction_loss + kl_loss)"
        )
    if np.allclose(loss, reconstruction - kl, rtol=1e-4, atol=1e-3):
        raise CheckFailed(
            "the loss subtracts the KL term: the negative ELBO is reconstruction_loss + kl_loss"
        )
    raise CheckFailed(
        f"the loss is {loss[0]:.4g}, but reconstruction_loss + kl_loss = "
        f"{reconstruction[0] + kl[0]:.4g}: loss = ops.mean(reconstruction_loss + kl_loss)"
    )


class _RecordingDecoder:
    """A stand-in decoder whose logits carry z: pixel (0, 0) holds z[0], pixel (0, 1) z[1]."""

    def __call__(self, z):
        import keras

        z = keras.ops.convert_to_numpy(z).astype("float32")
        logits = np.zeros((len(z), 28, 28, 1), dtype="float32")
        logits[:, 0, 0, 0], logits[:, 0, 1, 0] = z[:, 0], z[:, 1]
        return keras.ops.convert_to_tensor(logits)

    def predict(self, z, **kwargs):
        import keras

        return keras.ops.convert_to_numpy(self(z))


@exercise("2.4", points=2, title="Decode a grid over the latent plane")
def decode_grid_covers_the_plane_in_order(ns):
    points, extent = 5, 1.5
    result = ns["decode_grid"](_RecordingDecoder(), points, extent)
    images = to_numpy(result, "decode_grid")
    expect_shape(
        images,
        (points**2, 28, 28, 1),
        f"decode_grid(decoder, {points}, {extent})",
        "one decoded image per grid point, points_per_side**2 in all",
    )
    if images.min() < 0.0 or images.max() > 1.0:
        raise CheckFailed(
            "the images have values outside [0, 1]: the decoder returns logits; "
            "turn them into probabilities with ops.sigmoid"
        )
    probabilities = np.clip(images[:, 0, :2, 0], 1e-7, 1 - 1e-7)
    z = np.log(probabilities / (1 - probabilities))
    axis_values = np.linspace(-extent, extent, points)
    for dimension in (0, 1):
        found = np.unique(np.round(z[:, dimension], 3))
        if len(found) != points or not np.allclose(found, axis_values, atol=1e-3):
            raise CheckFailed(
                f"z[{dimension}] takes the values {found.tolist()[:8]} on the grid; expected "
                f"{points} evenly spaced values from {-extent} to {extent} (np.linspace)"
            )
    expected = np.stack(np.meshgrid(axis_values, axis_values[::-1]), axis=-1).reshape(-1, 2)
    if not np.allclose(z, expected, atol=1e-3):
        raise CheckFailed(
            f"the grid points are in another order: the first image should decode z = "
            f"({-extent}, {extent}) (top left), z[0] should grow along each row and z[1] fall "
            "from one row to the next"
        )
