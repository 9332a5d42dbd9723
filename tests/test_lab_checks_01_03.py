"""The checks of labs 1-3: each solution passes, and realistic mistakes fail with a message
that says what is wrong.

The solutions' definitions (imports, constants, functions and classes, not the training cells)
are executed into a namespace; a mistake is the same namespace with one definition replaced.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from course.grading import check
from course.grading.registry import exercises

SOLUTIONS = Path(__file__).parents[1] / "solutions"
EXTRA_NAMES = {"seed_generator"}


def definitions(solution: str) -> dict:
    """The imports, UPPERCASE constants, functions and classes of a solution notebook."""
    tree = ast.parse((SOLUTIONS / solution).read_text())
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            kept.append(node)
        elif isinstance(node, ast.Assign) and all(
            isinstance(target, ast.Name) and (target.id.isupper() or target.id in EXTRA_NAMES)
            for target in node.targets
        ):
            kept.append(node)
    namespace = {"__name__": "__main__"}
    exec(compile(ast.Module(kept, type_ignores=[]), solution, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def lab1():
    return definitions("01_keras_basics.py")


@pytest.fixture(scope="module")
def lab2():
    return definitions("02_vae_mnist.py")


@pytest.fixture(scope="module")
def lab3():
    return definitions("03_vae_counts.py")


def with_mistake(namespace: dict, source: str) -> dict:
    """A copy of ``namespace`` in which ``source`` redefines a function or class."""
    changed = dict(namespace)
    exec(textwrap.dedent(source), changed)
    return changed


def message(exercise_id: str, namespace: dict) -> str:
    """The failure message of one exercise's check (fails the test if the check passes)."""
    result = check(exercise_id, namespace=namespace)
    assert not result.passed, f"exercise {exercise_id} passed a wrong answer"
    assert "Traceback" not in result.message
    return result.message


@pytest.mark.parametrize("lab, fixture", [(1, "lab1"), (2, "lab2"), (3, "lab3")])
def test_every_exercise_passes_on_the_solution(lab, fixture, request):
    namespace = request.getfixturevalue(fixture)
    for entry in exercises(lab):
        result = check(entry.id, namespace=namespace)
        assert result.passed, f"{entry.id}: {result.message}"
        assert result.points == entry.points > 0


def test_each_lab_has_three_to_six_exercises_with_titles():
    for lab in (1, 2, 3):
        entries = exercises(lab)
        assert 3 <= len(entries) <= 6
        assert all(entry.title for entry in entries)


# --- Lab 1 -------------------------------------------------------------------------------


STANDARDIZE_MISTAKES = {
    "over cells": (
        """
        def standardize(expression):
            mean = ops.mean(expression, axis=1, keepdims=True)
            return (expression - mean) / (ops.std(expression, axis=1, keepdims=True) + 1e-6)
        """,
        "you standardized each cell (row)",
    ),
    "no epsilon": (
        """
        def standardize(expression):
            mean = ops.mean(expression, axis=0, keepdims=True)
            return (expression - mean) / ops.std(expression, axis=0, keepdims=True)
        """,
        "add a small epsilon",
    ),
    "variance": (
        """
        def standardize(expression):
            mean = ops.mean(expression, axis=0, keepdims=True)
            return (expression - mean) / (ops.var(expression, axis=0, keepdims=True) + 1e-6)
        """,
        "not by the variance",
    ),
}


@pytest.mark.parametrize("mistake", list(STANDARDIZE_MISTAKES))
def test_standardize_mistakes_are_explained(lab1, mistake):
    source, phrase = STANDARDIZE_MISTAKES[mistake]
    assert phrase in message("1.1", with_mistake(lab1, source))


