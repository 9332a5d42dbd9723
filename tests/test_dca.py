"""DCA: the deep count autoencoder (ZINB loss, deterministic code), and imputation scoring."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from test_distributed_training import Case, assert_same_training, sgd, train

from course import datasets, likelihoods
from course.demos import vae_family
from course.models import DCA

N_GENES = 30


@pytest.fixture(scope="module")
def counts():
    adata = datasets.synthetic_counts(n_cells=256, n_genes=N_GENES, n_cell_types=3, seed=0)
    return datasets.counts(adata)


def tiny_dca(**kwargs):
    return DCA(N_GENES, latent_dim=4, hidden_units=(16,), **kwargs)


def test_the_loss_is_the_zinb_negative_log_likelihood_summed_over_genes(counts):
    model = tiny_dca()
    mu, theta, dropout_logits = model.zinb_parameters(counts[:8])
    expected = -np.sum(likelihoods.zero_inflated_negative_binomial(
        counts[:8], mu, theta, dropout_logits), axis=1)
    np.testing.assert_allclose(model.reconstruction_loss(counts[:8]), expected, rtol=1e-5)


def test_the_code_is_deterministic(counts):
    model = tiny_dca()
    np.testing.assert_array_equal(model.denoise(counts[:16]), model.denoise(counts[:16]))
    assert model.encode(counts[:16]).shape == (16, 4)


def test_the_mean_scales_with_the_size_factor(counts):
    model = tiny_dca(batch_norm=False)
    model.compile(optimizer="adam")
    model.fit(counts, epochs=1, batch_size=64, verbose=0)
    mu, _, _ = model.zinb_parameters(counts[:4])
    # Doubling every count keeps the normalized input, and doubles the size factor.
    doubled, _, _ = model.zinb_parameters(2 * counts[:4])
    np.testing.assert_allclose(np.asarray(doubled), 2 * np.asarray(mu), rtol=1e-4)


def test_training_lowers_the_loss_and_records_the_median_library(counts):
    model = tiny_dca()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(counts, epochs=8, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert float(model.median_library) == pytest.approx(np.median(counts.sum(axis=1)))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda x: np.log1p(x), "raw integer counts"),
        (lambda x: x[:, :-1], "shape"),
        (lambda x: np.vstack([x, np.zeros((1, N_GENES))]), "no counts"),
    ],
)
def test_bad_counts_are_refused_before_training(counts, corrupt, message):
    model = tiny_dca()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model.fit(corrupt(counts), epochs=1, verbose=0)


def test_save_and_load_keep_the_statistics_and_the_denoising(tmp_path, counts):
    model = tiny_dca()
    model.compile(optimizer="adam")
    model.fit(counts, epochs=2, batch_size=64, verbose=0)
    model.save(tmp_path / "dca.keras")
    loaded = keras.models.load_model(tmp_path / "dca.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.denoise(counts[:10]), model.denoise(counts[:10]), rtol=1e-5)


def test_two_replicas_make_the_single_device_update(strategy):
    data = np.random.default_rng(0).poisson(3.0, size=(16, 12)).astype("float32") + 1
    case = Case(lambda: DCA(12, latent_dim=2, hidden_units=(8,)),
                lambda model: model.compile(optimizer=sgd()), data, ("loss",))
    single = train(case)
    assert_same_training(single, train(case, strategy, initial_weights=single[1]), case.loss_keys)


# Imputation scoring --------------------------------------------------------------------------


def test_masking_zeroes_a_fraction_of_the_nonzero_counts(counts):
    corrupted, mask = vae_family.mask_nonzero(counts, fraction=0.1, seed=0)
    assert mask.sum() == pytest.approx(0.1 * (counts > 0).sum(), abs=1)
    assert np.all(corrupted[mask] == 0) and np.all(counts[mask] > 0)
    np.testing.assert_array_equal(corrupted[~mask], counts[~mask])
    again, _ = vae_family.mask_nonzero(counts, fraction=0.1, seed=0)
    np.testing.assert_array_equal(again, corrupted)


def test_imputation_scores_reward_the_truth(counts):
    _, mask = vae_family.mask_nonzero(counts, fraction=0.1, seed=0)
    perfect = vae_family.imputation_scores(counts, counts, mask)
    assert perfect["mae_log1p"] == 0.0 and perfect["pearson_log1p"] == pytest.approx(1.0)
    zeros = vae_family.imputation_scores(counts, np.zeros_like(counts), mask)
    assert zeros["mae_log1p"] > 0.5 and np.isnan(zeros["pearson_log1p"])


@pytest.mark.slow
def test_dca_imputes_better_than_the_library_normalized_mean(counts):
    corrupted, mask = vae_family.mask_nonzero(counts, fraction=0.1, seed=0)
    model = tiny_dca()
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(corrupted, epochs=20, batch_size=64, verbose=0)
    dca = vae_family.imputation_scores(counts, model.denoise(corrupted), mask)
    baseline = vae_family.imputation_scores(
        counts, vae_family.library_normalized_mean(corrupted), mask)
    assert dca["mae_log1p"] < baseline["mae_log1p"]


@pytest.mark.parametrize("bad, message", [(np.nan, "The counts contains NaN"),
                                          (0.5, "non-integer"), (-1.0, "negative")])
def test_bad_counts_in_a_later_batch_of_a_dataset_are_a_value_error(counts, bad, message):
    import tensorflow as tf

    model = tiny_dca()
    model.compile(optimizer="adam")
    poisoned = counts[:32].astype("float32")
    poisoned[20, 3] = bad  # in the third batch of four
    for method in (model.evaluate, model.predict):
        with pytest.raises(ValueError, match=message):
            method(tf.data.Dataset.from_tensor_slices(poisoned).batch(8), verbose=0)


def test_an_endless_dataset_is_refused_instead_of_read_forever(counts):
    import tensorflow as tf

    model = tiny_dca()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="finite dataset"):
        model.fit(tf.data.Dataset.from_tensor_slices(counts).batch(8).repeat(),
                  steps_per_epoch=2, verbose=0)
