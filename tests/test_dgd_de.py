"""N-of-one differential expression (course.differential): the NB test against a decoded
control, the per-gene scores, the t-test with controls and the marker-ranking score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from course import differential
from course.demos.dgd_de import held_out_markers


def brute_force_p_value(count: int, mean: float, theta: float) -> float:
    """Sum of NB probabilities of every count up to far in the tail no more likely than
    ``count``."""
    distribution = stats.nbinom(theta, theta / (theta + mean))
    grid = np.arange(20000)
    mass = distribution.pmf(grid)
    return float(mass[mass <= distribution.pmf(count) * (1 + 1e-9)].sum() / mass.sum())


@pytest.mark.parametrize("count, mean, theta", [(0, 3.0, 2.0), (3, 3.0, 2.0), (40, 3.0, 2.0),
                                                (0, 50.0, 0.5), (7, 0.2, 10.0)])
def test_the_p_value_is_the_mass_of_counts_no_more_likely_than_the_observed_one(count, mean,
                                                                                theta):
    p_value = differential.nb_two_sided_p_values(np.array([[count]]), np.array([[mean]]),
                                                 np.array([theta]))[0, 0]
    assert p_value == pytest.approx(brute_force_p_value(count, mean, theta), rel=1e-6)


def test_the_mode_has_p_value_one_and_the_tails_small_ones():
    counts = np.array([[3, 60, 0]])  # the mode of NB(mean 3.4, theta 50) is 3
    p_values = differential.nb_two_sided_p_values(counts, np.full((1, 3), 3.4),
                                                  np.full(3, 50.0))[0]
    assert p_values[0] == pytest.approx(1.0) and p_values[1] < 1e-10 and 0.05 < p_values[2] < 1


def test_scores_are_positive_for_genes_above_their_control_and_negative_below():
    counts = np.array([[30.0, 0.0, 5.0], [25.0, 0.0, 5.0]])
    mean = np.array([[5.0, 20.0, 5.0], [5.0, 20.0, 5.0]])
    p_values = differential.nb_two_sided_p_values(counts, mean, np.full(3, 20.0))
    scores = differential.signed_log_p_scores(counts, mean, p_values)
    assert scores[0] > 3 and scores[1] < -3 and scores[2] == 0.0


def test_the_t_test_ranks_a_gene_high_in_the_group_first():
    rng = np.random.default_rng(0)
    expression = rng.normal(size=(40, 3))
    in_group = np.arange(40) < 10
    expression[in_group, 1] += 3.0
    assert np.argmax(differential.t_test_scores(expression, in_group)) == 1


def test_marker_ranking_is_perfect_when_the_markers_score_highest():
    genes = ["a", "b", "c", "d"]
    ranking = differential.marker_ranking(np.array([0.1, 5.0, 4.0, -1.0]), genes, ["b", "c"])
    assert ranking["auroc"] == 1.0 and ranking["average_precision"] == 1.0
    assert ranking["marker_ranks"] == {"b": 1, "c": 2}
    with pytest.raises(ValueError, match="some, but not all"):
        differential.marker_ranking(np.zeros(4), genes, ["x"])


def test_mismatched_shapes_and_unknown_cell_types_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        differential.nb_two_sided_p_values(np.zeros((2, 3)), np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="known markers"):
        held_out_markers("CD4+/CD25 T Reg", ["CD4+/CD25 T Reg", "CD19+ B"])
    assert "MS4A1" in held_out_markers("CD19+ B", ["CD19+ B"])
