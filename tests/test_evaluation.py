"""The landmark -> target metrics agree with scipy / scikit-learn on small arrays, undefined
correlations (all-zero genes, constant predictions) are NaN, left out of means and counted, and
the evaluation protocol is reproducible and never lets a model see the test cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

from course import datasets, evaluation, metrics


def expression(n_cells=30, n_genes=6, seed=0):
    """Zero-inflated log1p-like values: about half the entries are exactly zero."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 1.0, size=(n_cells, n_genes))
    return np.where(rng.random((n_cells, n_genes)) < 0.5, 0.0, values)


def test_per_gene_pearson_and_spearman_match_scipy_column_by_column():
    truth, prediction = expression(seed=0), expression(seed=1) + 0.5 * expression(seed=0)
    pearson = metrics.per_gene_pearson(truth, prediction)
    spearman = metrics.per_gene_spearman(truth, prediction)
    for gene in range(truth.shape[1]):
        assert pearson[gene] == pytest.approx(stats.pearsonr(truth[:, gene],
                                                             prediction[:, gene])[0])
        assert spearman[gene] == pytest.approx(stats.spearmanr(truth[:, gene],
                                                               prediction[:, gene])[0])


def test_correlation_of_an_all_zero_gene_or_a_constant_prediction_is_nan():
    truth, prediction = expression(), expression(seed=1)
    truth[:, 0] = 0.0
    prediction[:, 1] = 0.37
    for correlation in (metrics.per_gene_pearson, metrics.per_gene_spearman):
        values = correlation(truth, prediction)
        assert np.isnan(values[:2]).all() and np.isfinite(values[2:]).all()
    mean, undefined = metrics.mean_and_undefined(metrics.per_gene_pearson(truth, prediction))
    assert undefined == 2
    assert mean == pytest.approx(np.mean([stats.pearsonr(truth[:, g], prediction[:, g])[0]
                                          for g in range(2, truth.shape[1])]))


def test_mean_of_only_undefined_values_is_nan_and_all_are_counted():
    mean, undefined = metrics.mean_and_undefined([np.nan, np.nan, np.nan])
    assert np.isnan(mean) and undefined == 3


def test_rmse_and_mae_match_scikit_learn_overall_and_per_gene():
    truth, prediction = expression(), expression(seed=2)
    assert metrics.rmse(truth, prediction) == pytest.approx(
        np.sqrt(mean_squared_error(truth.ravel(), prediction.ravel())))
    np.testing.assert_allclose(
        metrics.rmse(truth, prediction, per_gene=True),
        np.sqrt(mean_squared_error(truth, prediction, multioutput="raw_values")))
    assert metrics.mae(truth, prediction) == pytest.approx(
        mean_absolute_error(truth, prediction))


def test_centred_per_cell_r_is_scipy_pearson_of_the_deviations_from_the_center():
    truth, prediction = expression(seed=3), expression(seed=4)
    center = expression(seed=5).mean(axis=0)
    values = metrics.per_cell_pearson(truth, prediction, center=center)
    for cell in range(5):
        assert values[cell] == pytest.approx(
            stats.pearsonr(truth[cell] - center, prediction[cell] - center)[0])
    # Predicting the center itself says nothing about any cell: undefined, not 0.
    assert np.isnan(metrics.per_cell_pearson(truth, np.tile(center, (30, 1)), center)).all()
    with pytest.raises(ValueError, match="one value per gene"):
        metrics.per_cell_pearson(truth, prediction, center=center[:3])


def test_variance_ratio_zero_fraction_and_detection_rate():
    truth = expression()
    truth[:, 0] = 0.0
    ratio = metrics.variance_ratio(truth, 0.5 * truth)
    assert np.isnan(ratio[0])
    np.testing.assert_allclose(ratio[1:], 0.25)
    values = np.array([[0.0, 0.49, 0.5], [1.0, 2.0, 0.0]])
    assert metrics.zero_fraction(values) == pytest.approx(3 / 6)
    np.testing.assert_allclose(metrics.detection_rate(values), [0.5, 0.5, 0.5])


def test_expression_knn_accuracy_is_high_for_separated_types_and_low_when_shuffled():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    profiles = rng.normal(0, 3, size=(3, 20))
    cells = profiles[labels] + rng.normal(size=(120, 20))
    assert metrics.expression_knn_accuracy(cells[::2], labels[::2], cells[1::2],
                                           labels[1::2], k=5) == 1.0
    assert metrics.expression_knn_accuracy(cells[::2], labels[::2], cells[1::2],
                                           rng.permutation(labels[1::2]), k=5) < 0.6


def test_score_of_a_constant_prediction_leaves_every_gene_undefined():
    y_train, y_test = expression(40, 8, seed=0), expression(20, 8, seed=1)
    labels_train, labels_test = np.arange(40) % 2, np.arange(20) % 2
    median = np.tile(np.median(y_train, axis=0), (20, 1))
    scores = evaluation.score(y_test, median, y_train, labels_train, labels_test)
    assert np.isnan(scores["pearson_r"]) and scores["n_undefined_r"] == 8
    assert scores["mae"] == pytest.approx(mean_absolute_error(y_test, median))
    assert scores["variance_ratio"] == 0.0
    for name in evaluation.ACCURACY_METRICS:
        assert f"{name}_dense" in scores and f"{name}_sparse" in scores
    with pytest.raises(ValueError, match="NaN"):
        evaluation.score(y_test, median * np.nan, y_train, labels_train, labels_test)


