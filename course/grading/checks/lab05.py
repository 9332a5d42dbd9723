"""Checks of lab 5, inferring target genes from landmark genes (``solutions/05_landmark_genes.py``).

The checks run the student's functions on small synthetic problems whose answers are known:
an exactly linear landmark -> target map, a tiny split whose test cells are NaN (so training
on them shows), and losses whose terms can be switched on one at a time.
"""

from __future__ import annotations

import numpy as np

from course.datasets import LandmarkSplit
from course.grading import CheckFailed, exercise
from course.grading.checks.lab04 import bce_against_one, bce_against_zero, close, scalar


def linear_problem(n_cells: int = 80, n_landmarks: int = 5, n_targets: int = 3, seed: int = 0):
    """Landmarks and targets related exactly by targets = landmarks @ weights + bias."""
    rng = np.random.default_rng(seed)
    landmarks = rng.standard_normal((n_cells, n_landmarks)).astype("float32")
    weights = rng.standard_normal((n_landmarks, n_targets)).astype("float32")
    bias = rng.standard_normal(n_targets).astype("float32")
    return landmarks, landmarks @ weights + bias


@exercise("5.1", points=1, title="The linear-regression baseline")
def linear_baseline_recovers_a_linear_map(ns):
    landmarks, targets = linear_problem()
    model = ns["fit_linear_baseline"](landmarks, targets)
    if model is None or not hasattr(model, "predict"):
        raise CheckFailed(
            f"fit_linear_baseline should return the fitted model (with a .predict method), got "
            f"{type(model).__name__}: return LinearRegression().fit(landmarks, targets)"
        )
    try:
        predictions = np.asarray(model.predict(landmarks))
    except ValueError:
        raise CheckFailed(
            "the model cannot predict from the landmarks: was it fitted with the targets as "
            "inputs? Call fit(landmarks, targets), inputs first"
        ) from None
    if predictions.shape != targets.shape:
        raise CheckFailed(
            f"predictions for {len(landmarks)} cells and {targets.shape[1]} target genes should "
            f"have shape {targets.shape}, got {predictions.shape}"
        )
    error = np.abs(predictions - targets).mean()
    if error > 0.05 * np.abs(targets).mean():
        raise CheckFailed(
            f"on data where the targets are an exact linear function of the landmarks the "
            f"model's MAE is {error:.3f}, not about 0: fit it on (landmarks, targets)"
        )


def tiny_split() -> LandmarkSplit:
    """An exact linear problem, laid out as ``landmark_split`` does, whose test cells are NaN."""
    landmarks, targets = linear_problem(n_cells=96)
    n_landmarks, n_targets = landmarks.shape[1], targets.shape[1]
    return LandmarkSplit(
        x_train=landmarks[:64], y_train=targets[:64],
        x_val=landmarks[64:], y_val=targets[64:],
        x_test=np.full((16, n_landmarks), np.nan, "float32"),
        y_test=np.full((16, n_targets), np.nan, "float32"),
        landmark_genes=[f"landmark_{i}" for i in range(n_landmarks)],
        target_genes=[f"target_{i}" for i in range(n_targets)],
        train_index=np.arange(64), val_index=np.arange(64, 96), test_index=np.arange(96, 112),
        mean=np.zeros(n_landmarks + n_targets), scale=np.ones(n_landmarks + n_targets),
    )


def loss_name(loss) -> str:
    """A compiled loss as a short name: "mae", "mse" or its class or function name."""
    if isinstance(loss, str):
        return {"mean_absolute_error": "mae", "mean_squared_error": "mse"}.get(loss, loss)
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    name = name.lower()
    if name in ("mean_absolute_error", "meanabsoluteerror"):
        return "mae"
    if name in ("mean_squared_error", "meansquarederror"):
        return "mse"
    return name


