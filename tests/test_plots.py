"""Figures read on their own: labelled axes with units, whole-number epochs, one title, legends
and colour bars that do not cover the data, paired panels side by side with their scores."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def overlaps(artist, axis) -> bool:
    """Whether the drawn extents of ``artist`` and ``axis`` intersect."""
    figure = axis.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    box, area = artist.get_window_extent(renderer), axis.get_window_extent(renderer)
    return box.overlaps(area)


VAE_LOGS = {"kl_loss": [18.0, 9.0], "loss": [337.0, 200.0], "reconstruction_loss": [319.0, 191.0]}
GAN_LOGS = {"d_loss": [0.9, 0.7, 0.6], "g_loss": [0.8, 1.1, 1.3]}


def test_history_puts_the_total_loss_first_and_labels_units_and_epochs():
    figure = plots.history(VAE_LOGS, title="VAE", units="nats per image")
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == ["loss", "kl loss", "reconstruction loss"]
    for axis in axes:
        assert axis.get_xlabel() == "epoch"
        assert axis.get_ylabel() == "nats per image"
        ticks = [tick for tick in axis.get_xticks() if axis.get_xlim()[0] <= tick
                 <= axis.get_xlim()[1]]
        assert ticks and all(float(tick).is_integer() for tick in ticks)


def test_history_of_one_epoch_shows_epoch_1_not_fractions():
    figure = plots.history({"loss": [3.0]})
    axis = figure.axes[0]
    visible = [tick for tick in axis.get_xticks() if 0.5 <= tick <= 1.5]
    assert visible == [1.0]
    assert axis.get_ylabel() == "loss"


def test_gan_losses_have_one_title_and_a_legend_off_the_curves():
    figure = plots.loss_curves(GAN_LOGS, title="GAN on MNIST")
    axis = figure.axes[0]
    assert figure._suptitle is None and axis.get_title() == "GAN on MNIST"
    assert axis.get_xlabel() == "epoch"
    assert "nats" in axis.get_ylabel() and "nats" in figure.axes[1].get_ylabel()
    assert not overlaps(axis.get_legend(), axis)


def test_gan_losses_with_extra_terms_title_the_figure_once_and_each_panel():
    logs = {**GAN_LOGS, "l1_loss": [0.5, 0.4, 0.3]}
    figure = plots.loss_curves(logs, title="LandmarkGAN", units=None)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert figure._suptitle.get_text() == "LandmarkGAN"
    assert titles == ["discriminator and generator", "l1 loss"]


def test_predicted_vs_true_has_a_colour_bar_units_and_scores():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(200, 5))
    figure = plots.predicted_vs_true(truth, truth + rng.normal(0, 0.1, truth.shape),
                                     units="log1p")
    axis, colour_bar = figure.axes
    assert "log scale" in colour_bar.get_ylabel()
    assert axis.get_xlabel() == "true expression (log1p)"
    assert axis.get_ylabel() == "predicted expression (log1p)"
    assert "MAE" in axis.get_title() and "CCC" in axis.get_title()


def test_per_gene_error_legend_does_not_cover_the_bars():
    rng = np.random.default_rng(0)
    figure = plots.per_gene_error_histogram(rng.gamma(2, 0.2, 300),
                                            baselines={"MLP": rng.gamma(2, 0.3, 300)},
                                            label="LandmarkGAN")
    axis = figure.axes[0]
    assert not overlaps(axis.get_legend(), axis)
    assert axis.get_xlabel() == "per-gene MAE" and axis.get_ylabel() == "genes"


def test_latent_scatter_names_its_axes_and_its_legend():
    rng = np.random.default_rng(0)
    figure = plots.latent_scatter(rng.normal(size=(50, 2)), np.arange(50) % 3,
                                  axis_labels=("PC 1", "PC 2"), legend_title="cell type")
    axis = figure.axes[0]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("PC 1", "PC 2")
    assert axis.get_legend().get_title().get_text() == "cell type"
    assert not overlaps(axis.get_legend(), axis)


def test_umap_comparison_puts_the_embeddings_side_by_side_with_their_titles():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    embeddings = {"VAE\nkNN accuracy 0.90": rng.normal(size=(60, 4)) + labels[:, None],
                  "PCA\nkNN accuracy 0.80": rng.normal(size=(60, 4))}
    figure = plots.umap_comparison(embeddings, labels, names=["B", "T", "NK"],
                                   legend_title="cell type")
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == list(embeddings)
    assert axes[0].get_legend() is None
    assert [text.get_text() for text in axes[1].get_legend().get_texts()] == ["B", "T", "NK"]
    first, second = (axis.get_position() for axis in axes)
    assert first.x1 <= second.x0 and abs(first.y0 - second.y0) < 1e-6