def cheap_predictors():
    return {name: evaluation.PREDICTORS[name]
            for name in ("per-gene mean", "per-gene median", "ridge", "kNN regression",
                         "kNN sampler", "ridge + residuals")}


def direct_energy_score(draws, truth):
    """The fair energy score of one cell, written out with two loops."""
    m = len(draws)
    to_truth = np.mean([np.linalg.norm(draw - truth) for draw in draws])
    between = sum(np.linalg.norm(draws[i] - draws[j]) for i in range(m) for j in range(m) if i != j)
    return to_truth - between / (2 * m * (m - 1))


def test_energy_score_and_crps_are_the_fair_estimators_written_out():
    rng = np.random.default_rng(0)
    draws, truth = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(metrics.energy_score(draws, truth),
                               [direct_energy_score(d, t) for d, t in zip(draws, truth)])
    per_gene = [[direct_energy_score(d[:, [g]], t[[g]]) for g in range(3)]
                for d, t in zip(draws, truth)]
    np.testing.assert_allclose(metrics.crps(draws, truth), np.mean(per_gene, axis=0))
    # A point prediction scores its distance (energy score) and its absolute error (CRPS).
    point = draws[:, 0]
    np.testing.assert_allclose(metrics.energy_score(point, truth),
                               np.linalg.norm(point - truth, axis=1))
    np.testing.assert_allclose(metrics.crps(point, truth), np.abs(point - truth).mean(axis=0))
    with pytest.raises(ValueError, match="cells, draws, features"):
        metrics.energy_score(draws, truth[:3])


def test_the_energy_score_prefers_the_true_spread_to_a_blurred_or_a_wider_one():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(400, 5))

    def score(scale):  # draws from N(0, scale^2 I) for truth drawn from N(0, I)
        return metrics.energy_score(scale * rng.normal(size=(400, 30, 5)), truth).mean()

    assert score(1.0) < score(0.3) and score(1.0) < score(2.0)


@pytest.fixture(scope="module")
def cells():
    return datasets.synthetic_counts(n_cells=150, n_genes=40, n_cell_types=3, seed=0)


@pytest.mark.slow
def test_the_protocol_is_reproducible_and_reports_every_predictor_and_split(cells):
    kwargs = dict(n_splits=2, n_landmarks=10, seed=3, predictors=cheap_predictors(),
                  verbose=False)
    rows = evaluation.evaluate(cells, **kwargs)
    again = evaluation.evaluate(cells, **kwargs)
    for row, repeated in zip(rows, again, strict=True):
        row, repeated = dict(row), dict(repeated)
        row.pop("seconds"), repeated.pop("seconds")
        np.testing.assert_equal(row, repeated)  # NaN equals NaN here
    assert sum(np.isnan(row.get("cell_r", np.nan)) for row in rows
               if row["predictor"] == "per-gene mean") == 2
    summary = evaluation.summarize(rows)
    assert list(summary) == [*cheap_predictors(), "truth (test cells)"]
    # The samplers are judged on their draws: they spread, the point predictions do not.
    assert summary["kNN sampler"]["energy_score"][0] < summary["kNN regression"]["energy_score"][0]
    assert summary["ridge + residuals"]["variance_ratio"][0] > summary["ridge"]["variance_ratio"][0]
    ridge_r = [row["pearson_r"] for row in rows if row["predictor"] == "ridge"]
    assert summary["ridge"]["pearson_r"] == pytest.approx([np.mean(ridge_r),
                                                           np.std(ridge_r, ddof=1)])
    assert summary["ridge"]["pearson_r"][0] > 0.1  # the cell types make genes predictable
    text = evaluation.table(summary, ["pearson_r", "mae"], markdown=True)
    assert text.count("\n") == 3 and "+-" in text


def test_no_predictor_reads_the_test_targets(cells):
    split = datasets.landmark_split(cells, n_landmarks=10, seed=0)
    poisoned = datasets.LandmarkSplit(**{**vars(split), "y_test": split.y_test * np.nan})
    for name, predictor in cheap_predictors().items():
        for prediction in predictor(poisoned, 0, 1).values():
            assert np.all(np.isfinite(prediction)), name


@pytest.mark.slow
def test_the_neural_predictors_run_under_the_protocol(cells):
    neural = {name: evaluation.PREDICTORS[name]
              for name in ("MLP (MSE, D-GEX)", "MLP (L1)", "LandmarkGAN")}
    rows = evaluation.evaluate(cells, n_splits=1, n_landmarks=10, epochs=2,
                               predictors=neural, verbose=False)
    names = {row["predictor"] for row in rows}
    assert {"MLP (MSE, D-GEX)", "MLP (L1)", "LandmarkGAN", "LandmarkGAN (samples)"} <= names
    assert all(np.isfinite(row["rmse"]) for row in rows if "rmse" in row)
