"""Checks of lab 1, Keras and TensorFlow for expression data (solutions/01_keras_basics.py).

The verdicts standardize random expression matrices, rebuild the encoder's codes from its
weights and recompute the loss and one SGD step of a dense autoencoder, then name the usual
mistakes: statistics over cells instead of genes, no epsilon, a missing activation, a loss
averaged over the wrong axis. The training step (1.4) is judged with the student's own loss
(1.3), so that one mistake in the loss costs 1.3 alone.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.steps import expect_training_step, gradient_step
from course.grading.checks.tools import close, expect_finite, expect_keys, expect_shape
from course.grading.probes import lab01 as probes
from course.grading.registry import CheckFailed, exercise

EPSILON = 1e-6
HIDDEN_UNITS = 128


# --- 1.1 --------------------------------------------------------------------------------------


def standardize_inputs(rng):
    """Genes of random levels and spreads in 30-60 cells; one gene is the same in every cell."""
    n_cells, n_genes = int(rng.integers(30, 61)), int(rng.integers(5, 10))
    levels = rng.uniform(0.5, 4.0, n_genes)
    spreads = rng.uniform(0.2, 2.5, n_genes)
    expression = levels + spreads * rng.normal(size=(n_cells, n_genes))
    # An exactly representable value, so every way of averaging it gives it back exactly.
    expression[:, rng.integers(n_genes)] = rng.choice([1.5, 2.0, 2.5, 3.0])
    return {"expression": expression.astype("float32")}


@exercise("1.1", points=2, title="Standardize each gene", probe=probes.standardize,
          inputs=standardize_inputs)
def standardize_verdict(inputs, outputs):
    expect_keys(outputs, ["standardized"])
    x = np.float64(inputs["expression"])
    result = np.asarray(outputs["standardized"], np.float64)
    expect_shape(result, x.shape, "standardize(expression)",
                 "return a matrix of the same shape as the input")
    expect_finite(result, "the standardized matrix",
                  "a gene with the same value in every cell has standard deviation 0; the "
                  "small epsilon in the denominator is there for it")
    varying = x.std(axis=0) > 0
    mean, std = x.mean(axis=0), x.std(axis=0)
    # rtol 2e-2 also accepts the sample standard deviation (n - 1) of 30 or more cells.
    if close(result[:, varying], ((x - mean) / (std + EPSILON))[:, varying], 2e-2, 1e-3):
        if np.allclose(result[:, ~varying], 0.0, atol=1e-2):
            return
        raise CheckFailed("a gene with the same value in every cell should become 0 "
                          "everywhere: subtract its mean before dividing")
    row_mean, row_std = x.mean(axis=1, keepdims=True), x.std(axis=1, keepdims=True)
    mistakes = [
        ((x - row_mean) / (row_std + EPSILON),
         "you standardized each cell (row); standardize each gene (column): its mean and "
         "standard deviation come from reducing over the cells, axis 0"),
        ((x - x.mean()) / (x.std() + EPSILON),
         "you used one mean and one standard deviation for the whole matrix: each gene needs "
         "its own, reduced over the cells only (axis 0, keepdims=True)"),
        ((x - mean) / (std**2 + EPSILON),
         "you divided by the variance: scale each gene by its standard deviation, the square "
         "root of the variance"),
        (x - mean,
         "the genes are centred but not scaled: divide by each gene's standard deviation"),
        (x / (std + EPSILON),
         "the genes are scaled but not centred: subtract each gene's mean first"),
        (x - mean / (std + EPSILON),
         "you divided only the mean by the standard deviation: mind the operator precedence, "
         "put the difference in parentheses"),
    ]
    for expected, message in mistakes:
        if close(result[:, varying], expected[:, varying], 2e-2, 1e-3):
            raise CheckFailed(message)
    means, stds = result[:, varying].mean(axis=0), result[:, varying].std(axis=0)
    raise CheckFailed(
        f"the genes' means over the cells are {np.round(means, 2).tolist()[:4]} and their "
        f"standard deviations {np.round(stds, 2).tolist()[:4]}: each gene should have mean 0 "
        "and standard deviation 1"
    )


# --- 1.2 --------------------------------------------------------------------------------------


def encoder_inputs(rng):
    """Random sizes, random weights of a Dense(128) + Dense(latent_dim) encoder, random cells."""
    n_genes, latent_dim = int(rng.integers(5, 13)), int(rng.integers(2, 6))
    shapes = [(n_genes, HIDDEN_UNITS), (HIDDEN_UNITS,), (HIDDEN_UNITS, latent_dim), (latent_dim,)]
    fan_in = [n_genes, 1, HIDDEN_UNITS, 1]
    inputs = {
        f"weight_{index}": (rng.normal(size=shape) * 1.5 / np.sqrt(fan)).astype("float32")
        for index, (shape, fan) in enumerate(zip(shapes, fan_in))
    }
    inputs["expression"] = (1.5 * rng.normal(size=(32, n_genes))).astype("float32")
    inputs["n_genes"], inputs["latent_dim"] = np.int64(n_genes), np.int64(latent_dim)
    return inputs


def _softmax(values):
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


# The activations a student might put on the hidden layer or the code.
ACTIVATIONS = {
    "linear": lambda values: values,
    "relu": lambda values: np.maximum(values, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda values: 1.0 / (1.0 + np.exp(-values)),
    "softmax": _softmax,
}


@exercise("1.2", points=2, title="An encoder with the functional API", probe=probes.encoder,
          inputs=encoder_inputs)
def encoder_verdict(inputs, outputs):
    expect_keys(outputs, ["weight_shapes", "n_outputs", "weights_set"])
    n_genes, latent_dim = int(inputs["n_genes"]), int(inputs["latent_dim"])
    if int(outputs["n_outputs"]) != 1:
        raise CheckFailed(f"the encoder has {int(outputs['n_outputs'])} outputs; it should "
                          "have one, the code")
    if not int(outputs["weights_set"]):
        _explain_weight_shapes(np.asarray(outputs["weight_shapes"]), n_genes, latent_dim)
    expect_keys(outputs, ["codes"])
    codes = np.asarray(outputs["codes"], np.float64)
    expect_shape(codes, (len(inputs["expression"]), latent_dim),
                 f"the code of {len(inputs['expression'])} cells (latent_dim={latent_dim})")
    w0, b0, w1, b1 = (np.float64(inputs[f"weight_{index}"]) for index in range(4))
    pre_hidden = np.float64(inputs["expression"]) @ w0 + b0
    found = {
        (hidden, code): ACTIVATIONS[code](ACTIVATIONS[hidden](pre_hidden) @ w1 + b1)
        for hidden in ACTIVATIONS if hidden != "softmax" for code in ACTIVATIONS
    }
    match = next((key for key, value in found.items() if close(codes, value)), None)
    if match == ("relu", "linear"):
        return
    if match and match[0] == "relu":
        if match[1] == "relu":
            raise CheckFailed("the code is never negative: a code may be any real number, so "
                              "the last Dense layer takes no activation")
        raise CheckFailed(f"the code passes through {match[1]}, which squashes it into a small "
                          "range: a code may be any real number, so the last Dense layer takes "
                          "no activation")
    if match and match[0] == "linear":
        raise CheckFailed("the hidden layer has no activation, so the whole encoder is linear: "
                          "give the hidden Dense layer a ReLU")
    if match:
        raise CheckFailed(f"the hidden layer uses {match[0]}; the lab asks for a ReLU "
                          "(activation='relu')")
    if np.abs(codes).max() <= 1.0 < np.abs(found["relu", "linear"]).max():
        raise CheckFailed("the code never leaves [-1, 1]: a squashing activation bounds it; "
                          "the last Dense layer takes no activation")
    raise CheckFailed("the codes are not those of Dense(128, ReLU) followed by a Dense layer "
                      "without activation: is there anything else between input and code?")


def _explain_weight_shapes(shapes: np.ndarray, n_genes: int, latent_dim: int) -> None:
    """Raise a hint on why the encoder's weights are not those of Dense(128) -> Dense(code)."""
    kernels = [row[:2] for row in shapes if row[1] >= 0 and row[2] < 0]
    if not kernels:
        raise CheckFailed("the encoder has no Dense layer: build it from keras.Input through "
                          "a hidden Dense layer to the code")
    if kernels[0][0] != n_genes:
        raise CheckFailed(f"the encoder expects {kernels[0][0]} inputs, but n_genes = "
                          f"{n_genes}: build its keras.Input from the n_genes argument")
    if kernels[-1][1] != latent_dim:
        raise CheckFailed(f"the code has {kernels[-1][1]} units, but latent_dim = {latent_dim}: "
                          "the last Dense layer needs latent_dim units (use the argument)")
    if len(kernels) == 1:
        raise CheckFailed("the encoder has no hidden layer: put a Dense layer of 128 units "
                          "with a ReLU between the input and the code")
    if len(kernels) > 2:
        raise CheckFailed(f"the encoder has {len(kernels)} Dense layers; the lab asks for one "
                          "hidden layer of 128 units and the code layer")
    if kernels[0][1] != HIDDEN_UNITS:
        raise CheckFailed(f"the hidden layer has {kernels[0][1]} units; the lab asks for "
                          f"{HIDDEN_UNITS}")
    described = ", ".join(str(tuple(int(d) for d in row if d >= 0)) for row in shapes)
    raise CheckFailed(f"the encoder's weights have shapes {described}: expected a Dense layer "
                      f"of {HIDDEN_UNITS} units, then one of latent_dim units (both with biases)")