ENCODER_MISTAKES = {
    "linear": (
        """
        def build_encoder(n_genes, latent_dim):
            inputs = keras.Input((n_genes,))
            hidden = layers.Dense(128)(inputs)
            return keras.Model(inputs, layers.Dense(latent_dim)(hidden))
        """,
        "the encoder is linear",
    ),
    "relu code": (
        """
        def build_encoder(n_genes, latent_dim):
            inputs = keras.Input((n_genes,))
            hidden = layers.Dense(128, activation="relu")(inputs)
            return keras.Model(inputs, layers.Dense(latent_dim, activation="relu")(hidden))
        """,
        "the code is never negative",
    ),
    "no model": (
        """
        def build_encoder(n_genes, latent_dim):
            inputs = keras.Input((n_genes,))
            return layers.Dense(latent_dim)(layers.Dense(128, activation="relu")(inputs))
        """,
        "return keras.Model(inputs, outputs",
    ),
}


@pytest.mark.parametrize("mistake", list(ENCODER_MISTAKES))
def test_encoder_mistakes_are_explained(lab1, mistake):
    source, phrase = ENCODER_MISTAKES[mistake]
    assert phrase in message("1.2", with_mistake(lab1, source))


LOSS_MISTAKES = {
    "mean over genes": (
        "def reconstruction_loss(x, y):\n    return ops.mean(ops.square(x - y))",
        "you averaged over the genes too",
    ),
    "per cell": (
        "def reconstruction_loss(x, y):\n    return ops.sum(ops.square(x - y), axis=-1)",
        "returns one value per cell",
    ),
    "absolute": (
        "def reconstruction_loss(x, y):\n    return ops.mean(ops.sum(ops.abs(x - y), axis=-1))",
        "not absolute values",
    ),
}


@pytest.mark.parametrize("mistake", list(LOSS_MISTAKES))
def test_reconstruction_loss_mistakes_are_explained(lab1, mistake):
    source, phrase = LOSS_MISTAKES[mistake]
    assert phrase in message("1.3", with_mistake(lab1, source))


AUTOENCODER_STEP = """
class Autoencoder(Autoencoder):
    def train_step(self, data):
        expression, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        {body}
        self.loss_tracker.update_state(loss)
        return {{"loss": self.loss_tracker.result()}}
"""
TRAIN_STEP_MISTAKES = {
    "never applies gradients": (
        """with tf.GradientTape() as tape:
            loss = reconstruction_loss(expression, self(expression, training=True))""",
        "train_step never changed the weights",
    ),
    "loss outside the tape": (
        """with tf.GradientTape() as tape:
            reconstruction = self(expression, training=True)
        loss = reconstruction_loss(expression, reconstruction)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)""",
        "no gradient reached the weights",
    ),
    "gradient ascent": (
        """with tf.GradientTape() as tape:
            loss = reconstruction_loss(expression, self(expression, training=True))
            negative_loss = -loss
        gradients = tape.gradient(negative_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)""",
        "the loss went up",
    ),
}


@pytest.mark.parametrize("mistake", list(TRAIN_STEP_MISTAKES))
def test_train_step_mistakes_are_explained(lab1, mistake):
    body, phrase = TRAIN_STEP_MISTAKES[mistake]
    source = AUTOENCODER_STEP.format(body=body)
    assert phrase in message("1.4", with_mistake(lab1, source))


# --- Lab 2 -------------------------------------------------------------------------------


SAMPLER_MISTAKES = {
    "no noise": ("def sample_z(z_mean, z_log_var):\n    return z_mean", "did you forget epsilon"),
    "fixed seed": (
        """
        def sample_z(z_mean, z_log_var):
            epsilon = keras.random.normal(ops.shape(z_mean), seed=1)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon
        """,
        "returns the same value every call",
    ),
    "exp(log_var)": (
        """
        def sample_z(z_mean, z_log_var):
            epsilon = keras.random.normal(ops.shape(z_mean), seed=seed_generator)
            return z_mean + ops.exp(z_log_var) * epsilon
        """,
        "the standard deviation is exp(0.5 * z_log_var)",
    ),
    "numpy noise breaks the gradient": (
        """
        def sample_z(z_mean, z_log_var):
            sigma = np.exp(0.5 * ops.convert_to_numpy(z_log_var))
            return z_mean + sigma * np.random.normal(size=sigma.shape).astype("float32")
        """,
        "no gradient reaches z_log_var",
    ),
}


