"""Sanity of the regression and generated-sample metrics: each reaches its ideal value exactly
when it should and moves the right way when the samples differ."""

from __future__ import annotations

import numpy as np
import pytest

from course import metrics


def gaussian(n, shift=0.0, seed=0, dim=5):
    return np.random.default_rng(seed).normal(loc=shift, size=(n, dim))


def test_concordance_is_one_only_for_identical_values():
    truth = gaussian(200)
    assert metrics.concordance_correlation(truth, truth) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.concordance_correlation(truth, truth, per_gene=True), 1.0)
    # Perfectly correlated but shifted or rescaled: Pearson would say 1, CCC must not.
    assert metrics.concordance_correlation(truth, truth + 1.0) < 0.9
    assert metrics.concordance_correlation(truth, 0.5 * truth) < 0.9
    centered = truth - truth.mean()
    assert metrics.concordance_correlation(centered, -centered) == pytest.approx(-1.0)


def test_per_gene_metrics_have_one_value_per_column_and_average_to_the_overall_mae():
    truth, prediction = gaussian(50, dim=7), gaussian(50, dim=7, seed=1)
    per_gene = metrics.mae(truth, prediction, per_gene=True)
    assert per_gene.shape == (7,)
    assert per_gene.mean() == pytest.approx(metrics.mae(truth, prediction))
    assert metrics.mae(truth, truth + 0.25) == pytest.approx(0.25)
    assert metrics.concordance_correlation(truth, prediction, per_gene=True).shape == (7,)
    with pytest.raises(ValueError, match="same shape"):
        metrics.mae(truth, prediction[:, :3])


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    same = metrics.mmd(gaussian(300, seed=0), gaussian(300, seed=1))
    small = metrics.mmd(gaussian(300, seed=0), gaussian(300, shift=0.5, seed=1))
    large = metrics.mmd(gaussian(300, seed=0), gaussian(300, shift=2.0, seed=1))
    assert abs(same) < 0.01
    assert same < small < large


def test_classifier_auc_is_chance_for_one_distribution_and_one_for_separated_ones():
    assert metrics.classifier_auc(gaussian(200, seed=0), gaussian(200, seed=1)) == pytest.approx(
        0.5, abs=0.1
    )
    separated = metrics.classifier_auc(gaussian(200, seed=0), gaussian(200, shift=3.0, seed=1))
    assert separated > 0.99


class FixedClassifier:
    """Stands in for a Keras classifier: predicts class ``i % 3`` for image ``i``."""

    def predict(self, images, verbose=0):
        return np.eye(4)[np.arange(len(images)) % 3] * 0.9 + 0.025


def test_digit_scores_count_classes_and_conditional_accuracy():
    images = np.zeros((30, 28, 28, 1))
    requested = np.arange(30) % 3
    requested[:6] = 3  # Six images asked for class 3, never predicted as 3.
    scores = metrics.digit_scores(FixedClassifier(), images, requested)
    assert scores["histogram"] == [10, 10, 10, 0]
    assert scores["classes_present"] == 3
    assert scores["conditional_accuracy"] == pytest.approx(24 / 30)
    assert scores["mean_confidence"] == pytest.approx(0.925)


def test_digit_classifier_recognises_held_out_real_digits():
    from course import datasets

    x_train, y_train = datasets.load_mnist("train")
    x_test, y_test = datasets.load_mnist("test")
    classifier = metrics.digit_classifier(x_train[:1500], y_train[:1500], epochs=2)
    assert metrics.digit_classifier(x_train[:1500], y_train[:1500], epochs=2) is classifier
    scores = metrics.digit_scores(classifier, x_test[:300], y_test[:300])
    assert scores["conditional_accuracy"] > 0.8
    assert scores["classes_present"] == 10
