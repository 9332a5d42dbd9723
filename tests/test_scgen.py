"""scGen: latent arithmetic for perturbation responses, and its synthetic ground truth."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from test_distributed_training import Case, assert_same_training, sgd, train, zero_noise

from course import datasets, distribute
from course.demos import vae_family
from course.models import ScGen

N_GENES = 40


@pytest.fixture(scope="module")
def perturbation():
    return datasets.synthetic_perturbation(n_cells=400, n_genes=N_GENES, n_cell_types=3,
                                           n_response_genes=5, seed=0)


def labels_of(adata):
    return (adata.obs["condition"].astype(str).to_numpy(),
            adata.obs["cell_type"].astype(str).to_numpy())


# The synthetic ground truth ------------------------------------------------------------------


def test_synthetic_perturbation_has_both_conditions_in_every_type(perturbation):
    conditions, cell_types = labels_of(perturbation)
    for cell_type in np.unique(cell_types):
        assert set(conditions[cell_types == cell_type]) == {"control", "stimulated"}
    assert perturbation.uns["true_log_fold_change"].shape == (3, N_GENES)
    assert np.all(perturbation.layers["counts"] >= 0)


def test_the_true_response_is_cell_type_specific(perturbation):
    true = perturbation.uns["true_log_fold_change"]
    induced = np.all(true > 0.5, axis=0)
    assert induced.sum() >= 3  # The induced program rises in every type...
    # ...by different amounts (types that already express a gene respond less).
    assert np.ptp(true[:, induced], axis=0).max() > 0.5


def test_synthetic_perturbation_is_seeded_and_checks_its_arguments():
    first = datasets.synthetic_perturbation(n_cells=50, n_genes=20, n_response_genes=2, seed=3)
    again = datasets.synthetic_perturbation(n_cells=50, n_genes=20, n_response_genes=2, seed=3)
    np.testing.assert_array_equal(first.layers["counts"], again.layers["counts"])
    with pytest.raises(ValueError, match="n_response_genes"):
        datasets.synthetic_perturbation(n_genes=10, n_response_genes=6)


# Latent arithmetic ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(perturbation):
    keras.utils.set_random_seed(0)
    model = ScGen((N_GENES,), latent_dim=4, hidden_units=(16,), seed=0)
    model.compile(optimizer="adam")
    model.fit(np.asarray(perturbation.X), epochs=3, batch_size=64, verbose=0)
    return model


def test_delta_is_the_mean_over_types_of_the_stimulated_minus_control_latent_means(
    trained, perturbation
):
    x = np.asarray(perturbation.X)
    conditions, cell_types = labels_of(perturbation)
    z = trained.encode(x)
    expected = np.mean([
        z[(cell_types == t) & (conditions == "stimulated")].mean(axis=0)
        - z[(cell_types == t) & (conditions == "control")].mean(axis=0)
        for t in np.unique(cell_types)
    ], axis=0)
    delta = trained.latent_delta(x, conditions, cell_types)
    np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-6)


def test_prediction_decodes_the_shifted_latent_codes(trained, perturbation):
    x = np.asarray(perturbation.X)[:10]
    delta = np.full(4, 0.5, np.float32)
    np.testing.assert_allclose(trained.predict_perturbation(x, delta),
                               trained.decode(trained.encode(x) + delta), rtol=1e-5)


def test_bad_delta_and_labels_are_clear_errors(trained, perturbation):
    x = np.asarray(perturbation.X)
    conditions, cell_types = labels_of(perturbation)
    with pytest.raises(ValueError, match="delta must have shape"):
        trained.predict_perturbation(x[:2], np.zeros(3))
    with pytest.raises(ValueError, match="one row per cell"):
        trained.latent_delta(x, conditions[:-1], cell_types)
    with pytest.raises(ValueError, match="both conditions"):
        trained.latent_delta(x, np.full(len(x), "control"), cell_types)


def test_holdout_refuses_data_without_the_columns(perturbation):
    without_condition = perturbation.copy()
    del without_condition.obs["condition"]
    with pytest.raises(ValueError, match="condition"):
        vae_family.scgen_holdout(without_condition, "type_0", 1)
    with pytest.raises(ValueError, match="Unknown cell type"):
        vae_family.scgen_holdout(perturbation, "type_9", 1)


def test_nan_expression_is_refused_at_fit_predict_and_in_the_perturbation(trained, perturbation):
    x = np.asarray(perturbation.X)[:64].copy()
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        trained.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        trained.predict(x, verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        trained.predict_perturbation(x, np.zeros(4, np.float32))


def test_the_config_names_the_constructor_arguments(trained):
    config = trained.get_config()
    assert config["data_shape"] == (N_GENES,) and config["latent_dim"] == 4
    assert config["likelihood"] == "gaussian" and "input_shape" not in config


def test_save_and_load_keep_the_model(tmp_path, trained, perturbation):
    trained.save(tmp_path / "scgen.keras")
    loaded = keras.models.load_model(tmp_path / "scgen.keras")
    assert isinstance(loaded, ScGen) and loaded.get_config() == trained.get_config()
    x = np.asarray(perturbation.X)[:5]
    np.testing.assert_allclose(loaded.encode(x), trained.encode(x), atol=1e-6)


def test_two_replicas_make_the_single_device_update(strategy, monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)
    data = np.random.default_rng(0).normal(size=(16, 12)).astype("float32")
    case = Case(lambda: ScGen((12,), latent_dim=2, hidden_units=(8,)),
                lambda model: model.compile(optimizer=sgd()), data,
                ("loss", "reconstruction_loss", "kl_loss"))
    single = train(case)
    assert_same_training(single, train(case, strategy, initial_weights=single[1]), case.loss_keys)


@pytest.mark.slow
def test_scgen_predicts_the_held_out_response_better_than_no_change(perturbation):
    result = vae_family.scgen_holdout(perturbation, "type_0", epochs=30, n_top_genes=10)
    assert set(result["r2_top_genes"]) == {"scgen", "no_change", "other_types_average_response"}
    assert result["r2_top_genes"]["scgen"] > result["r2_top_genes"]["no_change"]