@pytest.mark.parametrize("mistake", list(SAMPLER_MISTAKES))
def test_sampler_mistakes_are_explained(lab2, mistake):
    source, phrase = SAMPLER_MISTAKES[mistake]
    assert phrase in message("2.1", with_mistake(lab2, source))


KL_MISTAKES = {
    "wrong sign": (
        "def kl_divergence(m, v):\n"
        "    return 0.5 * ops.sum(1.0 + v - ops.square(m) - ops.exp(v), axis=-1)",
        "KL is negative: check the sign",
    ),
    "mean over dimensions": (
        "def kl_divergence(m, v):\n"
        "    return -0.5 * ops.mean(1.0 + v - ops.square(m) - ops.exp(v), axis=-1)",
        "mean over the latent dimensions",
    ),
    "no sum": (
        "def kl_divergence(m, v):\n    return -0.5 * (1.0 + v - ops.square(m) - ops.exp(v))",
        "sum over the latent dimensions (axis=-1)",
    ),
    "missing the 1": (
        "def kl_divergence(m, v):\n    return -0.5 * ops.sum(v - ops.square(m) - ops.exp(v), -1)",
        "not 0, when the posterior equals the prior",
    ),
}


@pytest.mark.parametrize("mistake", list(KL_MISTAKES))
def test_kl_mistakes_are_explained(lab2, mistake):
    source, phrase = KL_MISTAKES[mistake]
    assert phrase in message("2.2", with_mistake(lab2, source))


VAE_STEP = """
class DigitVAE(DigitVAE):
    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            z = {z}
            reconstruction_loss = self.reconstruction_loss(images, self.decoder(z, training=True))
            kl_loss = kl_divergence(z_mean, z_log_var)
            loss = {loss}
        {update}
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.kl_loss_tracker.update_state(ops.mean(kl_loss))
        return {{metric.name: metric.result() for metric in self.metrics}}
"""
APPLY = "self.optimizer.apply(tape.gradient(loss, self.trainable_weights), self.trainable_weights)"
RIGHT_STEP = {"z": "sample_z(z_mean, z_log_var)", "loss": "ops.mean(reconstruction_loss + kl_loss)",
              "update": APPLY}
VAE_STEP_MISTAKES = {
    "no KL": ({"loss": "ops.mean(reconstruction_loss)"}, "reconstruction loss alone: add the KL"),
    "KL subtracted": ({"loss": "ops.mean(reconstruction_loss - kl_loss)"}, "subtracts the KL"),
    "decodes z_mean": ({"z": "z_mean"}, "decode a random z = sample_z(z_mean, z_log_var)"),
    "never applies gradients": ({"update": "pass"}, "never changed the weights"),
}


@pytest.mark.parametrize("mistake", list(VAE_STEP_MISTAKES))
def test_vae_train_step_mistakes_are_explained(lab2, mistake):
    change, phrase = VAE_STEP_MISTAKES[mistake]
    source = VAE_STEP.format(**(RIGHT_STEP | change))
    assert phrase in message("2.3", with_mistake(lab2, source))


def test_the_vae_train_step_template_is_right(lab2):
    assert check("2.3", namespace=with_mistake(lab2, VAE_STEP.format(**RIGHT_STEP))).passed


GRID_MISTAKES = {
    "logits": (
        """
        def decode_grid(decoder, points_per_side=15, extent=2.0):
            values = np.linspace(-extent, extent, points_per_side)
            z0, z1 = np.meshgrid(values, values[::-1])
            z = np.stack([z0.ravel(), z1.ravel()], axis=-1).astype("float32")
            return ops.convert_to_numpy(decoder(z))
        """,
        "values outside [0, 1]",
    ),
    "rows upside down": (
        """
        def decode_grid(decoder, points_per_side=15, extent=2.0):
            values = np.linspace(-extent, extent, points_per_side)
            z0, z1 = np.meshgrid(values, values)
            z = np.stack([z0.ravel(), z1.ravel()], axis=-1).astype("float32")
            return ops.convert_to_numpy(ops.sigmoid(decoder(z)))
        """,
        "the grid points are in another order",
    ),
}


