"""The Gaussian-mixture VAE of scVAE: a mixture prior with learned components, clusters q(y|x)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import log_softmax, softmax
from test_distributed_training import Case, assert_same_training, sgd, train, zero_noise

from course import distribute
from course.models.gmvae import GMVAE, categorical_kl_to_uniform, gaussian_kl

COUNTS = np.random.default_rng(0).poisson(3.0, size=(16, 12)).astype("float32") + 1
K, LATENT = 3, 2


def gmvae(**kwargs):
    return GMVAE((12,), n_components=K, latent_dim=LATENT, hidden_units=(8,), seed=0, **kwargs)


def test_the_kl_terms_vanish_when_posterior_equals_prior():
    mean, log_var = np.array([[0.3, -1.0]]), np.array([[0.2, -0.5]])
    assert float(gaussian_kl(mean, log_var, mean, log_var)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(categorical_kl_to_uniform(np.zeros((1, 4)))[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(categorical_kl_to_uniform(np.array([[50.0, 0, 0, 0]]))[0]) == pytest.approx(
        np.log(4), rel=1e-4)


def test_the_loss_terms_are_the_mixture_elbo_computed_directly(monkeypatch):
    """Without noise each z_k is the mean of q(z|x, k): the terms are q(y|x)-weighted sums of
    -log NB(x; library * decoder(z_k), theta) and KL(q(z|x,k) || p(z|k)), plus the y-KL."""
    monkeypatch.setattr(distribute, "normal", zero_noise)
    model = gmvae()
    model.prior_log_variances.assign(np.full((K, LATENT), 0.3, "float32"))
    reconstruction, kl_z, kl_y = (keras.ops.convert_to_numpy(t)
                                  for t in model.loss_terms(COUNTS))
    logits, z_mean, z_log_var = (keras.ops.convert_to_numpy(t)
                                 for t in model.posterior(COUNTS))
    q_y = softmax(logits, axis=1)
    theta = np.exp(keras.ops.convert_to_numpy(model.log_theta))
    library = COUNTS.sum(1, keepdims=True)
    expected_reconstruction = np.zeros(len(COUNTS))
    expected_kl_z = np.zeros(len(COUNTS))
    prior_means = keras.ops.convert_to_numpy(model.prior_means)
    for k in range(K):
        mu = library * keras.ops.convert_to_numpy(model.decoder(z_mean[:, k]))
        log_nb = stats.nbinom.logpmf(COUNTS, theta, theta / (theta + mu)).sum(1)
        expected_reconstruction -= q_y[:, k] * log_nb
        kl = 0.5 * (0.3 - z_log_var[:, k] + (np.exp(z_log_var[:, k])
                                             + (z_mean[:, k] - prior_means[k]) ** 2)
                    / np.exp(0.3) - 1).sum(1)
        expected_kl_z += q_y[:, k] * kl
    np.testing.assert_allclose(reconstruction, expected_reconstruction, rtol=1e-4)
    np.testing.assert_allclose(kl_z, expected_kl_z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kl_y, (q_y * log_softmax(logits, axis=1)).sum(1) + np.log(K),
                               rtol=1e-4, atol=1e-6)


def test_clusters_are_the_most_probable_components():
    model = gmvae()
    probabilities = model.cluster_probabilities(COUNTS)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model.cluster(COUNTS), probabilities.argmax(1))


def test_bad_arguments_and_bad_data_are_refused():
    with pytest.raises(ValueError, match="n_components"):
        GMVAE((12,), n_components=1)
    with pytest.raises(ValueError, match="likelihood"):
        GMVAE((12,), n_components=2, likelihood="bernoulli")
    model = gmvae()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="raw"):
        model.fit(np.log1p(COUNTS), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.cluster(COUNTS[:, :5])


@pytest.mark.slow
def test_two_replicas_train_like_one_device(strategy, monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)
    case = Case(gmvae, lambda model: model.compile(optimizer=sgd()), COUNTS,
                ("loss", "reconstruction_loss", "kl_z_loss", "kl_y_loss"))
    single = train(case)
    assert_same_training(single, train(case, strategy, initial_weights=single[1]),
                         case.loss_keys)


@pytest.mark.slow
def test_save_and_load_keep_the_clusters(tmp_path):
    model = gmvae(beta=0.5)
    model.compile(optimizer="adam")
    model.fit(COUNTS, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "gmvae.keras")
    loaded = keras.models.load_model(tmp_path / "gmvae.keras")
    assert (loaded.n_components, loaded.beta) == (K, 0.5)
    np.testing.assert_array_equal(loaded.cluster_probabilities(COUNTS),
                                  model.cluster_probabilities(COUNTS))
    np.testing.assert_array_equal(loaded.generate(4, seed=1), model.generate(4, seed=1))


def test_generate_draws_from_the_mixture_prior_repeatably():
    model = gmvae()
    np.testing.assert_array_equal(model.generate(5, seed=3), model.generate(5, seed=3))
    assert not np.allclose(model.generate(5, seed=3), model.generate(5, seed=4))
