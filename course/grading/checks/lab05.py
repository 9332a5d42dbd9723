"""Checks of lab 5, inferring target genes from landmark genes (``solutions/05_landmark_genes.py``).

Each check draws its inputs here, in the grader; the probes (``course.grading.probes.lab05``)
call the student's functions on them; the verdicts below recompute the answers. The splits are
built so that the cells a model learned from show in its predictions: the test cells follow a
different landmark -> target map than the training and validation cells.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import (
    bce_against_one,
    bce_against_zero,
    close,
    expect_finite,
    expect_keys,
    expect_shape,
)
from course.grading.probes import lab05 as probes
from course.grading.registry import CheckFailed, exercise

# --- 5.1: the floors ------------------------------------------------------------------------


def zero_inflated(rng, n_cells: int, n_genes: int) -> np.ndarray:
    """log1p-like values, each gene undetected in a random share (10-90%) of the cells."""
    detected = rng.random((n_cells, n_genes)) > rng.uniform(0.1, 0.9, n_genes)
    return np.where(detected, rng.gamma(2.0, rng.uniform(0.3, 1.5, n_genes),
                                        (n_cells, n_genes)), 0.0)


def floor_inputs(rng):
    n_genes = int(rng.integers(4, 9))
    return {"y_train": zero_inflated(rng, int(rng.integers(21, 41)), n_genes),
            "n_cells": np.int64(rng.integers(5, 15))}


@exercise("5.1", points=1, title="The floors: per-gene mean and median",
          probe=probes.per_gene_floor, inputs=floor_inputs)
def floor_verdict(inputs, outputs):
    expect_keys(outputs, ["mean", "median"])
    y_train, n_cells = inputs["y_train"], int(inputs["n_cells"])
    expected = {"mean": y_train.mean(axis=0), "median": np.median(y_train, axis=0)}
    for statistic in ("mean", "median"):
        got = outputs[statistic]
        expect_shape(got, (n_cells, y_train.shape[1]), f"per_gene_floor(..., {statistic!r})",
                     "one row per requested cell, one column per gene")
        expect_finite(got, f"per_gene_floor(..., {statistic!r})")
        if close(got, np.tile(expected[statistic], (n_cells, 1)), 1e-6):
            continue
        other = "median" if statistic == "mean" else "mean"
        if close(got[0], expected[other], 1e-6):
            raise CheckFailed(f"asked for the {statistic} you returned the {other}: "
                              f"use the `statistic` argument to choose")
        if not np.allclose(got, got[0]):
            raise CheckFailed("every cell should get the same row (a floor knows nothing "
                              "about the cells): repeat the per-gene values n_cells times")
        raise CheckFailed(f"the {statistic} floor should be the {statistic} of each gene "
                          "(column) over the training cells (rows): mind the axis")


# --- 5.2 and 5.3: which cells a model learned from ------------------------------------------


def split_inputs(rng, n_landmarks: int, n_targets: int, sizes: tuple[int, int, int],
                 noise: float) -> dict:
    """Train and validation cells from one linear map, test cells from its negation."""
    mixing = rng.normal(size=(n_landmarks, n_targets)) / np.sqrt(n_landmarks)
    inputs = {}
    for part, n_cells, sign in zip(("train", "val", "test"), sizes, (1.0, 1.0, -1.0)):
        x = rng.normal(size=(n_cells, n_landmarks))
        y = sign * x @ mixing + noise * rng.normal(size=(n_cells, n_targets))
        inputs[f"x_{part}"], inputs[f"y_{part}"] = x.astype("float32"), y.astype("float32")
    return inputs


def ridge_inputs(rng):
    return split_inputs(rng, n_landmarks=12, n_targets=4, sizes=(40, 15, 15), noise=1.5)


def ridge_fitted_on(inputs, parts, alphas=None):
    from sklearn.linear_model import RidgeCV

    from course.evaluation import RIDGE_ALPHAS

    x = np.concatenate([inputs[f"x_{part}"] for part in parts])
    y = np.concatenate([inputs[f"y_{part}"] for part in parts])
    model = RidgeCV(alphas=RIDGE_ALPHAS if alphas is None else alphas).fit(x, y)
    return model.predict(inputs["x_test"])


@exercise("5.2", points=2, title="A regularized baseline: RidgeCV on the training cells",
          probe=probes.fit_ridge, inputs=ridge_inputs)
def ridge_verdict(inputs, outputs):
    from sklearn.linear_model import LinearRegression

    expect_keys(outputs, ["alpha", "prediction"])
    got = outputs["prediction"]
    expect_shape(got, inputs["y_test"].shape, "the ridge model's predictions",
                 "fit the targets (outputs) on the landmarks (inputs)")
    expect_finite(got, "the ridge model's predictions")
    if close(got, ridge_fitted_on(inputs, ["train"]), 1e-4):
        return
    mistakes = [
        (["test"], "the model was fitted on the TEST cells: fit on split.x_train and "
                   "split.y_train; the test cells are only for the final score"),
        (["train", "val"], "the model was fitted on the training AND validation cells: fit on "
                           "the training cells only (RidgeCV cross-validates within them)"),
        (["val"], "the model was fitted on the validation cells: fit on split.x_train and "
                  "split.y_train"),
    ]
    for parts, message in mistakes:
        if close(got, ridge_fitted_on(inputs, parts), 1e-4):
            raise CheckFailed(message)
    least_squares = LinearRegression().fit(inputs["x_train"], inputs["y_train"])
    if close(got, least_squares.predict(inputs["x_test"]), 1e-4):
        raise CheckFailed("this is unregularized least squares: use RidgeCV, which shrinks the "
                          "weights by a penalty chosen by cross-validation")
    if close(got, ridge_fitted_on(inputs, ["train"], alphas=(0.1, 1.0, 10.0)), 1e-4):
        raise CheckFailed("RidgeCV chose alpha from its default grid (0.1, 1, 10): pass "
                          "alphas=evaluation.RIDGE_ALPHAS")
    raise CheckFailed("the predictions differ from RidgeCV(alphas=evaluation.RIDGE_ALPHAS) "
                      "fitted on the training cells")


MLP_EPOCHS = 15


def mlp_inputs(rng):
    return {**split_inputs(rng, n_landmarks=5, n_targets=3, sizes=(48, 16, 16), noise=0.05),
            "epochs": np.int64(MLP_EPOCHS)}


def loss_of(loss: str, prediction, targets) -> float:
    error = np.asarray(prediction, np.float64) - targets
    return float(np.mean(error**2) if loss == "mse" else np.mean(np.abs(error)))


@exercise("5.3", points=2, title="The D-GEX MLP, early-stopped on the validation cells",
          probe=probes.train_mlp, inputs=mlp_inputs)
def mlp_verdict(inputs, outputs):
    for loss in probes.LOSS_CODES:
        keys = [f"{loss}_{name}" for name in ("loss_code", "steps", "val_loss", "train", "val",
                                              "test")]
        expect_keys(outputs, keys)
        if int(outputs[f"{loss}_loss_code"]) != probes.LOSS_CODES[loss]:
            raise CheckFailed(f"train_mlp(split, {loss!r}, ...) compiled the model with another "
                              "loss: pass the function's `loss` argument to compile")
        if int(outputs[f"{loss}_steps"]) == 0:
            raise CheckFailed("the returned model was never trained: call fit before returning")
        for part in ("train", "val", "test"):
            expect_shape(outputs[f"{loss}_{part}"], inputs[f"y_{part}"].shape,
                         "the MLP's predictions", "one column per target gene")
            expect_finite(outputs[f"{loss}_{part}"], "the MLP's predictions")
        error = {part: loss_of(loss, outputs[f"{loss}_{part}"], inputs[f"y_{part}"])
                 for part in ("val", "test")}
        recorded = outputs[f"{loss}_val_loss"].ravel()
        if recorded.size == 0:
            raise CheckFailed("fit recorded no validation loss: pass validation_data=(split."
                              "x_val, split.y_val) so that early stopping watches those cells")
        if not any(close(value, error["val"], 1e-3) for value in recorded):
            if any(close(value, error["test"], 1e-3) for value in recorded):
                raise CheckFailed("the validation loss was measured on the TEST cells: "
                                  "validate (and stop early) on split.x_val and split.y_val")
            raise CheckFailed("the recorded validation losses do not match the returned "
                              "model on the validation cells: fit with validation_data="
                              "(split.x_val, split.y_val) and return that model")
        n_train, n_val = len(inputs["y_train"]), len(inputs["y_val"])
        fitted_rows = [int(rows) for rows in outputs.get(f"{loss}_fitted_rows", [])]
        if n_train + n_val in fitted_rows:
            raise CheckFailed("the model was trained on the training AND validation cells while "
                              "early stopping watched those same validation cells: its "
                              "validation loss then scores cells it learned from, so it cannot "
                              "tell when the model stops generalizing. Fit on split.x_train and "
                              "split.y_train only")
        if error["test"] < error["val"]:
            raise CheckFailed("the model fits the TEST cells better than the validation cells: "
                              "was it trained on them? fit on split.x_train and split.y_train")
        if any(rows not in (n_train, -1) for rows in fitted_rows) and n_train not in fitted_rows:
            raise CheckFailed(f"fit was given {fitted_rows[-1]} cells, not the {n_train} training "
                              "cells: fit on split.x_train and split.y_train")


# --- 5.4: GGAN's generator loss -------------------------------------------------------------


def ggan_inputs(rng):
    batch, genes = int(rng.integers(6, 12)), int(rng.integers(3, 8))

    def draw(*shape):
        return (rng.normal(size=shape) * rng.uniform(0.5, 2.0)).astype("float32")

    l1_weight, consistency_weight = rng.uniform(0.5, 5.0, size=2)
    weights = [[0, 0], [1, 0], [3, 0], [0, 1], [0, 3], [l1_weight, consistency_weight]]
    return {"fake_logits": draw(batch, 1), "predicted": draw(batch, genes),
            "targets": draw(batch, genes), "other_predicted": draw(batch, genes),
            "weights": np.array(weights, dtype="float64")}


def ggan_mistakes(term: str, inputs) -> list[tuple[float, str]]:
    """(the value a mistaken term would add, the hint naming the mistake)."""
    predicted, targets = inputs["predicted"].astype("float64"), inputs["targets"]
    other = inputs["other_predicted"]
    if term == "L1":
        return [
            (0.0, "the L1 term is missing, or not multiplied by l1_weight"),
            (np.square(predicted - targets).mean(),
             "the L1 term is squared: use the mean ABSOLUTE difference |predicted - targets|"),
            (np.abs(predicted - other).mean(),
             "the L1 term compares the two noisy predictions; it should compare the "
             "prediction with the true targets"),
        ]
    return [
        (0.0, "the consistency term is missing, or not multiplied by consistency_weight"),
        (np.abs(predicted - other).mean(),
         "the consistency term should be the mean SQUARED difference of the two predictions, "
         "not the absolute one"),
        (np.square(predicted - targets).mean(),
         "the consistency term compares a prediction with the true targets; it should compare "
         "the two noisy predictions, predicted and other_predicted"),
        (np.abs(predicted - targets).mean(),
         "consistency_weight multiplies the L1 term; it should multiply the mean squared "
         "difference between predicted and other_predicted"),
    ]


@exercise("5.4", points=2, title="GGAN's generator loss",
          probe=probes.ggan_generator_loss, inputs=ggan_inputs)
def ggan_verdict(inputs, outputs):
    expect_keys(outputs, ["values"])
    values = outputs["values"].ravel()
    expect_shape(values, (len(inputs["weights"]),), "the probe's values")
    expect_finite(values, "ggan_generator_loss")
    logits = inputs["fake_logits"]
    predicted = inputs["predicted"].astype("float64")
    l1 = np.abs(predicted - inputs["targets"]).mean()
    consistency = np.square(predicted - inputs["other_predicted"]).mean()
    adversarial = values[0]
    if not close(adversarial, bce_against_one(logits)):
        for term, value in (("L1", l1), ("consistency", consistency)):
            if close(adversarial - bce_against_one(logits), value):
                raise CheckFailed(f"with both weights 0 the {term} term is still there: "
                                  "multiply it by its weight")
        if close(adversarial, bce_against_zero(logits)):
            raise CheckFailed("the adversarial term trains G to make D say 'fake' (label 0): "
                              "use the label 1, 'real', as in lab 4's non-saturating loss")
        if close(adversarial, -bce_against_zero(logits)):
            raise CheckFailed("the adversarial term is the saturating loss log(1 - D(G(z))); "
                              "use the non-saturating BCE of the fake logits against label 1")
        raise CheckFailed("with both weights 0 the loss should be the adversarial term alone: "
                          "the mean BCE of the fake logits against the label 1 ('real')")
    for term, reference, rows in (("L1", l1, (1, 2)), ("consistency", consistency, (3, 4))):
        added = values[rows[0]] - adversarial
        if not close(added, reference):
            for value, message in ggan_mistakes(term, inputs):
                if close(added, value):
                    raise CheckFailed(message)
            raise CheckFailed(f"with its weight 1 the {term} term adds {added:.4f}, not the "
                              f"mean over all entries of the formula above")
        if not close(values[rows[1]] - adversarial, 3 * reference):
            raise CheckFailed(f"the {term} term does not grow in proportion to its weight: "
                              "multiply it by its weight argument")
    l1_weight, consistency_weight = inputs["weights"][-1]
    expected = adversarial + l1_weight * l1 + consistency_weight * consistency
    if not close(values[-1], expected):
        raise CheckFailed("with both weights non-zero the loss is not the sum of the three "
                          "weighted terms")


# --- 5.5: per-gene correlation --------------------------------------------------------------


def correlation_inputs(rng):
    n_cells, n_genes = int(rng.integers(20, 41)), int(rng.integers(5, 9))
    y_true = zero_inflated(rng, n_cells, n_genes)
    y_pred = 0.5 * y_true + rng.normal(size=(n_cells, n_genes))
    constant_gene, constant_prediction = rng.choice(n_genes, size=2, replace=False)
    y_true[:, constant_gene] = 0.0  # a gene never detected in these cells
    y_pred[:, constant_prediction] = rng.normal()  # a floor-like prediction
    return {"y_true": y_true, "y_pred": y_pred}


def pearson_columns(a, b) -> np.ndarray:
    """Reference: Pearson's r of matching columns, NaN where either column is constant."""
    constant = (np.ptp(a, axis=0) == 0) | (np.ptp(b, axis=0) == 0)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return np.where(constant, np.nan, r)