@pytest.mark.parametrize("mistake", list(GRID_MISTAKES))
def test_decode_grid_mistakes_are_explained(lab2, mistake):
    source, phrase = GRID_MISTAKES[mistake]
    assert phrase in message("2.4", with_mistake(lab2, source))


# --- Lab 3 -------------------------------------------------------------------------------


NB_MISTAKES = {
    "no lgamma terms": (
        """
        def nb_log_likelihood(x, mu, theta):
            log_theta_mu = ops.log(theta + mu + EPSILON)
            return (theta * (ops.log(theta + EPSILON) - log_theta_mu)
                    + x * (ops.log(mu + EPSILON) - log_theta_mu))
        """,
        "you left out the log binomial coefficient",
    ),
    "no lgamma(x + 1)": (
        """
        def nb_log_likelihood(x, mu, theta):
            log_theta_mu = ops.log(theta + mu + EPSILON)
            return (tf.math.lgamma(x + theta) - tf.math.lgamma(theta)
                    + theta * (ops.log(theta + EPSILON) - log_theta_mu)
                    + x * (ops.log(mu + EPSILON) - log_theta_mu))
        """,
        "lgamma(x + 1) term is missing",
    ),
    "mu and theta swapped": (
        """
        _right = nb_log_likelihood
        def nb_log_likelihood(x, mu, theta):
            return _right(x, theta, mu)
        """,
        "mu and theta have swapped places",
    ),
    "summed over genes": (
        """
        _right = nb_log_likelihood
        def nb_log_likelihood(x, mu, theta):
            return ops.sum(_right(x, mu, theta), axis=-1)
        """,
        "do not sum",
    ),
}


@pytest.mark.parametrize("mistake", list(NB_MISTAKES))
def test_nb_log_likelihood_mistakes_are_explained(lab3, mistake):
    source, phrase = NB_MISTAKES[mistake]
    assert phrase in message("3.1", with_mistake(lab3, source))


EXPECTED_COUNTS_MISTAKES = {
    "library size ignored": (
        "def expected_counts(logits, counts):\n    return ops.softmax(logits, axis=-1)",
        "library size ignored",
    ),
    "softmax over cells": (
        "def expected_counts(logits, counts):\n"
        "    return ops.sum(counts, -1, keepdims=True) * ops.softmax(logits, axis=0)",
        "the softmax runs over the cells",
    ),
    "batch total": (
        "def expected_counts(logits, counts):\n"
        "    return ops.sum(counts) * ops.softmax(logits, axis=-1)",
        "total count of the whole batch",
    ),
}


@pytest.mark.parametrize("mistake", list(EXPECTED_COUNTS_MISTAKES))
def test_expected_counts_mistakes_are_explained(lab3, mistake):
    source, phrase = EXPECTED_COUNTS_MISTAKES[mistake]
    assert phrase in message("3.2", with_mistake(lab3, source))


DENOISE_MISTAKES = {
    "raw counts": (
        "def denoised_expression(vae, counts):\n"
        "    return np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)",
        "start from the model's reconstruction",
    ),
    "not normalized": (
        "def denoised_expression(vae, counts):\n    return np.log1p(vae.reconstruct(counts))",
        "scale each cell to 10,000 counts",
    ),
}


@pytest.mark.parametrize("mistake", list(DENOISE_MISTAKES))
def test_denoised_expression_mistakes_are_explained(lab3, mistake):
    source, phrase = DENOISE_MISTAKES[mistake]
    assert phrase in message("3.3", with_mistake(lab3, source))


def test_an_unimplemented_exercise_says_so(lab2):
    stub = "def kl_divergence(m, v):\n    raise NotImplementedError('Exercise 2.2: the hint')"
    assert message("2.2", with_mistake(lab2, stub)) == "not implemented yet: Exercise 2.2: the hint"
