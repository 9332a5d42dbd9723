"""Lab 2's checks: each realistic mistake loses the exercise's points with a hint that names the
mistake, and the lab's model is the toolkit's VAE (that the solution passes, for every lab:
tests/test_lab_structure.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    solution_namespace,
    with_mistake,
)

from course.models import VAE
from course.models.vae import kl_divergence as toolkit_kl_divergence


@pytest.fixture(scope="module")
def lab2():
    return solution_namespace(2)


SAMPLER = """
def sample_z(z_mean, z_log_var):
    epsilon = {epsilon}
    return {z}
"""
RIGHT_SAMPLER = {"epsilon": "keras.random.normal(ops.shape(z_mean), seed=seed_generator)",
                 "z": "z_mean + ops.exp(0.5 * z_log_var) * epsilon"}
SAMPLER_MISTAKES = {
    "no noise": ({"z": "z_mean"}, "there is no noise"),
    "fixed seed": ({"epsilon": "keras.random.normal(ops.shape(z_mean), seed=1)"},
                   "returns the same z on every call"),
    "variance": ({"z": "z_mean + ops.exp(z_log_var) * epsilon"}, "grows like the variance"),
    "half the variance": ({"z": "z_mean + 0.5 * ops.exp(z_log_var) * epsilon"},
                          "grows like the variance"),
    "root of the std": ({"z": "z_mean + ops.sqrt(ops.exp(0.5 * z_log_var)) * epsilon"},
                        "square root of the standard deviation"),
    "sign": ({"z": "z_mean + ops.exp(-0.5 * z_log_var) * epsilon"}, "check the sign"),
    "log-variance as std": ({"z": "z_mean + z_log_var * epsilon"},
                            "you scaled the noise by z_log_var itself"),
    "root of the log-variance": ({"z": "z_mean + ops.sqrt(z_log_var) * epsilon"},
                                 "never a root or a log"),
    "half the std": ({"z": "z_mean + 0.5 * ops.exp(0.5 * z_log_var) * epsilon"},
                     "z's variance is 0.2"),
    "no mean": ({"z": "ops.exp(0.5 * z_log_var) * epsilon"}, "z does not move with z_mean"),
    "one epsilon for the batch": (
        {"epsilon": "keras.random.normal(ops.shape(z_mean)[-1:], seed=seed_generator)"},
        "every example got the same noise",
    ),
    "one epsilon per example": (
        {"epsilon": "keras.random.normal((ops.shape(z_mean)[0], 1), seed=seed_generator)"},
        "all latent dimensions of an example got the same noise",
    ),
    "uniform noise": ({"epsilon": "keras.random.uniform(ops.shape(z_mean), seed=seed_generator)"},
                      "the noise is uniform"),
    "numpy noise": (
        {"epsilon": "np.random.normal(size=z_mean.shape).astype('float32')",
         "z": "z_mean + np.exp(0.5 * ops.convert_to_numpy(z_log_var)) * epsilon"},
        "no gradient reaches z_log_var",
    ),
    "no return": ({"z": "None"}, "did you forget the `return`"),
}


@pytest.mark.parametrize("mistake", list(SAMPLER_MISTAKES))
def test_sampler_mistakes_lose_the_points(lab2, mistake):
    change, hint = SAMPLER_MISTAKES[mistake]
    source = SAMPLER.format(**(RIGHT_SAMPLER | change))
    assert hint in failure_message("2.1", with_mistake(lab2, source))


def test_the_sampler_template_is_right(lab2):
    assert_passes("2.1", with_mistake(lab2, SAMPLER.format(**RIGHT_SAMPLER)), seeds=[0])


KL = "def kl_divergence(m, v):\n    return {}\n"
KL_MISTAKES = {
    "wrong sign": ("0.5 * ops.sum(1.0 + v - ops.square(m) - ops.exp(v), axis=-1)",
                   "KL is negative: check the overall sign"),
    "mean over dimensions": ("-0.5 * ops.mean(1.0 + v - ops.square(m) - ops.exp(v), axis=-1)",
                             "KL is the mean over the latent dimensions"),
    "no sum": ("-0.5 * (1.0 + v - ops.square(m) - ops.exp(v))",
               "one value per example and dimension"),
    "sum over the batch": ("-0.5 * ops.sum(1.0 + v - ops.square(m) - ops.exp(v), axis=0)",
                           "reduced over the examples"),
    "one number": ("-0.5 * ops.sum(1.0 + v - ops.square(m) - ops.exp(v))",
                   "one number for the whole batch"),
    "missing the 1": ("-0.5 * ops.sum(v - ops.square(m) - ops.exp(v), axis=-1)",
                      "not 0, when the posterior equals the prior"),
    "no factor 1/2": ("-ops.sum(1.0 + v - ops.square(m) - ops.exp(v), axis=-1)",
                      "KL is twice the closed form"),
    "log std": ("-0.5 * ops.sum(1.0 + 2 * v - ops.square(m) - ops.exp(2 * v), axis=-1)",
                "the log of the variance"),
    "variance squared": ("-0.5 * ops.sum(1.0 + v - ops.square(m) - ops.square(ops.exp(v)), -1)",
                         "you squared the variance"),
    "standard deviation": ("-0.5 * ops.sum(1.0 + v - ops.square(m) - ops.exp(0.5 * v), -1)",
                           "you used the standard deviation"),
    "no log-variance term": ("-0.5 * ops.sum(1.0 - ops.square(m) - ops.exp(v), axis=-1)",
                             "the log-variance term is missing"),
    "mean not squared": ("-0.5 * ops.sum(1.0 + v - m - ops.exp(v), axis=-1)",
                         "z_mean enters the KL squared"),
}


@pytest.mark.parametrize("mistake", list(KL_MISTAKES))
def test_kl_mistakes_lose_the_points(lab2, mistake):
    body, hint = KL_MISTAKES[mistake]
    assert hint in failure_message("2.2", with_mistake(lab2, KL.format(body)))


VAE_STEP = """
class DigitVAE(DigitVAE):
    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            z = {z}
            logits = self.decoder(z, training=True)
            reconstruction_loss = {reconstruction}
            kl_loss = {kl}
            loss = {loss}
        {update}
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.kl_loss_tracker.update_state(ops.mean(kl_loss))
        return {{metric.name: metric.result() for metric in self.metrics}}