@exercise("5.5", points=2, title="Per-gene Pearson correlation, undefined for constants",
          probe=probes.per_gene_correlation, inputs=correlation_inputs)
def correlation_verdict(inputs, outputs):
    expect_keys(outputs, ["r"])
    y_true, y_pred = inputs["y_true"], inputs["y_pred"]
    expected = pearson_columns(y_true, y_pred)
    got = np.atleast_1d(outputs["r"].squeeze())
    if got.size == 1:
        raise CheckFailed("this is one r over all entries: compute one r per gene, each over "
                          "the cells (column by column)")
    if got.shape == (len(y_true),):
        raise CheckFailed("this is one r per cell (row): correlate each gene's column over the "
                          "cells instead")
    expect_shape(got, expected.shape, "per_gene_correlation", "one value per gene (column)")
    undefined = np.isnan(expected)
    if np.any(np.isfinite(got[undefined])):
        raise CheckFailed("a constant column (a gene never detected, or a constant prediction) "
                          "has no correlation: return NaN there, not a number (a rounding "
                          "spread of 1e-17 is not variance: test np.ptp(column) == 0)")
    if np.any(np.isnan(got[~undefined])):
        raise CheckFailed("only constant columns are undefined: the other genes need their r")
    if not close(got[~undefined], expected[~undefined], 1e-6):
        raise CheckFailed("the values are not Pearson's r of each column: centre both columns "
                          "on their means, then divide the sum of products by the product of "
                          "the root sums of squares")