# --- 1.3 --------------------------------------------------------------------------------------


def loss_inputs(rng):
    """A random batch of cells and a noisy reconstruction of it (more cells than genes)."""
    n_genes = int(rng.integers(3, 9))
    n_cells = int(rng.integers(n_genes + 2, 21))
    expression = rng.normal(size=(n_cells, n_genes)) * rng.uniform(0.5, 3.0)
    noise = rng.normal(size=expression.shape) * rng.uniform(0.3, 1.5, n_genes)
    return {"expression": expression.astype("float32"),
            "reconstruction": (expression + noise).astype("float32")}


@exercise("1.3", points=2, title="The reconstruction loss", probe=probes.reconstruction_loss,
          inputs=loss_inputs)
def reconstruction_loss_verdict(inputs, outputs):
    expect_keys(outputs, ["loss", "perfect"])
    x = np.float64(inputs["expression"])
    difference = x - np.float64(inputs["reconstruction"])
    n_cells, n_genes = x.shape
    loss = np.asarray(outputs["loss"], np.float64)
    if loss.shape == (n_cells,):
        raise CheckFailed("reconstruction_loss returns one value per cell: average them over "
                          "the cells to get one number")
    if loss.shape == (n_genes,):
        raise CheckFailed("reconstruction_loss returns one value per gene: sum over the genes "
                          "of each cell, then average over the cells")
    if loss.shape == x.shape:
        raise CheckFailed("reconstruction_loss returns one value per cell and gene: reduce it "
                          "to one number")
    expect_shape(loss, (), "reconstruction_loss", "return a single number")
    expect_finite(loss, "reconstruction_loss")
    perfect = np.asarray(outputs["perfect"], np.float64)
    if perfect.shape == () and abs(float(perfect)) > 1e-5:
        raise CheckFailed(f"the loss of a perfect reconstruction is {float(perfect):.3g}, not 0")
    squared = difference**2
    expected = squared.sum(axis=-1).mean()
    if np.isclose(loss, expected, rtol=1e-4):
        return
    mistakes = [
        (squared.mean(),
         "you averaged over the genes too: a cell's error is the sum over its genes; only the "
         "cells are averaged"),
        (squared.sum(),
         "you summed over the cells as well: average over the cells, so that the batch size "
         "does not change the loss"),
        (squared.sum(axis=0).mean(),
         "the axes are swapped: you summed over the cells and averaged over the genes; sum "
         "each cell's errors over its genes, then average over the cells"),
        (np.abs(difference).sum(axis=-1).mean(),
         "you used absolute differences (an L1 loss): the lab's loss squares them"),
        (difference.sum(axis=-1).mean(),
         "the differences are not squared, so positive and negative errors cancel"),
        (np.sqrt(squared.sum(axis=-1)).mean(),
         "you took a square root (a distance): the loss is the squared error itself"),
        (np.sqrt(squared.mean()),
         "this is the root-mean-square error: the loss is the squared error summed over genes, "
         "averaged over cells, without a square root"),
        (0.5 * expected,
         "the loss is half the squared error: the lab's loss has no factor 1/2"),
    ]
    for value, message in mistakes:
        if np.isclose(loss, value, rtol=1e-4):
            raise CheckFailed(message)
    raise CheckFailed(f"the loss is {float(loss):.4g}; the squared error summed over genes and "
                      f"averaged over cells is {expected:.4g}")


