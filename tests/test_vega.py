"""VEGA: a VAE whose masked linear decoder makes each latent variable a gene module's activity."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import softmax
from test_distributed_training import Case, assert_same_training, sgd, train, zero_noise

from course import distribute
from course.datasets.markers import PBMC_MARKERS, markers_present
from course.models.vega import VEGA

GENES = [f"g{i}" for i in range(12)]
MODULES = {"first": ["g0", "g1", "g2"], "second": ["g3", "g4"], "partly known": ["g5", "xyz"]}
COUNTS = np.random.default_rng(0).poisson(3.0, size=(16, 12)).astype("float32") + 1


def vega(**kwargs):
    return VEGA(GENES, MODULES, hidden_units=(8,), seed=0, **kwargs)


def test_each_module_reaches_only_its_genes_and_the_unannotated_node_all():
    model = vega(n_unannotated=2)
    weights = model.module_weights()
    assert model.module_names == ["first", "second", "partly known", "unannotated_0",
                                  "unannotated_1"]
    assert weights.shape == (12, 5)
    assert set(np.flatnonzero(weights[:, 0])) == {0, 1, 2}
    assert set(np.flatnonzero(weights[:, 2])) == {5}
    assert np.all(weights[:, 3:] > 0)


def test_training_keeps_weights_non_negative_and_masked_weights_at_zero():
    model = vega()
    model.compile(optimizer=keras.optimizers.Adam(0.5))  # big steps push weights below 0
    model.fit(COUNTS, epochs=3, batch_size=8, verbose=0)
    weights = model.module_weights()
    assert weights.min() >= 0.0 and np.any(weights[:3, 0] == 0.0)
    assert np.all(weights[model.mask.T == 0] == 0.0)


def test_the_loss_is_the_negative_elbo_of_the_masked_decoder(monkeypatch):
    """Without noise z is the posterior mean: -log NB(x; library * softmax(z (W*M) + b), theta)
    and the Gaussian KL, computed directly."""
    monkeypatch.setattr(distribute, "normal", zero_noise)
    model = vega()
    model.log_theta.assign(np.linspace(-1.0, 1.0, 12).astype("float32"))
    reconstruction, kl = (keras.ops.convert_to_numpy(t) for t in model.loss_terms(COUNTS))
    z_mean, z_log_var = model.encode(COUNTS, return_distribution=True)
    bias = keras.ops.convert_to_numpy(model.decoder.get_layer("modules").bias)
    mu = COUNTS.sum(1, keepdims=True) * softmax(z_mean @ model.module_weights().T + bias, axis=1)
    theta = np.exp(np.linspace(-1.0, 1.0, 12))
    expected = -stats.nbinom.logpmf(COUNTS, theta, theta / (theta + mu)).sum(1)
    np.testing.assert_allclose(reconstruction, expected, rtol=1e-4)
    expected_kl = 0.5 * (np.exp(z_log_var) + z_mean**2 - 1 - z_log_var).sum(1)
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("modules, words", [
    ({"none known": ["xyz"]}, "none of its genes"),
    ({}, "at least one module"),
])
def test_a_module_without_known_genes_is_refused(modules, words):
    with pytest.raises(ValueError, match=words):
        VEGA(GENES, modules)


def test_duplicate_gene_names_and_log_normalized_data_are_refused():
    with pytest.raises(ValueError, match="duplicates"):
        VEGA([*GENES, "g0"], MODULES)
    model = vega()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="raw"):
        model.fit(np.log1p(COUNTS), epochs=1, verbose=0)


@pytest.mark.slow
def test_two_replicas_train_like_one_device(strategy, monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)
    case = Case(vega, lambda model: model.compile(optimizer=sgd()), COUNTS,
                ("loss", "reconstruction_loss", "kl_loss"))
    single = train(case)
    assert_same_training(single, train(case, strategy, initial_weights=single[1]),
                         case.loss_keys)


def test_save_and_load_keep_the_modules_and_the_weights(tmp_path):
    model = vega(n_unannotated=2, beta=0.5)
    model.compile(optimizer="adam")
    model.fit(COUNTS, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "vega.keras")
    loaded = keras.models.load_model(tmp_path / "vega.keras")
    assert loaded.module_names == model.module_names and loaded.beta == 0.5
    np.testing.assert_array_equal(loaded.module_weights(), model.module_weights())
    np.testing.assert_array_equal(loaded.encode(COUNTS), model.encode(COUNTS))


def test_every_pbmc_marker_module_keeps_genes_on_the_bundled_cells():
    from course import datasets

    present = markers_present(datasets.load_pbmc(source="bundled").var_names)
    assert set(present) == set(PBMC_MARKERS)
    assert min(len(genes) for genes in present.values()) >= 4
