"""Lab 1's checks: each realistic mistake loses the exercise's points with a hint that names
the mistake (that the solution passes, for every lab: tests/test_lab_structure.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    grade,
    solution_namespace,
    with_mistake,
)

from course.grading.registry import get_exercise, judge, make_inputs, run_probe


@pytest.fixture(scope="module")
def lab1():
    return solution_namespace(1)


STANDARDIZE = "def standardize(expression):\n    return {}\n"
STANDARDIZE_MISTAKES = {
    "over cells": (
        "(expression - ops.mean(expression, axis=1, keepdims=True)) "
        "/ (ops.std(expression, axis=1, keepdims=True) + 1e-6)",
        "you standardized each cell (row)",
    ),
    "no epsilon": (
        "(expression - ops.mean(expression, axis=0)) / ops.std(expression, axis=0)",
        "the small epsilon in the denominator",
    ),
    "variance": (
        "(expression - ops.mean(expression, axis=0)) / (ops.var(expression, axis=0) + 1e-6)",
        "you divided by the variance",
    ),
    "whole matrix": (
        "(expression - ops.mean(expression)) / (ops.std(expression) + 1e-6)",
        "one mean and one standard deviation for the whole matrix",
    ),
    "not scaled": ("expression - ops.mean(expression, axis=0)", "centred but not scaled"),
    "not centred": ("expression / (ops.std(expression, axis=0) + 1e-6)", "scaled but not centred"),
    "precedence": (
        "expression - ops.mean(expression, axis=0) / (ops.std(expression, axis=0) + 1e-6)",
        "operator precedence",
    ),
    "no return": ("None", "did you forget the `return`"),
}


@pytest.mark.parametrize("mistake", list(STANDARDIZE_MISTAKES))
def test_standardize_mistakes_lose_the_points(lab1, mistake):
    body, hint = STANDARDIZE_MISTAKES[mistake]
    assert hint in failure_message("1.1", with_mistake(lab1, STANDARDIZE.format(body)))


def test_standardize_accepts_the_sample_standard_deviation(lab1):
    source = """
    def standardize(expression):
        return (expression - expression.mean(0)) / (expression.std(0, ddof=1) + 1e-6)
    """
    assert_passes("1.1", with_mistake(lab1, source))


ENCODER = """
def build_encoder(n_genes, latent_dim):
    inputs = keras.Input(({genes},))
    hidden = layers.Dense({units}, activation={hidden})(inputs)
    return {model}(inputs, layers.Dense({latent}, activation={code})(hidden))
