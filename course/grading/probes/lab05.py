"""Probes of lab 5 (landmark -> target genes): call the student's floors, ridge baseline, MLP
training, GGAN loss and per-gene correlation on the grader's inputs.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab05``.
A split is rebuilt from the inputs' arrays, so the student's function meets cells whose
training, validation and test parts the grader knows apart.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.grading.probes.tools import to_numpy
from course.grading.registry import CheckFailed

# How the probe reports a compiled loss: "mse" -> 0, "mae" -> 1, anything else -> -1.
LOSS_CODES = {"mse": 0, "mae": 1}


def split_from(inputs):
    """A ``LandmarkSplit`` made of the inputs' arrays (cell indices and statistics are dummies)."""
    from course.datasets import LandmarkSplit

    x_train, y_train = inputs["x_train"], inputs["y_train"]
    n_landmarks, n_targets = x_train.shape[1], y_train.shape[1]
    sizes = np.cumsum([0, len(x_train), len(inputs["x_val"]), len(inputs["x_test"])])
    return LandmarkSplit(
        x_train=x_train, y_train=y_train, x_val=inputs["x_val"], y_val=inputs["y_val"],
        x_test=inputs["x_test"], y_test=inputs["y_test"],
        landmark_genes=[f"landmark_{i}" for i in range(n_landmarks)],
        target_genes=[f"target_{i}" for i in range(n_targets)],
        train_index=np.arange(sizes[0], sizes[1]), val_index=np.arange(sizes[1], sizes[2]),
        test_index=np.arange(sizes[2], sizes[3]),
        mean=np.zeros(n_landmarks + n_targets), scale=np.ones(n_landmarks + n_targets),
    )


def per_gene_floor(ns, inputs):
    """The student's mean and median floors of the inputs' training targets."""
    n_cells = int(inputs["n_cells"])
    return {statistic: to_numpy(ns["per_gene_floor"](inputs["y_train"], n_cells, statistic),
                                f"per_gene_floor(..., {statistic!r})")
            for statistic in ("mean", "median")}


def fit_ridge(ns, inputs):
    """The student's fitted ridge model: its alpha, weights and test predictions."""
    model = ns["fit_ridge"](split_from(inputs))
    if model is None or not hasattr(model, "predict"):
        raise CheckFailed(f"fit_ridge should return the fitted model (with a .predict method), "
                          f"got {type(model).__name__}")
    return {"alpha": float(getattr(model, "alpha_", getattr(model, "alpha", np.nan))),
            "prediction": to_numpy(model.predict(inputs["x_test"]), "the model's predict")}


def loss_code(loss) -> int:
    """A compiled loss as a code of LOSS_CODES (-1 for any other loss)."""
    name = loss if isinstance(loss, str) else (
        getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)
    name = str(name).lower().replace("_", "")
    aliases = {"mse": "mse", "meansquarederror": "mse", "mae": "mae",
               "meanabsoluteerror": "mae"}
    return LOSS_CODES.get(aliases.get(name, ""), -1)


def train_mlp(ns, inputs):
    """For each loss, the student's trained MLP: its compiled loss, the number of optimizer
    steps, the validation losses it recorded, its predictions for every part of the cells, and
    how many cells each ``fit`` of a ``models.MLPRegressor`` was given (-1: not arrays)."""
    import keras

    split = split_from(inputs)
    outputs = {}
    for loss in LOSS_CODES:
        keras.utils.set_random_seed(0)
        with recorded_fits(ns["train_mlp"]) as fitted_rows:
            model = ns["train_mlp"](split, loss, int(inputs["epochs"]))
        if not isinstance(model, keras.Model):
            raise CheckFailed(f"train_mlp should return the trained Keras model, got "
                              f"{type(model).__name__}")
        history = getattr(getattr(model, "history", None), "history", None) or {}
        outputs[f"{loss}_loss_code"] = loss_code(getattr(model, "loss", None))
        outputs[f"{loss}_steps"] = int(model.optimizer.iterations) if model.optimizer else 0
        outputs[f"{loss}_val_loss"] = np.asarray(history.get("val_loss", []), np.float64)
        outputs[f"{loss}_fitted_rows"] = np.asarray(fitted_rows, np.int64)
        for part in ("train", "val", "test"):
            outputs[f"{loss}_{part}"] = to_numpy(
                model.predict(inputs[f"x_{part}"], verbose=0), "the MLP's predict")
    return outputs


@contextlib.contextmanager
def recorded_fits(function):
    """``course.models.MLPRegressor`` (and every global of ``function`` bound to it) replaced,
    while the block runs, by a subclass that records the number of cells each ``fit`` is
    given; yields the list of those numbers."""
    from course import models

    real, rows = models.MLPRegressor, []

    class RecordedMLPRegressor(real):
        def fit(self, x=None, y=None, *args, **kwargs):
            rows.append(len(x) if isinstance(x, np.ndarray) else -1)
            return super().fit(x, y, *args, **kwargs)

    namespace = getattr(function, "__globals__", {})
    names = [name for name, value in namespace.items() if value is real]
    models.MLPRegressor = RecordedMLPRegressor
    namespace.update(dict.fromkeys(names, RecordedMLPRegressor))
    try:
        yield rows
    finally:
        models.MLPRegressor = real
        namespace.update(dict.fromkeys(names, real))


def ggan_generator_loss(ns, inputs):
    """The student's GGAN loss for each pair of weights in the inputs."""
    loss = ns["ggan_generator_loss"]
    values = []
    for l1_weight, consistency_weight in inputs["weights"]:
        value = to_numpy(loss(inputs["fake_logits"], inputs["predicted"], inputs["targets"],
                              inputs["other_predicted"], float(l1_weight),
                              float(consistency_weight)), "ggan_generator_loss")
        if value.size != 1:
            raise CheckFailed(f"ggan_generator_loss should return one number (a mean), got "
                              f"shape {value.shape}")
        values.append(float(value.reshape(())))
    return {"values": np.array(values)}


def per_gene_correlation(ns, inputs):
    """The student's per-gene correlations of the inputs' true and predicted values."""
    r = to_numpy(ns["per_gene_correlation"](inputs["y_true"], inputs["y_pred"]),
                 "per_gene_correlation")
    return {"r": r}