@exercise("5.2", points=2, title="The D-GEX MLP, trained with the loss asked for")
def mlp_is_trained_on_the_training_cells(ns):
    import keras

    split = tiny_split()
    for asked in ("mae", "mse"):
        model = ns["train_mlp"](split, asked)
        if not isinstance(model, keras.Model):
            raise CheckFailed(
                f"train_mlp should return the trained Keras model, got {type(model).__name__}"
            )
        used = loss_name(getattr(model, "loss", None))
        if used != asked:
            raise CheckFailed(
                f"train_mlp(split, {asked!r}) compiled the model with the loss {used!r}: pass "
                "the function's `loss` argument to compile instead of a fixed loss"
            )
        if model.optimizer is None or int(model.optimizer.iterations) == 0:
            raise CheckFailed("the returned model was never trained: call fit before returning")
        if not all(np.all(np.isfinite(np.asarray(w))) for w in model.weights):
            raise CheckFailed(
                "the model was trained on the test cells (the check's test cells are NaN): "
                "fit on split.x_train and split.y_train; the test cells are for the final score"
            )
        predictions = np.asarray(model.predict(split.x_val, verbose=0))
        if predictions.shape != split.y_val.shape:
            raise CheckFailed(
                f"the MLP should predict {split.n_targets} target genes per cell, shape "
                f"{split.y_val.shape}, got {predictions.shape}"
            )


def ggan_terms(seed: int = 0):
    rng = np.random.default_rng(seed)
    fake_logits = rng.standard_normal((8, 1)).astype("float32")
    predicted, targets, other = (rng.standard_normal((8, 5)).astype("float32") for _ in range(3))
    return fake_logits, predicted, targets, other


@exercise("5.3", points=2, title="The GGAN generator loss")
def ggan_loss_has_three_weighted_terms(ns):
    loss = ns["ggan_generator_loss"]
    fake_logits, predicted, targets, other = ggan_terms()

    def total(l1_weight, consistency_weight):
        value = loss(fake_logits, predicted, targets, other, l1_weight, consistency_weight)
        return scalar(value, "ggan_generator_loss")

    adversarial = total(0.0, 0.0)
    l1 = np.abs(predicted - targets).mean()
    consistency = np.square(predicted - other).mean()
    extra = adversarial - bce_against_one(fake_logits)
    for term, value, weight in (("L1", l1, "l1_weight"),
                                ("consistency", consistency, "consistency_weight")):
        if close(extra, value):
            raise CheckFailed(f"with both weights 0 the {term} term is still there: multiply "
                              f"it by {weight}")
    if not close(adversarial, bce_against_one(fake_logits)):
        if close(adversarial, bce_against_zero(fake_logits)):
            raise CheckFailed(
                "the adversarial term trains the generator to make D say 'fake' (label 0): use "
                "the label 1, 'real', as in lab 4's non-saturating loss"
            )
        if close(adversarial, -bce_against_zero(fake_logits)):
            raise CheckFailed(
                "the adversarial term is the saturating loss log(1 - D(G(z))); use the "
                "non-saturating BCE of the fake logits against the label 1"
            )
        raise CheckFailed(
            f"with both weights 0 the loss should be the adversarial term, mean BCE(1, "
            f"fake_logits) = {bce_against_one(fake_logits):.4f}, got {adversarial:.4f}"
        )
    l1_term = total(1.0, 0.0) - adversarial
    if not close(l1_term, l1):
        mistakes = [
            (0.0, "the L1 term is missing, or not multiplied by l1_weight"),
            (np.square(predicted - targets).mean(),
             "the L1 term is squared: use the mean ABSOLUTE difference |predicted - targets|"),
            (np.abs(predicted - other).mean(),
             "the L1 term compares the two noisy predictions; it should compare the "
             "prediction with the true targets"),
        ]
        for value, message in mistakes:
            if close(l1_term, value):
                raise CheckFailed(message)
        raise CheckFailed(f"with l1_weight=1 the L1 term should add mean|predicted - targets| "
                          f"= {l1:.4f}, it added {l1_term:.4f}")
    if not close(total(3.0, 0.0) - adversarial, 3 * l1):
        raise CheckFailed("the L1 term does not grow in proportion to l1_weight: multiply "
                          "mean|predicted - targets| by l1_weight")
    consistency_term = total(0.0, 1.0) - adversarial
    if not close(consistency_term, consistency):
        mistakes = [
            (0.0, "the consistency term is missing, or not multiplied by consistency_weight"),
            (np.abs(predicted - other).mean(),
             "the consistency term should be the mean SQUARED difference of the two "
             "predictions, not the absolute one"),
            (np.square(predicted - targets).mean(),
             "the consistency term compares a prediction with the true targets; it should "
             "compare the two noisy predictions, predicted and other_predicted"),
            (np.abs(predicted - targets).mean(),
             "consistency_weight multiplies the L1 term; it should multiply the mean squared "
             "difference between predicted and other_predicted"),
        ]
        for value, message in mistakes:
            if close(consistency_term, value):
                raise CheckFailed(message)
        raise CheckFailed(f"with consistency_weight=1 the consistency term should add "
                          f"mean (predicted - other_predicted)^2 = {consistency:.4f}, it added "
                          f"{consistency_term:.4f}")
    if not close(total(0.0, 3.0) - adversarial, 3 * consistency):
        raise CheckFailed("the consistency term does not grow in proportion to "
                          "consistency_weight: multiply it by consistency_weight")