"""
RIGHT_ENCODER = {"genes": "n_genes", "units": 128, "hidden": "'relu'", "latent": "latent_dim",
                 "code": None, "model": "keras.Model"}
ENCODER_MISTAKES = {
    "tanh code": ({"code": "'tanh'"}, "the code passes through tanh"),
    "sigmoid code": ({"code": "'sigmoid'"}, "the code passes through sigmoid"),
    "relu code": ({"code": "'relu'"}, "the code is never negative"),
    "linear hidden": ({"hidden": None}, "the whole encoder is linear"),
    "sigmoid hidden": ({"hidden": "'sigmoid'"}, "the hidden layer uses sigmoid"),
    "latent_dim hard-coded": ({"latent": 2}, "but latent_dim ="),
    "n_genes hard-coded": ({"genes": 765}, "build its keras.Input from the n_genes argument"),
    "64 hidden units": ({"units": 64}, "the hidden layer has 64 units"),
    "returns a tensor": ({"model": ""}, "not a model: return keras.Model"),
}


@pytest.mark.parametrize("mistake", list(ENCODER_MISTAKES))
def test_encoder_mistakes_lose_the_points(lab1, mistake):
    change, hint = ENCODER_MISTAKES[mistake]
    source = ENCODER.format(**(RIGHT_ENCODER | change))
    assert hint in failure_message("1.2", with_mistake(lab1, source))


def test_the_encoder_template_is_right(lab1):
    assert_passes("1.2", with_mistake(lab1, ENCODER.format(**RIGHT_ENCODER)), seeds=[0])


def test_an_encoder_without_hidden_layer_or_return_loses_the_points(lab1):
    no_hidden = """
    def build_encoder(n_genes, latent_dim):
        inputs = keras.Input((n_genes,))
        return keras.Model(inputs, layers.Dense(latent_dim)(inputs))
    """
    assert "no hidden layer" in failure_message("1.2", with_mistake(lab1, no_hidden))
    no_return = edited_namespace(1, "build_encoder", old="return keras.Model", new="keras.Model")
    assert "did you forget the `return`" in failure_message("1.2", no_return)


LOSS = "def reconstruction_loss(x, y):\n    return {}\n"
LOSS_MISTAKES = {
    "mean over genes": ("ops.mean(ops.square(x - y))", "you averaged over the genes too"),
    "keras mse": ("ops.mean(keras.losses.mean_squared_error(x, y))",
                  "you averaged over the genes too"),
    "per cell": ("ops.sum(ops.square(x - y), axis=-1)", "returns one value per cell"),
    "sum over cells": ("ops.sum(ops.square(x - y))", "you summed over the cells as well"),
    "absolute": ("ops.mean(ops.sum(ops.abs(x - y), axis=-1))", "absolute differences"),
    "not squared": ("ops.mean(ops.sum(x - y, axis=-1))", "the differences are not squared"),
    "distance": ("ops.mean(ops.sqrt(ops.sum(ops.square(x - y), axis=-1)))",
                 "you took a square root"),
    "half": ("0.5 * ops.mean(ops.sum(ops.square(x - y), axis=-1))", "no factor 1/2"),
    "axes swapped": ("ops.mean(ops.sum(ops.square(x - y), axis=0))", "the axes are swapped"),
    "per gene": ("ops.sum(ops.square(x - y), axis=0)", "returns one value per gene"),
}


@pytest.mark.parametrize("mistake", list(LOSS_MISTAKES))
def test_reconstruction_loss_mistakes_lose_the_points(lab1, mistake):
    body, hint = LOSS_MISTAKES[mistake]
    assert hint in failure_message("1.3", with_mistake(lab1, LOSS.format(body)))


STEP = """
class Autoencoder(Autoencoder):
    def train_step(self, data):
        expression, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        {body}
        self.loss_tracker.update_state(loss)
        return {{"loss": self.loss_tracker.result()}}
"""
RIGHT_STEP = """with tf.GradientTape() as tape:
            loss = reconstruction_loss(expression, self(expression, training=True))
        gradients = tape.gradient(loss, {weights})
        self.optimizer.apply(gradients, {weights})"""
TRAIN_STEP_MISTAKES = {
    "decoder never trained": (
        RIGHT_STEP.format(weights="self.encoder.trainable_weights"),
        "the decoder is never trained",
    ),
    "encoder never trained": (
        RIGHT_STEP.format(weights="self.decoder.trainable_weights"),
        "the encoder is never trained",
    ),
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
        "the step went uphill",
    ),
    "mean squared error": (
        """with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(expression - self(expression, training=True)))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)""",
        "averaged over the genes",
    ),
    "summed loss differentiated": (
        """with tf.GradientTape() as tape:
            reconstruction = self(expression, training=True)
            loss = reconstruction_loss(expression, reconstruction)
            total = ops.sum(ops.square(expression - reconstruction))
        gradients = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)""",
        "times the gradient step",
    ),
    "numpy inside the step (fit traces it)": (
        """with tf.GradientTape() as tape:
            loss = reconstruction_loss(expression, self(expression, training=True))
        print("loss", loss.numpy())
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)""",
        "has no attribute 'numpy'",
    ),
}


@pytest.mark.parametrize("mistake", list(TRAIN_STEP_MISTAKES))
def test_train_step_mistakes_lose_the_points(lab1, mistake):
    body, hint = TRAIN_STEP_MISTAKES[mistake]
    source = STEP.format(body=body)
    assert hint in failure_message("1.4", with_mistake(lab1, source))


def test_the_train_step_template_is_right(lab1):
    source = STEP.format(body=RIGHT_STEP.format(weights="self.trainable_weights"))
    assert_passes("1.4", with_mistake(lab1, source), seeds=[0])


def with_loss(source: str) -> dict:
    """Lab 1's namespace with ``source`` redefining reconstruction_loss in place, so that the
    solution's train_step calls it (as in a notebook)."""
    namespace = solution_namespace(1)
    exec(source, namespace)
    return namespace