"""
APPLY = """gradients = tape.gradient(loss, {weights})
        self.optimizer.apply(gradients, {weights})"""
RIGHT_VAE_STEP = {
    "z": "sample_z(z_mean, z_log_var)",
    "reconstruction": "self.reconstruction_loss(images, logits)",
    "kl": "kl_divergence(z_mean, z_log_var)",
    "loss": "ops.mean(reconstruction_loss + kl_loss)",
    "update": APPLY.format(weights="self.trainable_weights"),
}
PIXEL_MEAN = ("-ops.mean(ops.reshape(likelihoods.bernoulli(images, logits), "
              "(ops.shape(images)[0], -1)), axis=-1)")
SAMPLED_KL = ("ops.sum(0.5 * ops.square(z) - 0.5 * ops.square((z - z_mean) "
              "* ops.exp(-0.5 * z_log_var)) - 0.5 * z_log_var, axis=-1)")
VAE_STEP_MISTAKES = {
    "reconstruction averaged over pixels": ({"reconstruction": PIXEL_MEAN},
                                            "averaged over the pixels"),
    "KL at the sampled z": ({"kl": SAMPLED_KL}, "the KL is estimated at the sampled z"),
    "no KL": ({"loss": "ops.mean(reconstruction_loss)"}, "the reconstruction loss alone"),
    "KL subtracted": ({"loss": "ops.mean(reconstruction_loss - kl_loss)"},
                      "the loss subtracts the KL term"),
    "summed over the batch": ({"loss": "ops.sum(reconstruction_loss + kl_loss)"},
                              "the loss is summed over the batch"),
    "decodes z_mean": ({"z": "z_mean"}, "you decode z_mean"),
    "sampling inline": ({"z": "z_mean + ops.exp(0.5 * z_log_var) * keras.random.normal("
                              "ops.shape(z_mean))"},
                        "does not draw z with your sample_z"),
    "never applies gradients": ({"update": "pass"}, "never changed the weights"),
    "decoder never trained": ({"update": APPLY.format(weights="self.encoder.trainable_weights")},
                              "the decoder is never trained"),
    "encoder never trained": ({"update": APPLY.format(weights="self.decoder.trainable_weights")},
                              "the encoder is never trained"),
    "negated outside the tape": ({"update": APPLY.format(weights="self.trainable_weights")
                              .replace("tape.gradient(loss", "tape.gradient(-loss")},
                             "no gradient reached the weights"),
    "squared error": ({"reconstruction": "ops.sum(ops.reshape(ops.square(images - "
                                         "ops.sigmoid(logits)), (ops.shape(images)[0], -1)), -1)"},
                      "use the helper self.reconstruction_loss"),
}


@pytest.mark.parametrize("mistake", list(VAE_STEP_MISTAKES))
def test_vae_train_step_mistakes_lose_the_points(lab2, mistake):
    change, hint = VAE_STEP_MISTAKES[mistake]
    source = VAE_STEP.format(**(RIGHT_VAE_STEP | change))
    assert hint in failure_message("2.3", with_mistake(lab2, source))


def test_the_vae_train_step_template_is_right(lab2):
    assert_passes("2.3", with_mistake(lab2, VAE_STEP.format(**RIGHT_VAE_STEP)), seeds=[0])


def test_a_step_that_goes_uphill_loses_the_points(lab2):
    ascent = RIGHT_VAE_STEP | {
        "loss": "ops.mean(reconstruction_loss + kl_loss)\n            elbo = -loss",
        "update": APPLY.format(weights="self.trainable_weights").replace("(loss", "(elbo"),
    }
    source = VAE_STEP.format(**ascent)
    assert "the step went uphill" in failure_message("2.3", with_mistake(lab2, source))


GRID = """
def decode_grid(decoder, points_per_side=15, extent=2.0):
    values = {values}
    z0, z1 = {meshgrid}
    z = np.stack([z0.ravel(), z1.ravel()], axis=-1).astype("float32")
    return {result}