# --- 1.4 --------------------------------------------------------------------------------------


def train_step_inputs(rng):
    """Random weights of a small dense autoencoder, a random low-rank batch, a learning rate."""
    n_genes, latent_dim, hidden = int(rng.integers(4, 9)), 2, 16
    inputs = {}
    for part, sizes in (("encoder", (n_genes, hidden, latent_dim)),
                        ("decoder", (latent_dim, hidden, n_genes))):
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            kernel = rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)
            inputs[f"{part}_{2 * layer}"] = kernel.astype("float32")
            inputs[f"{part}_{2 * layer + 1}"] = (0.1 * rng.normal(size=fan_out)).astype("float32")
    factors = rng.normal(size=(32, 2)) @ rng.normal(size=(2, n_genes))
    inputs["expression"] = (factors + 0.1 * rng.normal(size=factors.shape)).astype("float32")
    inputs["learning_rate"] = np.float64(rng.uniform(0.005, 0.02))
    return inputs


def _reconstruct(x, weights):
    """The dense autoencoder's reconstruction of ``x`` with ``weights`` (TensorFlow)."""
    import tensorflow as tf

    hidden = tf.nn.relu(x @ weights[0] + weights[1])
    code = hidden @ weights[2] + weights[3]
    hidden = tf.nn.relu(code @ weights[4] + weights[5])
    return hidden @ weights[6] + weights[7]


