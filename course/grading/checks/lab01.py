"""Checks of lab 1, Keras and TensorFlow for expression data (solutions/01_keras_basics.py)."""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import (
    expect_finite,
    expect_logs,
    expect_loss_falls,
    expect_shape,
    fit_on_one_batch,
    to_numpy,
)
from course.grading.registry import CheckFailed, exercise


def _expression(n_cells: int = 40, n_genes: int = 6) -> np.ndarray:
    """Log-expression-like values: genes with different levels and spreads, the last constant."""
    rng = np.random.default_rng(1)
    levels = np.linspace(0.5, 4.0, n_genes)
    spreads = np.linspace(0.2, 2.0, n_genes)
    expression = levels + spreads * rng.normal(size=(n_cells, n_genes))
    expression[:, -1] = 3.0
    return expression.astype("float32")


@exercise("1.1", points=2, title="Standardize each gene")
def standardize_gives_genes_mean_0_and_std_1(ns):
    expression = _expression()
    result = to_numpy(ns["standardize"](expression), "standardize")
    expect_shape(result, expression.shape, "standardize(expression)",
                 "return a matrix of the same shape as the input")
    expect_finite(result, "the standardized matrix",
                  "a gene with the same value in every cell has standard deviation 0; add a "
                  "small epsilon (1e-6) to the standard deviation")
    varying = result[:, :-1]
    if not np.allclose(varying.mean(axis=0), 0.0, atol=1e-3):
        if np.allclose(result.mean(axis=1), 0.0, atol=1e-3):
            raise CheckFailed(
                "you standardized each cell (row); standardize each gene (column) over the "
                "cells: reduce over axis=0"
            )
        raise CheckFailed("the genes' means are not 0: subtract each gene's mean over the cells "
                          "(ops.mean with axis=0, keepdims=True)")
    stds = varying.std(axis=0)
    if np.allclose(stds, 1.0, rtol=0.05):
        return
    if np.allclose(stds, 1.0 / expression[:, :-1].std(axis=0), rtol=0.05):
        raise CheckFailed("the genes' standard deviations are not 1: divide by the standard "
                          "deviation (ops.std), not by the variance")
    raise CheckFailed(f"the genes' standard deviations are {np.round(stds, 2).tolist()}, not 1: "
                      "divide by each gene's standard deviation over the cells")


@exercise("1.2", points=2, title="An encoder with the functional API")
def encoder_maps_genes_to_a_nonlinear_code(ns):
    import keras

    n_genes, latent_dim = 7, 3
    encoder = ns["build_encoder"](n_genes, latent_dim)
    if not isinstance(encoder, keras.Model):
        raise CheckFailed(f"build_encoder returned {type(encoder).__name__}; return "
                          "keras.Model(inputs, outputs, name='encoder')")
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=(64, n_genes)).astype("float32") for _ in range(2))
    codes = encoder(a)
    if isinstance(codes, (list, tuple)):
        raise CheckFailed(f"the encoder has {len(codes)} outputs; it should have one, the code")
    codes = to_numpy(codes, "the encoder")
    expect_shape(codes, (64, latent_dim), f"the code of 64 cells (n_genes={n_genes}, "
                 f"latent_dim={latent_dim})", "the last Dense layer needs latent_dim units")
    dense_layers = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense_layers) < 2:
        raise CheckFailed("the encoder has no hidden layer: put a Dense(128, activation='relu') "
                          "between the input and the code")
    if codes.min() >= 0.0:
        raise CheckFailed("the code is never negative: the last Dense layer should have no "
                          "activation")
    zero = np.zeros_like(a)
    additive = to_numpy(encoder(a), "") + to_numpy(encoder(b), "")
    if np.allclose(additive, to_numpy(encoder(a + b), "") + to_numpy(encoder(zero), ""),
                   atol=1e-4):
        raise CheckFailed("the encoder is linear: give the hidden Dense layer "
                          "activation='relu'")


@exercise("1.3", points=2, title="The reconstruction loss")
def loss_sums_over_genes_and_averages_over_cells(ns):
    rng = np.random.default_rng(3)
    n_cells, n_genes = 6, 4
    expression = rng.normal(size=(n_cells, n_genes)).astype("float32")
    reconstruction = rng.normal(size=(n_cells, n_genes)).astype("float32")
    loss_function = ns["reconstruction_loss"]
    loss = to_numpy(loss_function(expression, reconstruction), "reconstruction_loss")
    if loss.shape == (n_cells,):
        raise CheckFailed("reconstruction_loss returns one value per cell: average them over "
                          "the cells with ops.mean to get one number")
    expect_shape(loss, (), "reconstruction_loss", "return a single number")
    perfect = to_numpy(loss_function(expression, expression), "reconstruction_loss")
    if abs(float(perfect)) > 1e-6:
        raise CheckFailed(f"the loss of a perfect reconstruction is {float(perfect):.3g}, not 0")
    difference = expression.astype(np.float64) - reconstruction
    expected = np.mean(np.sum(difference**2, axis=-1))
    mistakes = [
        (expected / n_genes, "you averaged over the genes too: sum the squared errors over the "
                             "genes (axis=-1), then average over the cells"),
        (expected * n_cells, "you summed over the cells: average over the cells (ops.mean) "
                             "after summing over the genes"),
        (np.mean(np.sum(np.abs(difference), axis=-1)), "use squared differences, not absolute "
                                                       "values"),
        (np.mean(np.sum(difference, axis=-1)), "square the differences before summing them"),
    ]
    if np.isclose(loss, expected, rtol=1e-4):
        return
    for value, message in mistakes:
        if np.isclose(loss, value, rtol=1e-4):
            raise CheckFailed(message)
    raise CheckFailed(f"the loss is {float(loss):.4g}; the squared error summed over genes and "
                      f"averaged over cells is {expected:.4g}")


def _tiny_autoencoder_parts(keras, n_genes: int = 5, latent_dim: int = 2):
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((n_genes,))
    hidden = keras.layers.Dense(16, activation="relu", kernel_initializer=init(1))(inputs)
    code = keras.layers.Dense(latent_dim, kernel_initializer=init(2))(hidden)
    encoder = keras.Model(inputs, code)
    code_input = keras.Input((latent_dim,))
    hidden = keras.layers.Dense(16, activation="relu", kernel_initializer=init(3))(code_input)
    reconstruction = keras.layers.Dense(n_genes, kernel_initializer=init(4))(hidden)
    return encoder, keras.Model(code_input, reconstruction)


@exercise("1.4", points=3, title="A training step with GradientTape")
def train_step_makes_the_loss_fall(ns):
    import keras

    rng = np.random.default_rng(4)
    factors = rng.normal(size=(32, 2)) @ rng.normal(size=(2, 5))
    expression = (factors + 0.1 * rng.normal(size=factors.shape)).astype("float32")
    model = ns["Autoencoder"](*_tiny_autoencoder_parts(keras))
    run = fit_on_one_batch(model, expression, 30)
    expect_logs(run, ["loss"])
    expect_loss_falls(run, "loss", factor=0.8)