"""
RIGHT_GRID = {"values": "np.linspace(-extent, extent, points_per_side)",
              "meshgrid": "np.meshgrid(values, values[::-1])",
              "result": "ops.convert_to_numpy(ops.sigmoid(decoder(z)))"}
GRID_MISTAKES = {
    "logits": ({"result": "ops.convert_to_numpy(decoder(z))"}, "values outside [0, 1]"),
    "sigmoid twice": ({"result": "ops.convert_to_numpy(ops.sigmoid(ops.sigmoid(decoder(z))))"},
                      "apply the sigmoid once"),
    "rows upside down": ({"meshgrid": "np.meshgrid(values, values)"}, "the rows are upside down"),
    "transposed": ({"meshgrid": "np.meshgrid(values, values[::-1], indexing='ij')"},
                   "the grid is transposed"),
    "right to left": ({"meshgrid": "np.meshgrid(values[::-1], values[::-1])"},
                      "z[0] falls from left to right"),
    "default size": ({"values": "np.linspace(-extent, extent, 15)"}, "use the arguments"),
    "default extent": ({"values": "np.linspace(-2.0, 2.0, points_per_side)"},
                       "evenly spaced values from"),
    "no endpoint": ({"values": "np.linspace(-extent, extent, points_per_side, endpoint=False)"},
                    "both included"),
    "no return": ({"result": "None"}, "did you forget the `return`"),
}


@pytest.mark.parametrize("mistake", list(GRID_MISTAKES))
def test_decode_grid_mistakes_lose_the_points(lab2, mistake):
    change, hint = GRID_MISTAKES[mistake]
    source = GRID.format(**(RIGHT_GRID | change))
    assert hint in failure_message("2.4", with_mistake(lab2, source))


def test_the_grid_template_is_right(lab2):
    assert_passes("2.4", with_mistake(lab2, GRID.format(**RIGHT_GRID)), seeds=[0])


def test_an_unimplemented_exercise_says_so(lab2):
    stub = "def kl_divergence(m, v):\n    raise NotImplementedError('Exercise 2.2: the hint')"
    assert failure_message("2.2", with_mistake(lab2, stub)) == (
        "not implemented yet: Exercise 2.2: the hint"
    )


def test_a_step_without_return_of_the_sampler_is_reported(lab2):
    wrong = edited_namespace(2, "sample_z", old="return z_mean +", new="z_mean +")
    assert "did you forget the `return`" in failure_message("2.1", wrong)


# --- The lab says: course.models.VAE "is the same model with everything you wrote above inside"


def test_the_lab_kl_is_the_toolkit_kl(lab2):
    rng = np.random.default_rng(0)
    z_mean, z_log_var = rng.normal(size=(2, 50, 4)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(lab2["kl_divergence"](z_mean, z_log_var)),
                               ops.convert_to_numpy(toolkit_kl_divergence(z_mean, z_log_var)),
                               rtol=1e-6)


def test_the_toolkit_sampler_passes_the_lab_sampler_check():
    vae = VAE(data_shape=(4,), latent_dim=2, likelihood="gaussian", seed=0)
    assert_passes("2.1", {"sample_z": vae.reparameterize}, seeds=[0])


def test_a_training_step_of_the_lab_model_equals_the_toolkit_vae_step():
    """Same weights, same batch, same noise: the same losses and the same updated weights."""
    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(16, 28, 28, 1)) < 0.3).astype("float32")
    epsilon = ops.convert_to_tensor(rng.normal(size=(16, 2)).astype("float32"))

    def sampler(z_mean, z_log_var):
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    toolkit = VAE(data_shape=(28, 28, 1), latent_dim=2, likelihood="bernoulli", seed=0)
    toolkit.reparameterize = sampler
    lab = solution_namespace(2)
    lab["sample_z"] = sampler
    digit_vae = lab["DigitVAE"](lab["build_encoder"](), lab["build_decoder"]())
    digit_vae.encoder.set_weights(toolkit.encoder.get_weights())
    digit_vae.decoder.set_weights(toolkit.decoder.get_weights())
    logs = {}
    for name, model in (("lab", digit_vae), ("toolkit", toolkit)):
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), run_eagerly=True)
        logs[name] = model.fit(images, epochs=1, batch_size=16, shuffle=False, verbose=0).history
    for key in ("loss", "reconstruction_loss", "kl_loss"):
        np.testing.assert_allclose(logs["lab"][key], logs["toolkit"][key], rtol=1e-5)
    for lab_part, toolkit_part in ((digit_vae.encoder, toolkit.encoder),
                                   (digit_vae.decoder, toolkit.decoder)):
        for mine, theirs in zip(lab_part.get_weights(), toolkit_part.get_weights()):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)