def _autoencoder_loss(x, weights):
    """The reconstruction loss of ``x`` through the dense autoencoder with ``weights`` (TF)."""
    import tensorflow as tf

    return tf.reduce_mean(tf.reduce_sum(tf.square(x - _reconstruct(x, weights)), axis=-1))


def _own_loss_step(inputs, outputs, weights):
    """The student's loss and the SGD step it implies, from the probe's ``own_loss`` and its
    gradient with respect to the reconstruction (chain rule through the grader's networks);
    None when the probe could not get them or they are not a usable scalar loss."""
    import tensorflow as tf

    if not int(outputs.get("own_loss_ok", 0)) or "own_loss_gradient" not in outputs:
        return None
    x = np.float64(inputs["expression"])
    loss = np.asarray(outputs.get("own_loss"), np.float64)
    gradient = np.asarray(outputs["own_loss_gradient"], np.float64)
    # A loss of one value per cell or gene: Keras logs its mean and differentiates its sum.
    if loss.ndim > 1 or gradient.shape != x.shape or not np.isfinite(gradient).all():
        return None
    loss = loss.mean()
    variables = [tf.Variable(weight) for weight in weights]
    with tf.GradientTape() as tape:
        reconstruction = _reconstruct(tf.constant(x), variables)
    gradients = tape.gradient(reconstruction, variables, output_gradients=tf.constant(gradient))
    rate = float(inputs["learning_rate"])
    return float(loss), [v.numpy() - rate * g.numpy() for v, g in zip(variables, gradients)]


@exercise("1.4", points=3, title="A training step with GradientTape", probe=probes.train_step,
          inputs=train_step_inputs)
def train_step_verdict(inputs, outputs):
    """Judged with the student's own reconstruction_loss when it differs from the lab's: a
    mistake in 1.3 costs 1.3 alone."""
    parts = ("encoder", "decoder")
    before = {part: [np.float64(inputs[f"{part}_{i}"]) for i in range(4)] for part in parts}
    weights = before["encoder"] + before["decoder"]
    x = np.float64(inputs["expression"])
    loss, new = gradient_step(lambda variables: _autoencoder_loss(x, variables), weights,
                              float(inputs["learning_rate"]))
    own = _own_loss_step(inputs, outputs, weights)
    loss_name = "the reconstruction loss"
    if not int(outputs.get("no_gradients", 0)):
        expect_keys(outputs, ["log_loss"])
        logged = float(outputs["log_loss"])
        if own and np.isclose(logged, own[0], rtol=1e-3) and _differs(own[1], new):
            (loss, new), loss_name = own, "your reconstruction_loss"
        elif not np.isclose(logged, loss, rtol=1e-3):
            _explain_logged_loss(logged, loss, own, x.shape[1])
    expect_training_step(outputs, before, {"encoder": new[:4], "decoder": new[4:]}, loss_name)


def _differs(weights, reference) -> bool:
    """Whether two steps' weights differ beyond float32 rounding."""
    return any(not np.allclose(mine, theirs, rtol=1e-4, atol=1e-7)
               for mine, theirs in zip(weights, reference))


def _explain_logged_loss(logged, loss, own, n_genes):
    """Raise a hint on why the step's logged loss is neither the lab's loss nor the student's."""
    if np.isclose(logged, loss / n_genes, rtol=1e-3) and (
        own is None or np.isclose(own[0], loss, rtol=1e-3)
    ):
        raise CheckFailed("the loss of your step is averaged over the genes, but "
                          "reconstruction_loss sums over them: compute the step's loss with "
                          "reconstruction_loss(expression, reconstruction)")
    if own is not None:
        raise CheckFailed(f"the loss of your step is {logged:.4g}, but your reconstruction_loss "
                          f"of the batch's reconstruction is {own[0]:.4g}: reconstruct the batch "
                          "with self(...) and compute the loss with reconstruction_loss")
    raise CheckFailed(f"the loss of your step is {logged:.4g}, but the reconstruction loss of "
                      f"the batch is {loss:.4g}: reconstruct the batch with self(...) and "
                      "compute the loss with your reconstruction_loss")
