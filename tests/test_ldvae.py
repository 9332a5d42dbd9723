"""LDVAE: the VAE with a linear decoder, whose weights are gene loadings per latent factor."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import spearmanr
from test_distributed_training import (
    Case,
    assert_same_training,
    sgd,
    train,
    zero_noise,
)

from course import datasets, distribute, plots
from course.models import VAE

N_GENES = 40


@pytest.fixture(scope="module")
def cells():
    adata = datasets.synthetic_counts(n_cells=256, n_genes=N_GENES, n_cell_types=2, seed=1)
    return adata


def ldvae(likelihood="nb", latent_dim=3, **kwargs):
    return VAE((N_GENES,), latent_dim=latent_dim, hidden_units=(32,), likelihood=likelihood,
               linear_decoder=True, seed=0, **kwargs)


def test_the_linear_decoder_is_one_dense_layer_from_z():
    dense = [layer for layer in ldvae().decoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.name for layer in dense] == ["scale"]
    assert dense[0].kernel.shape == (3, N_GENES)


def test_decoding_is_the_softmax_of_the_loadings_times_z():
    model = ldvae()
    z = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    bias = keras.ops.convert_to_numpy(model.decoder.get_layer("scale").bias)
    expected = softmax(z @ model.loadings().T + bias, axis=1) * 100.0
    np.testing.assert_allclose(model.decode(z, library_size=100.0), expected, rtol=1e-4)
    assert model.loadings().shape == (N_GENES, 3)


def test_zinb_and_gaussian_ldvaes_have_loadings_too():
    assert ldvae("zinb").loadings().shape == (N_GENES, 3)
    assert ldvae("gaussian").loadings().shape == (N_GENES, 3)


@pytest.mark.slow
def test_loadings_find_the_genes_that_separate_two_cell_types(cells):
    counts = datasets.counts(cells)
    cell_types, _ = datasets.labels(cells)
    model = ldvae(latent_dim=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(counts, epochs=60, batch_size=64, verbose=0)
    # The factor direction that best separates the types in z, mapped to genes by the loadings.
    z = model.encode(counts)
    direction = z[cell_types == 1].mean(axis=0) - z[cell_types == 0].mean(axis=0)
    gene_effect = model.loadings() @ direction
    normalized = counts / counts.sum(axis=1, keepdims=True)
    log_fold_change = np.log(normalized[cell_types == 1].mean(axis=0) + 1e-6) - np.log(
        normalized[cell_types == 0].mean(axis=0) + 1e-6
    )
    assert spearmanr(gene_effect, log_fold_change).statistic > 0.7


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(decoder="linear"), "Unrecognized keyword arguments"),
        (dict(linear_decoder=True, network="conv"), "needs network='dense'"),
    ],
)
def test_bad_decoder_arguments_say_what_to_do(arguments, message):
    with pytest.raises(ValueError, match=message):
        VAE((28, 28, 1), **arguments)


def test_a_deep_decoder_has_no_loadings():
    with pytest.raises(ValueError, match="linear_decoder=True"):
        VAE((N_GENES,), likelihood="nb").loadings()


def test_save_and_load_keep_the_linear_decoder(tmp_path, cells):
    model = ldvae()
    model.compile(optimizer="adam")
    model.fit(datasets.counts(cells), epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "ldvae.keras")
    loaded = keras.models.load_model(tmp_path / "ldvae.keras")
    assert loaded.get_config()["linear_decoder"] is True
    np.testing.assert_array_equal(loaded.loadings(), model.loadings())


def test_two_replicas_make_the_single_device_update(strategy, monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)
    counts = np.random.default_rng(0).poisson(3.0, size=(16, 12)).astype("float32")
    case = Case(
        lambda: VAE((12,), latent_dim=2, hidden_units=(8,), likelihood="nb",
                    linear_decoder=True),
        lambda model: model.compile(optimizer=sgd()),
        counts,
        ("loss", "reconstruction_loss", "kl_loss"),
    )
    single = train(case)
    assert_same_training(single, train(case, strategy, initial_weights=single[1]), case.loss_keys)


def test_top_genes_plot_has_one_panel_per_factor():
    loadings = np.random.default_rng(0).normal(size=(N_GENES, 3))
    figure = plots.top_genes_per_factor(loadings, [f"g{i}" for i in range(N_GENES)], n_top=4)
    titled = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in titled] == ["factor 0", "factor 1", "factor 2"]
    with pytest.raises(ValueError, match="gene names"):
        plots.top_genes_per_factor(loadings, ["only one"])
