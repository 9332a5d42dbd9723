"""Checks of lab 2, a VAE for MNIST digits (solutions/02_vae_mnist.py).

The sampler is judged on 20,000 draws (noise, spread and gradients), the KL divergence and the
ELBO step against their formulas in float64, the decoded grid against the decoder at the grid's
points; the hints name a variance taken for a standard deviation, a KL summed over the wrong
axis, z_mean decoded instead of a sample.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.steps import expect_training_step, gradient_step
from course.grading.checks.tools import close, expect_finite, expect_keys, expect_shape
from course.grading.probes import lab02 as probes
from course.grading.registry import CheckFailed, exercise

# --- 2.1 --------------------------------------------------------------------------------------

SAMPLER_ROWS = 20000


def sampler_inputs(rng):
    """Random means and log-variances (from -3 to 2) of 20,000 examples in 2-4 dimensions."""
    shape = (SAMPLER_ROWS, int(rng.integers(2, 5)))
    return {
        "z_mean": rng.normal(0.0, 2.0, shape).astype("float32"),
        "z_log_var": rng.uniform(-3.0, 2.0, shape).astype("float32"),
    }


PER_ENTRY = "one independent standard normal draw per example and latent dimension"


@exercise("2.1", points=3, title="Sample z with the reparameterization trick",
          probe=probes.sample_z, inputs=sampler_inputs)
def sample_z_verdict(inputs, outputs):
    keys = ["first", "second", "z_traced", "has_gradient_z_mean", "has_gradient_z_log_var",
            "gradient_z_mean", "gradient_z_log_var"]
    expect_keys(outputs, keys)
    mean, log_var = np.float64(inputs["z_mean"]), np.float64(inputs["z_log_var"])
    first, second = (np.asarray(outputs[key], np.float64) for key in ("first", "second"))
    for z in (first, second):
        expect_shape(z, mean.shape, "sample_z(z_mean, z_log_var)",
                     f"z has the shape of z_mean, {PER_ENTRY}")
        expect_finite(z, "z", "z_log_var is a logarithm and may be any real number: the "
                      "standard deviation is an exponential of it, never a root or a log")
    if np.allclose(first, mean, rtol=0, atol=1e-6):
        raise CheckFailed("z equals z_mean: there is no noise; the trick adds standard normal "
                          "noise scaled by the standard deviation")
    if np.array_equal(first, second):
        raise CheckFailed("sample_z returns the same z on every call: the noise must be new on "
                          "every call (draw it with the seed_generator, not a fixed seed)")
    _expect_z_follows_the_mean(first, mean)
    _expect_noise_scaled_by_the_standard_deviation(first - mean, log_var)
    _expect_standard_normal_noise((first - mean) / np.exp(0.5 * log_var))
    _expect_gradients(outputs, mean[: probes.GRADIENT_ROWS])


def _expect_z_follows_the_mean(z: np.ndarray, mean: np.ndarray) -> None:
    centred = mean - mean.mean(axis=0)
    slopes = ((z - z.mean(axis=0)) * centred).sum(axis=0) / (centred**2).sum(axis=0)
    if np.any(np.abs(slopes - 1.0) > 0.1):
        raise CheckFailed("z does not move with z_mean: a draw of N(z_mean, variance) is "
                          "z_mean plus zero-mean noise")


def _expect_noise_scaled_by_the_standard_deviation(noise, log_var) -> None:
    """The noise's size grows like exp(power * z_log_var): power 1/2 for the standard deviation.

    Within each column, log|noise| = power * z_log_var + log|epsilon|, and epsilon does not
    depend on z_log_var, so a regression of the one on the other estimates the power.
    """
    away_from_0 = np.abs(log_var) > 0.1
    if abs(np.var(noise[away_from_0] / log_var[away_from_0]) - 1.0) < 0.06:
        raise CheckFailed("you scaled the noise by z_log_var itself: it is the log of the "
                          "variance; the standard deviation is an exponential of it")
    log_size = np.log(np.abs(noise) + 1e-30)
    centred = log_var - log_var.mean(axis=0)
    power = float(np.median(
        ((log_size - log_size.mean(axis=0)) * centred).sum(axis=0) / (centred**2).sum(axis=0)
    ))
    if abs(power - 0.5) <= 0.05:
        return
    if abs(power - 1.0) <= 0.05:
        raise CheckFailed("the spread of z grows like the variance exp(z_log_var): scale the "
                          "noise by the standard deviation, the square root of the variance")
    if abs(power - 0.25) <= 0.05:
        raise CheckFailed("the spread of z grows like the square root of the standard "
                          "deviation: scale the noise by the standard deviation itself")
    if power < -0.05:
        raise CheckFailed("the spread of z shrinks as z_log_var grows: check the sign inside "
                          "the exponential")
    raise CheckFailed(f"the spread of z does not follow z_log_var as a standard deviation "
                      f"would (it grows like exp({power:.2f} * z_log_var)): scale standard "
                      "normal noise by the standard deviation")


def _expect_standard_normal_noise(epsilon: np.ndarray) -> None:
    if np.all(np.ptp(epsilon, axis=0) < 1e-3):
        raise CheckFailed(f"every example got the same noise: epsilon needs {PER_ENTRY} (give "
                          "it the full shape of z_mean), not one draw for the whole batch")
    if epsilon.shape[1] > 1 and np.allclose(epsilon[:, :1], epsilon[:, 1:], atol=1e-4):
        raise CheckFailed(f"all latent dimensions of an example got the same noise: epsilon "
                          f"needs {PER_ENTRY} (the full shape of z_mean)")
    if epsilon.min() >= 0.0 and epsilon.max() <= 1.0:
        raise CheckFailed("the noise is uniform on [0, 1): epsilon must be standard normal, "
                          "mean 0 and variance 1 (keras.random.normal)")
    means, variances = epsilon.mean(axis=0), epsilon.var(axis=0)
    if np.any(np.abs(means) > 0.05):
        raise CheckFailed(f"the noise has mean {np.round(means, 2).tolist()}, not 0: z must be "
                          "z_mean plus zero-mean noise")
    if np.any(np.abs(variances - 1.0) > 0.06):
        raise CheckFailed(f"z's variance is {np.round(variances.mean(), 2)} times exp(z_log_var)"
                          ", not 1 times: multiply standard normal noise by the standard "
                          "deviation and nothing else")
    correlation = np.corrcoef(epsilon, rowvar=False)
    if np.any(np.abs(correlation - np.eye(len(correlation))) > 0.05):
        raise CheckFailed(f"the noise of different latent dimensions is correlated: epsilon "
                          f"needs {PER_ENTRY}")


def _expect_gradients(outputs, mean: np.ndarray) -> None:
    z = np.asarray(outputs["z_traced"], np.float64)
    expect_shape(z, mean.shape, "sample_z of the first rows")
    how = ("compute z from z_mean and z_log_var with keras.ops (no numpy, no sampling from a "
           "distribution object)")
    gradient = np.asarray(outputs["gradient_z_mean"], np.float64)
    if not (int(outputs["has_gradient_z_mean"])
            and close(gradient, np.ones_like(mean), 1e-4, 1e-4)):
        raise CheckFailed(f"the gradient does not flow from z back to z_mean: {how}")
    gradient = np.asarray(outputs["gradient_z_log_var"], np.float64)
    if not int(outputs["has_gradient_z_log_var"]) or not np.any(gradient):
        raise CheckFailed(f"no gradient reaches z_log_var through sample_z: {how}")
    if not close(gradient, 0.5 * (z - mean)):
        raise CheckFailed("the gradient of z with respect to z_log_var is wrong: only epsilon "
                          f"may be cut off from the graph; {how}")


# --- 2.2 --------------------------------------------------------------------------------------


def kl_inputs(rng):
    """Random posteriors of 20-60 examples in 2-6 dimensions; the first 3 equal the prior."""
    shape = (int(rng.integers(20, 61)), int(rng.integers(2, 7)))
    z_mean = rng.normal(0.0, 1.5, shape)
    z_log_var = rng.normal(0.0, 1.0, shape)
    z_mean[:3], z_log_var[:3] = 0.0, 0.0
    return {"z_mean": z_mean.astype("float32"), "z_log_var": z_log_var.astype("float32")}


def _kl_terms(z_mean, z_log_var, variance=None):
    variance = np.exp(z_log_var) if variance is None else variance
    return -0.5 * (1.0 + z_log_var - z_mean**2 - variance)


@exercise("2.2", points=2, title="The KL divergence to the prior", probe=probes.kl_divergence,
          inputs=kl_inputs)
def kl_divergence_verdict(inputs, outputs):
    expect_keys(outputs, ["kl"])
    mean, log_var = np.float64(inputs["z_mean"]), np.float64(inputs["z_log_var"])
    kl = np.asarray(outputs["kl"], np.float64)
    n, d = mean.shape
    if kl.shape == ():
        raise CheckFailed("kl_divergence returned one number for the whole batch: return one "
                          "value per example, summing only over the latent dimensions")
    if kl.shape == (n, d):
        raise CheckFailed("kl_divergence returned one value per example and dimension: sum "
                          "over the latent dimensions (the last axis)")
    if kl.shape == (d,):
        raise CheckFailed("kl_divergence reduced over the examples (axis 0): sum over the "
                          "latent dimensions, the last axis, and keep one value per example")
    expect_shape(kl, (n,), f"kl_divergence of {n} examples in {d} dimensions",
                 "one value per example")
    expect_finite(kl, "the KL divergence")
    expected = _kl_terms(mean, log_var).sum(axis=-1)
    if close(kl, expected, 1e-4, 1e-4):
        return
    if not np.allclose(kl[:3], 0.0, atol=1e-5):
        raise CheckFailed(f"KL is {kl[0]:.3g}, not 0, when the posterior equals the prior "
                          "(z_mean = 0, z_log_var = 0): check the constant term and the signs")
    mistakes = [
        (-expected, "KL is negative: check the overall sign; KL is never below 0"),
        (expected / d, "KL is the mean over the latent dimensions: the KL of independent "
                       "dimensions is their sum"),
        (2 * expected, "KL is twice the closed form: the factor in front of the sum is 1/2"),
        (_kl_terms(mean, 2 * log_var, np.exp(2 * log_var)).sum(-1),
         "you treated z_log_var as the log of the standard deviation: it is the log of the "
         "variance"),
        (_kl_terms(mean, log_var, np.exp(2 * log_var)).sum(-1),
         "you squared the variance: exp(z_log_var) already is the variance sigma^2"),
        (_kl_terms(mean, log_var, np.exp(0.5 * log_var)).sum(-1),
         "you used the standard deviation where the variance sigma^2 = exp(z_log_var) belongs"),
        (-0.5 * (1.0 - mean**2 - np.exp(log_var)).sum(-1), "the log-variance term is missing"),
        (-0.5 * (1.0 + log_var - mean - np.exp(log_var)).sum(-1),
         "z_mean enters the KL squared (mu^2), so that a shift either way costs the same"),
    ]
    for value, message in mistakes:
        if close(kl, value, 1e-4, 1e-4):
            raise CheckFailed(message)
    if np.any(kl < -1e-5):
        raise CheckFailed("some KL values are negative: a KL divergence never is; check the "
                          "signs of the terms")
    row = int(np.argmax(np.abs(kl - expected)))
    raise CheckFailed(f"KL(z_mean={np.round(mean[row], 2).tolist()}, z_log_var="
                      f"{np.round(log_var[row], 2).tolist()}) is {kl[row]:.4g}; the closed form "
                      f"gives {expected[row]:.4g}")


# --- 2.3 --------------------------------------------------------------------------------------

IMAGE_SHAPE = (8, 8, 1)
PIXELS = int(np.prod(IMAGE_SHAPE))


def vae_step_inputs(rng):
    """Random weights of a small dense VAE, a batch of random images, noise, a learning rate."""
    n, hidden, latent_dim = 16, 32, 2
    inputs = {}
    layers = {"encoder": [(PIXELS, hidden), (hidden, latent_dim), (hidden, latent_dim)],
              "decoder": [(latent_dim, hidden), (hidden, PIXELS)]}
    for part, shapes in layers.items():
        for index, (fan_in, fan_out) in enumerate(shapes):
            kernel = rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)
            inputs[f"{part}_{2 * index}"] = kernel.astype("float32")
            inputs[f"{part}_{2 * index + 1}"] = (0.1 * rng.normal(size=fan_out)).astype("float32")
    ink = rng.uniform(size=(n, *IMAGE_SHAPE)) < rng.uniform(0.2, 0.6, (n, 1, 1, 1))
    grey = np.clip(ink + rng.normal(0.0, 0.1, ink.shape), 0.0, 1.0)
    inputs["images"] = grey.astype("float32")
    inputs["epsilon"] = rng.normal(size=(n, latent_dim)).astype("float32")
    inputs["learning_rate"] = np.float64(rng.uniform(0.002, 0.01))
    return inputs


def _vae_terms(inputs, weights, decode_mean: bool = False):
    """Per-image -log p(x|z) (summed over pixels), the closed-form KL, and the pieces (TF)."""
    import tensorflow as tf

    x = tf.constant(np.float64(inputs["images"]).reshape(len(inputs["images"]), -1))
    epsilon = tf.constant(np.float64(inputs["epsilon"]))
    hidden = tf.nn.relu(x @ weights[0] + weights[1])
    z_mean, z_log_var = hidden @ weights[2] + weights[3], hidden @ weights[4] + weights[5]
    z = z_mean if decode_mean else z_mean + tf.exp(0.5 * z_log_var) * epsilon
    logits = tf.nn.relu(z @ weights[6] + weights[7]) @ weights[8] + weights[9]
    reconstruction = tf.reduce_sum(tf.nn.softplus(logits) - x * logits, axis=-1)
    kl = -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)
    # The KL estimated at the sampled z: log q(z|x) - log p(z) (the 2 pi terms cancel).
    sampled_kl = tf.reduce_sum(0.5 * tf.square(z) - 0.5 * tf.square(epsilon) - 0.5 * z_log_var,
                               axis=-1)
    return {"reconstruction": reconstruction, "kl": kl, "sampled_kl": sampled_kl}


@exercise("2.3", points=4, title="The ELBO training step", probe=probes.vae_train_step,
          inputs=vae_step_inputs)
def vae_train_step_verdict(inputs, outputs):
    before = {"encoder": [np.float64(inputs[f"encoder_{i}"]) for i in range(6)],
              "decoder": [np.float64(inputs[f"decoder_{i}"]) for i in range(4)]}
    weights = before["encoder"] + before["decoder"]

    def negative_elbo(variables):
        import tensorflow as tf

        terms = _vae_terms(inputs, variables)
        return tf.reduce_mean(terms["reconstruction"] + terms["kl"])

    loss, new = gradient_step(negative_elbo, weights, float(inputs["learning_rate"]))
    if not int(outputs.get("no_gradients", 0)):
        _expect_vae_logs(inputs, outputs, weights, loss)
    expect_training_step(outputs, before, {"encoder": new[:6], "decoder": new[6:]},
                         "the negative ELBO")


def _agree(a: float, b: float) -> bool:
    """Whether two logged losses agree (float32 in the kernel, float64 here)."""
    return bool(np.isclose(a, b, rtol=1e-3, atol=1e-4))


def _expect_vae_logs(inputs, outputs, weights, loss: float) -> None:
    names = ["loss", "reconstruction_loss", "kl_loss"]
    missing = [name for name in names if f"log_{name}" not in outputs]
    if missing:
        raise CheckFailed(f"train_step did not return {', '.join(missing)}: keep the given "
                          "trackers and return their results")
    logged = {name: float(outputs[f"log_{name}"]) for name in names}
    terms = {key: float(np.mean(value)) for key, value in _vae_terms(inputs, weights).items()}
    if not int(outputs.get("used_sample_z", 0)):
        at_mean = float(np.mean(_vae_terms(inputs, weights, decode_mean=True)["reconstruction"]))
        if _agree(logged["reconstruction_loss"], at_mean):
            raise CheckFailed("you decode z_mean: the ELBO's reconstruction term is an average "
                              "over q(z|x), so decode a random z drawn with your sample_z")
        raise CheckFailed("train_step does not draw z with your sample_z(z_mean, z_log_var), as "
                          "step 2 asks (the check controls its noise)")
    reconstruction = logged["reconstruction_loss"]
    if not _agree(reconstruction, terms["reconstruction"]):
        if _agree(reconstruction, terms["reconstruction"] / PIXELS):
            raise CheckFailed(
                "the reconstruction loss is averaged over the pixels: -log p(x|z) of an image "
                "is the sum over its pixels; a mean shrinks it next to the KL, and the codes "
                "collapse onto the prior"
            )
        raise CheckFailed(
            f"the reconstruction_loss is {reconstruction:.4g}, but -log p(x|z) summed over each "
            f"image's pixels, averaged over the batch, is {terms['reconstruction']:.4g}: use "
            "the helper self.reconstruction_loss on the decoder's logits"
        )
    kl = logged["kl_loss"]
    if not _agree(kl, terms["kl"]):
        if _agree(kl, terms["sampled_kl"]):
            raise CheckFailed(
                "the KL is estimated at the sampled z (log q(z|x) - log p(z)), a noisy "
                "one-sample estimate: the lab asks for the closed form of exercise 2.2, a "
                "function of z_mean and z_log_var"
            )
        raise CheckFailed(f"the kl_loss is {kl:.4g}, but the closed-form KL of the batch's "
                          f"posteriors is {terms['kl']:.4g}: use your kl_divergence")
    if _agree(logged["loss"], loss):
        return
    mistakes = [
        (reconstruction, "the loss is the reconstruction loss alone: the negative ELBO also "
                         "has the KL term"),
        (reconstruction - kl, "the loss subtracts the KL term: the negative ELBO adds it (the "
                              "ELBO subtracts it)"),
        (len(inputs["images"]) * loss, "the loss is summed over the batch: average it, so "
                                       "that the step size does not grow with the batch"),
        (-loss, "the loss is the ELBO itself: minimize the negative ELBO"),
    ]
    for value, message in mistakes:
        if _agree(logged["loss"], value):
            raise CheckFailed(message)
    raise CheckFailed(f"the loss is {logged['loss']:.4g}, but the negative ELBO of the batch "
                      f"is {loss:.4g}")


# --- 2.4 --------------------------------------------------------------------------------------


def grid_inputs(rng):
    """A random grid size and extent, and a random linear stand-in decoder."""
    return {
        "points_per_side": np.int64(rng.integers(3, 10)),
        "extent": np.float64(np.round(rng.uniform(0.5, 3.0), 2)),
        "kernel": (0.7 * rng.normal(size=(2, 28 * 28))).astype("float32"),
        "bias": (0.3 * rng.normal(size=28 * 28)).astype("float32"),
    }


@exercise("2.4", points=2, title="Decode a grid over the latent plane", probe=probes.decode_grid,
          inputs=grid_inputs)
def decode_grid_verdict(inputs, outputs):
    expect_keys(outputs, ["images"])
    points, extent = int(inputs["points_per_side"]), float(inputs["extent"])
    images = np.asarray(outputs["images"], np.float64)
    if images.ndim >= 1 and len(images) == 15**2 != points**2:
        raise CheckFailed(f"the grid has 15 x 15 points, but points_per_side = {points}: use "
                          "the arguments, not the defaults")
    expect_shape(images, (points**2, 28, 28, 1), f"decode_grid(decoder, {points}, {extent})",
                 "one decoded image per grid point, points_per_side**2 in all")
    expect_finite(images, "the decoded images")
    if images.min() < 0.0 or images.max() > 1.0:
        raise CheckFailed("the images have values outside [0, 1]: the decoder returns logits; "
                          "turn them into pixel probabilities with a sigmoid")
    kernel, bias = np.float64(inputs["kernel"]), np.float64(inputs["bias"])
    probabilities = np.clip(images.reshape(len(images), -1), 1e-6, 1 - 1e-6)
    logits = np.log(probabilities / (1 - probabilities)) - bias
    z, *_ = np.linalg.lstsq(kernel.T, logits.T, rcond=None)
    z = z.T
    if not np.allclose(z @ kernel, logits, atol=0.05):
        raise CheckFailed("the images are not the sigmoid of the decoder's logits at grid "
                          "points: decode z with decoder(z), then apply the sigmoid once")
    values = np.linspace(-extent, extent, points)
    for dimension in (0, 1):
        found = _distinct(z[:, dimension])
        if len(found) != points or not np.allclose(found, values, atol=2e-3):
            raise CheckFailed(
                f"z[{dimension}] takes the values {np.round(found, 2).tolist()[:10]}; expected "
                f"{points} evenly spaced values from -{extent} to {extent}, both included"
            )
    z = z.reshape(points, points, 2)  # rows of the picture, columns, (z[0], z[1])
    if np.ptp(z[:, :, 0], axis=1).max() < 1e-3 or np.ptp(z[:, :, 1], axis=0).max() < 1e-3:
        raise CheckFailed("the grid is transposed: z[0] should change along each row (left to "
                          "right) and z[1] from one row to the next")
    if np.any(np.diff(z[:, :, 0], axis=1) < 0):
        raise CheckFailed("z[0] falls from left to right: it should grow along each row")
    if np.any(np.diff(z[:, :, 1], axis=0) > 0):
        raise CheckFailed("the rows are upside down: the first row of the picture has the "
                          "largest z[1], which falls from one row to the next")
    z0, z1 = np.meshgrid(values, values[::-1])
    if not np.allclose(z, np.stack([z0, z1], axis=-1), atol=2e-3):
        raise CheckFailed(f"the grid points are in another order: the first image should decode "
                          f"z = (-{extent}, {extent}) (top left), z[0] should grow along each row "
                          "and z[1] fall from one row to the next")


def _distinct(values: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """The distinct values of ``values``, merging those closer than ``tolerance``."""
    ordered = np.sort(values)
    starts = np.concatenate([[True], np.diff(ordered) > tolerance])
    return np.array([group.mean() for group in np.split(ordered, np.flatnonzero(starts)[1:])])
