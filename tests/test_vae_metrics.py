"""VAE metrics (ELBO, IWAE, kNN accuracy, clustering scores, PCA) and VAE plots."""

from __future__ import annotations

import keras
import matplotlib.figure
import numpy as np
import pytest

from course import datasets, metrics, plots
from course.models import VAE, ConditionalVAE


@pytest.fixture(scope="module")
def trained_vae():
    keras.utils.set_random_seed(0)
    images, labels = datasets.load_mnist("test", source="bundled")
    model = VAE((28, 28, 1), latent_dim=2, hidden_units=(32,), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(images[:256], epochs=5, batch_size=64, verbose=0)
    return model, images[:64], labels[:64]


def blobs(n_per_class=40, n_classes=3, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 5.0, size=(n_classes, 4))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(0.0, spread, size=(len(labels), 4)), labels


def test_importance_weighted_bound_is_at_least_the_elbo(trained_vae):
    model, images, _ = trained_vae
    elbo = metrics.elbo(model, images)
    iwae = metrics.marginal_log_likelihood(model, images, n_samples=50, batch_size=32)
    assert np.isfinite(elbo) and elbo < 0
    # The IWAE bound is tighter; allow for the Monte-Carlo noise of the one-sample ELBO.
    assert iwae > elbo - 1.0
    assert iwae < 0


def test_iwae_with_one_sample_estimates_the_elbo(trained_vae):
    model, images, _ = trained_vae
    # Both are one-sample Monte-Carlo estimates (a per-image sd of tens of nats): average each
    # over 50 draws so that their difference is well inside the tolerance.
    one_sample = np.mean(
        [metrics.marginal_log_likelihood(model, images, n_samples=1, seed=s) for s in range(50)]
    )
    elbo = np.mean([metrics.elbo(model, images) for _ in range(50)])
    assert one_sample == pytest.approx(elbo, abs=3.0)


def test_elbo_of_a_conditional_vae_needs_and_uses_labels(trained_vae):
    _, images, labels = trained_vae
    model = ConditionalVAE((28, 28, 1), num_classes=10, hidden_units=(16,), seed=0)
    assert np.isfinite(metrics.elbo(model, images, labels))
    with pytest.raises(ValueError, match="needs labels"):
        metrics.elbo(model, images)
    iwae = metrics.marginal_log_likelihood(model, images[:16], labels[:16], n_samples=2)
    assert np.isfinite(iwae)


def test_elbo_of_an_unconditional_vae_refuses_labels(trained_vae):
    model, images, labels = trained_vae
    with pytest.raises(ValueError, match="takes no labels"):
        metrics.elbo(model, images, labels)


def test_elbo_refuses_normalized_data_for_a_count_model():
    model = VAE((5,), latent_dim=2, hidden_units=(8,), likelihood="nb")
    with pytest.raises(ValueError, match="raw integer counts"):
        metrics.elbo(model, np.full((4, 5), 0.5, np.float32))


def test_knn_accuracy_is_high_on_separable_data_and_near_chance_on_noise():
    z, labels = blobs()
    assert metrics.latent_knn_accuracy(z, labels, k=5) > 0.95
    noise = np.random.default_rng(1).normal(size=z.shape)
    assert metrics.latent_knn_accuracy(noise, labels, k=5) < 0.6
    held_out, held_out_labels = blobs(seed=0)
    accuracy = metrics.latent_knn_accuracy(z, labels, z_test=held_out, labels_test=held_out_labels)
    assert accuracy > 0.95


def test_clustering_scores_are_perfect_for_separated_clusters_and_low_for_noise():
    z, labels = blobs()
    scores = metrics.clustering_scores(z, labels)
    assert scores["ari"] > 0.95 and scores["nmi"] > 0.95
    shuffled = np.random.default_rng(0).permutation(labels)
    assert metrics.clustering_scores(z, shuffled)["ari"] < 0.1


def test_pca_embedding_keeps_the_direction_of_largest_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 1.0, 1.0, 1.0, 1.0])
    embedding = metrics.pca_embedding(x, n_components=2)
    assert embedding.shape == (200, 2)
    assert abs(np.corrcoef(embedding[:, 0], x[:, 0])[0, 1]) > 0.99


def test_vae_plots_return_figures(trained_vae):
    model, images, labels = trained_vae
    z = model.encode(images)
    figures = [
        plots.latent_scatter(z, labels, names=[f"digit {d}" for d in range(10)]),
        plots.manifold_grid(model, n=5),
        plots.reconstructions(model, images, n=4),
        plots.interpolation(model, images[0], images[1], steps=5),
        plots.samples(model, n=10),
    ]
    assert all(isinstance(figure, matplotlib.figure.Figure) for figure in figures)
    with pytest.raises(ValueError, match="2-D latent"):
        plots.manifold_grid(VAE((28, 28, 1), latent_dim=3, hidden_units=(8,)))