# The case and a loss that cannot run stay in the fast suite (2-4 s each).
FAST_LOSS_CASES = {"mean over genes", "not implemented"}


@pytest.mark.parametrize("mistake", [
    name if name in FAST_LOSS_CASES else pytest.param(name, marks=pytest.mark.slow)
    for name in [*LOSS_MISTAKES, "not implemented"]
])
def test_a_mistake_in_the_loss_costs_the_loss_alone_not_the_step(lab1, mistake):
    """1.4 is judged with the student's own reconstruction_loss (1.3)."""
    body = LOSS_MISTAKES.get(mistake, ("keras.ops.nonexistent",))[0]
    namespace = with_loss(LOSS.format(body))
    assert not grade("1.3", namespace).passed
    if mistake == "not implemented":  # no loss to train with: the step cannot work
        assert not grade("1.4", namespace).passed
    else:
        assert_passes("1.4", namespace, seeds=[0])


@pytest.mark.parametrize("mistake", ["mean over genes",
                                     pytest.param("half", marks=pytest.mark.slow)])
def test_a_step_that_ignores_a_wrong_loss_is_judged_with_the_labs_loss(lab1, mistake):
    """A correct loss written inside the step passes; a wrong one is named precisely."""
    namespace = with_loss(LOSS.format(LOSS_MISTAKES[mistake][0]))
    inline = "ops.mean(ops.sum(ops.square(expression - self(expression, training=True)), axis=-1))"
    body = RIGHT_STEP.format(weights="self.trainable_weights").replace(
        "reconstruction_loss(expression, self(expression, training=True))", inline)
    assert_passes("1.4", with_mistake(namespace, STEP.format(body=body)), seeds=[0])
    assert "averaged over the genes, but reconstruction_loss sums over them" in failure_message(
        "1.4", with_mistake(lab1, STEP.format(body=TRAIN_STEP_MISTAKES["mean squared error"][0])))


@pytest.mark.parametrize("exercise_id", ["1.1", "1.2", "1.3", "1.4"])
def test_outputs_of_other_inputs_do_not_pass(lab1, exercise_id):
    """Outputs recorded for one seed's inputs, or constant outputs, fail on another seed's."""
    entry = get_exercise(exercise_id)
    recorded = run_probe(entry.probe, lab1, make_inputs(entry, seed=0))
    other_inputs = make_inputs(entry, seed=1)
    assert not judge(entry, other_inputs, recorded).passed
    constant = {key: value * 0 + 1 for key, value in recorded.items()}
    assert not judge(entry, other_inputs, constant).passed


def test_the_hand_written_step_equals_the_built_in_step_of_fit(lab1):
    """The lab says both curves look alike 'because the two steps compute the same thing'."""
    rng = np.random.default_rng(0)
    expression = rng.normal(size=(32, 6)).astype("float32")
    parts = [lab1["build_encoder"](6, 2), lab1["build_decoder"](2, 6)]
    initial = [part.get_weights() for part in parts]
    inputs = keras.Input((6,))
    built_in = keras.Model(inputs, parts[1](parts[0](inputs)))
    built_in.compile(optimizer=keras.optimizers.SGD(0.01), loss=lab1["reconstruction_loss"])
    built_in.fit(expression, expression, batch_size=32, epochs=2, shuffle=False, verbose=0)
    expected = [weight for part in parts for weight in part.get_weights()]
    for part, weights in zip(parts, initial):
        part.set_weights(weights)
    hand_written = lab1["Autoencoder"](*parts)
    hand_written.compile(optimizer=keras.optimizers.SGD(0.01))
    hand_written.fit(expression, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for mine, theirs in zip([w for part in parts for w in part.get_weights()], expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