def reference_ccc(y_true, y_pred) -> float:
    y_true, y_pred = np.ravel(y_true).astype("float64"), np.ravel(y_pred).astype("float64")
    covariance = np.mean((y_true - y_true.mean()) * (y_pred - y_pred.mean()))
    gap = (y_true.mean() - y_pred.mean()) ** 2
    return 2 * covariance / (y_true.var() + y_pred.var() + gap)


@exercise("5.4", points=2, title="The concordance correlation coefficient")
def ccc_matches_lins_formula(ns):
    ccc = ns["concordance_correlation"]
    rng = np.random.default_rng(1)
    y_true = rng.standard_normal((200, 4))
    y_pred = 0.8 * y_true + 0.5 * rng.standard_normal((200, 4)) + 0.3

    def value(a, b, what):
        return scalar(ccc(a, b), f"concordance_correlation({what})")

    same = value(y_true, y_true, "y, y")
    if not close(same, 1.0):
        raise CheckFailed(f"the CCC of a prediction equal to the truth should be 1, got {same:.4f}")
    scaled = value(y_true, 2.0 * y_true, "y, 2y")
    if close(scaled, 1.0):
        raise CheckFailed(
            "a prediction twice the truth gets a CCC of 1, as Pearson's correlation would: the "
            "denominator is var_true + var_pred + (mean_true - mean_pred)**2, not a product of "
            "standard deviations"
        )
    shifted = value(y_true, y_true + 1.0, "y, y + 1")
    if close(shifted, 1.0):
        raise CheckFailed(
            "a prediction shifted by a constant gets a CCC of 1: add the squared difference of "
            "the means, (mean_true - mean_pred)**2, to the denominator"
        )
    got = value(y_true, y_pred, "y, a noisy prediction")
    expected = reference_ccc(y_true, y_pred)
    if not abs(got - expected) <= 0.01:
        gap = (y_true.mean() - y_pred.mean()) ** 2
        without_gap = 2 * np.cov(y_true.ravel(), y_pred.ravel(), bias=True)[0, 1] / (
            y_true.var() + y_pred.var())
        per_gene = np.mean([reference_ccc(y_true[:, j], y_pred[:, j]) for j in range(4)])
        if abs(got - without_gap) <= 0.01 and gap > 0:
            raise CheckFailed("the (mean_true - mean_pred)**2 term is missing from the "
                              "denominator")
        if abs(got - per_gene) <= 0.01:
            raise CheckFailed("this is the average of per-column CCCs; compute one CCC over "
                              "all entries (flatten both arrays first)")
        raise CheckFailed(
            f"for a noisy, shifted prediction the CCC should be {expected:.4f}, got {got:.4f}: "
            "2 * cov / (var_true + var_pred + (mean_true - mean_pred)**2)"
        )


@exercise("5.5", points=1, title="Scoring a model: MAE and CCC")
def score_reports_mae_and_ccc(ns):
    y_test = np.asarray(ns["split"].y_test)
    score = ns["score"]
    perfect = score(y_test)
    if not isinstance(perfect, dict) or not {"MAE", "CCC"} <= set(perfect):
        raise CheckFailed(f"score should return a dict with keys 'MAE' and 'CCC', got "
                          f"{perfect!r:.80}")
    shifted = score(y_test + 0.5)
    if not close(float(perfect["MAE"]), 0.0) or not close(float(shifted["MAE"]), 0.5):
        raise CheckFailed("score's 'MAE' should be metrics.mae(split.y_test, predictions): 0 "
                          "for perfect predictions and 0.5 for predictions off by 0.5")
    if not close(float(perfect["CCC"]), 1.0):
        raise CheckFailed("score's 'CCC' should be 1 for perfect predictions of split.y_test")
    expected = reference_ccc(y_test, y_test + 0.5)
    if not abs(float(shifted["CCC"]) - expected) <= 0.01:
        raise CheckFailed(f"score's 'CCC' for predictions off by 0.5 should be {expected:.3f}, "
                          f"got {float(shifted['CCC']):.3f}: use concordance_correlation")
