"""The checks of lab 5 (landmark -> target genes): each realistic mistake loses the points with a
hint naming it (that the solution passes, for every lab: tests/test_lab_structure.py)."""

from __future__ import annotations

import pytest
from lab_harness import (
    edited_namespace,
    failure_message,
    solution_namespace,
    with_mistake,
)

LAB = 5


@pytest.fixture(scope="module")
def ns():
    return solution_namespace(LAB)


EDITS = [
    # (exercise, function, old, new, words of the hint)
    ("5.1", "per_gene_floor", 'np.median if statistic == "median" else np.mean',
     'np.mean if statistic == "median" else np.median', "use the `statistic` argument"),
    ("5.1", "per_gene_floor", "summary(y_train, axis=0)", "summary(y_train)",
     "one column per gene"),
    ("5.2", "fit_ridge", "fit(split.x_train, split.y_train)", "fit(split.x_test, split.y_test)",
     "fitted on the TEST cells"),
    ("5.2", "fit_ridge", "fit(split.x_train, split.y_train)",
     "fit(np.concatenate([split.x_train, split.x_val]), "
     "np.concatenate([split.y_train, split.y_val]))", "training AND validation cells"),
    ("5.2", "fit_ridge", "RidgeCV(alphas=evaluation.RIDGE_ALPHAS)", "RidgeCV()",
     "alphas=evaluation.RIDGE_ALPHAS"),
    ("5.3", "train_mlp", "validation_data=(split.x_val, split.y_val)",
     "validation_data=(split.x_test, split.y_test)", "measured on the TEST cells"),
    ("5.3", "train_mlp", "mlp.fit(split.x_train, split.y_train,",
     "mlp.fit(split.x_test, split.y_test,", "trained on them"),
    ("5.3", "train_mlp", "validation_data=(split.x_val, split.y_val),", "",
     "pass validation_data"),
    ("5.3", "train_mlp", "mlp.fit(split.x_train, split.y_train,",
     "mlp.fit(np.concatenate([split.x_train, split.x_val]), "
     "np.concatenate([split.y_train, split.y_val]),", "training AND validation cells"),
    ("5.3", "train_mlp", "loss=loss", 'loss="mse"', "pass the function's `loss` argument"),
    ("5.4", "ggan_generator_loss", "ops.ones_like(fake_logits)", "ops.zeros_like(fake_logits)",
     "make D say 'fake'"),
    ("5.4", "ggan_generator_loss", "ops.abs(predicted - targets)",
     "ops.square(predicted - targets)", "L1 term is squared"),
    ("5.4", "ggan_generator_loss", "ops.square(predicted - other_predicted)",
     "ops.abs(predicted - other_predicted)", "mean SQUARED difference"),
    ("5.4", "ggan_generator_loss", "consistency_weight * consistency_loss",
     "consistency_loss", "multiply it by its weight"),
    ("5.5", "per_gene_correlation", "return np.where(constant, np.nan, r)", "return r",
     "return NaN there"),
    ("5.5", "per_gene_correlation", "return np.where(constant, np.nan, r)",
     "return np.nan_to_num(np.where(constant, np.nan, r))", "return NaN there"),
]


@pytest.mark.parametrize("exercise_id, function, old, new, words", [
    pytest.param(*edit, marks=pytest.mark.slow) if edit[0] == "5.3" else edit for edit in EDITS])
def test_a_realistic_mistake_loses_the_points_with_a_hint(exercise_id, function, old, new,
                                                          words):
    wrong = edited_namespace(LAB, function, old, new)
    assert words in failure_message(exercise_id, wrong)


@pytest.mark.parametrize("source, words", [
    ("def per_gene_correlation(y_true, y_pred):\n"
     "    return np.corrcoef(np.ravel(y_true), np.ravel(y_pred))[0, 1]\n",
     "one r over all entries"),
    ("def per_gene_correlation(y_true, y_pred):\n"
     "    return per_gene_correlation_of_columns(y_true.T, y_pred.T)\n", "one r per cell"),
])
def test_correlating_the_wrong_axis_is_named(ns, source, words):
    wrong = with_mistake({**ns, "per_gene_correlation_of_columns": ns["per_gene_correlation"]},
                         source)
    assert words in failure_message("5.5", wrong)


def test_least_squares_instead_of_ridge_is_named(ns):
    wrong = with_mistake(ns, "from sklearn.linear_model import LinearRegression\n"
                             "def fit_ridge(split):\n"
                             "    return LinearRegression().fit(split.x_train, split.y_train)\n")
    assert "unregularized least squares" in failure_message("5.2", wrong)
