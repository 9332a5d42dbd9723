"""LandmarkGAN and the MLP baseline: the generator loss is exactly the weighted sum of its four
terms, the energy score is the fair estimator, the linear part is ridge, the draws train only the
generator and spread like the data, training lowers the error, predictions are deterministic and
samples seeded, saving keeps both optimizers, and bad input is refused."""

from __future__ import annotations

import ast
import contextlib
import inspect

import keras
import numpy as np
import pytest
from keras import ops

from course import datasets, distribute
from course.models import LandmarkGAN, MLPRegressor, landmark

N_LANDMARKS, N_TARGETS = 6, 4
SMALL = dict(latent_dim=3, hidden_units=(16,))


def linear_pairs(n=64, seed=0):
    """Targets that are a fixed linear function of the landmarks, plus a little noise."""
    rng = np.random.default_rng(seed)
    landmarks = rng.normal(size=(n, N_LANDMARKS)).astype("float32")
    mixing = np.random.default_rng(99).normal(size=(N_LANDMARKS, N_TARGETS)) / 2
    targets = landmarks @ mixing + 0.05 * rng.normal(size=(n, N_TARGETS))
    return landmarks, targets.astype("float32")


@pytest.mark.parametrize("kind", ["mse", "l1", "huber"])
def test_reconstruction_error_matches_keras_losses(kind):
    predicted, targets = (np.random.default_rng(seed).normal(size=(8, 5)) * 2 for seed in (1, 2))
    reference = {"mse": keras.losses.MeanSquaredError(), "l1": keras.losses.MeanAbsoluteError(),
                 "huber": keras.losses.Huber(delta=1.0)}[kind]
    got = float(landmark.reconstruction_error(ops.convert_to_tensor(predicted),
                                              ops.convert_to_tensor(targets), kind))
    assert got == pytest.approx(float(reference(targets, predicted)), rel=1e-5)


@pytest.mark.parametrize("weights", [dict(reconstruction_weight=3.0),
                                     dict(reconstruction_weight=None, adversarial_weight=2.0,
                                          consistency_weight=0.5)])
def test_logged_generator_loss_is_the_weighted_sum_of_its_terms(weights):
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL, **weights)
    model.compile()
    model.fit(linear_pairs(16), batch_size=16, epochs=1, verbose=0)
    logs = model.evaluate(linear_pairs(16), batch_size=16, verbose=0,
                          return_dict=True)
    for term in ("adversarial_loss", "reconstruction_loss", "consistency_loss", "energy_score"):
        assert logs[term] > 0, f"{term} is zero"
    reconstruction_weight = weights["reconstruction_weight"] or N_TARGETS  # None: n_targets
    expected = (model.adversarial_weight * logs["adversarial_loss"]
                + reconstruction_weight * logs["reconstruction_loss"]
                + model.consistency_weight * logs["consistency_loss"]
                + model.energy_weight * logs["energy_score"])
    assert logs["g_loss"] == pytest.approx(expected, rel=1e-5)


def test_training_logs_every_term_and_lowers_the_error():
    landmarks, targets = linear_pairs(128)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile(g_optimizer=keras.optimizers.Adam(3e-3))
    error_before = np.abs(model.predict(landmarks) - targets).mean()
    history = model.fit((landmarks, targets), batch_size=32, epochs=15, verbose=0)
    assert set(history.history) == {m.name for m in model.metrics} == {
        "d_loss", "g_loss", "adversarial_loss", "reconstruction_loss", "consistency_loss",
        "energy_score"}
    assert np.abs(model.predict(landmarks) - targets).mean() < 0.6 * error_before


def test_energy_score_loss_is_the_fair_estimator_with_two_draws():
    from course import metrics

    rng = np.random.default_rng(3)
    first, second, targets = (rng.normal(size=(8, 5)).astype("float32") for _ in range(3))
    got = float(landmark.energy_score_loss(first, second, targets))
    expected = metrics.energy_score(np.stack([first, second], axis=1), targets).mean()
    assert got == pytest.approx(expected, rel=1e-5)


def test_fit_starts_from_ridge_and_cuts_draws_at_each_targets_floor():
    from sklearn.linear_model import RidgeCV

    landmarks, targets = linear_pairs(64)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    alpha = model.fit_closed_form(landmarks, targets)
    ridge = RidgeCV(alphas=landmark.RIDGE_ALPHAS).fit(landmarks, targets)
    assert alpha == ridge.alpha_ and model.linear_solved
    # The refinement starts at 0: before training the prediction is ridge's.
    np.testing.assert_allclose(model.predict(landmarks, verbose=0), ridge.predict(landmarks),
                               rtol=1e-4, atol=1e-4)
    draws = np.stack([model.generate(landmarks, seed=seed) for seed in range(5)])
    assert np.all(draws >= targets.min(axis=0) - 1e-6)
    assert np.any(np.isclose(draws, targets.min(axis=0)))


def test_the_draws_train_the_generator_only_and_their_noise_matters():
    landmarks, targets = linear_pairs(64)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, reconstruction_weight=0.0,
                        consistency_weight=0.0, **SMALL)
    model.compile()
    model.fit_closed_form(landmarks, targets)
    predictor_before = [w.copy() for w in model.predictor.get_weights()]
    generator_before = [w.copy() for w in model.generator.get_weights()]
    model.fit((landmarks, targets), batch_size=32, epochs=2, verbose=0)
    for before, after in zip(predictor_before, model.predictor.get_weights()):
        np.testing.assert_array_equal(before, after)  # The stop-gradient holds.
    assert any(not np.array_equal(b, a)
               for b, a in zip(generator_before, model.generator.get_weights()))
    # Draws of one cell differ between seeds by about as much as cells differ from the
    # prediction (the data's noise), not by a rounding error.
    spread = np.stack([model.generate(landmarks, seed=seed) for seed in range(8)]).std(axis=0)
    assert spread.mean() > 0.1 * np.abs(targets - model.predict(landmarks, verbose=0)).mean()


def test_prediction_is_deterministic_and_samples_follow_their_seed():
    landmarks, _ = linear_pairs(10)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    prediction = model.predict(landmarks)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (10, N_TARGETS)
    np.testing.assert_array_equal(prediction, model.predict(landmarks))
    sample = model.generate(landmarks, seed=1)
    assert sample.shape == prediction.shape and not np.allclose(sample, prediction)
    np.testing.assert_array_equal(sample, model.generate(landmarks, seed=1))
    assert not np.allclose(sample, model.generate(landmarks, seed=2))


def test_save_and_load_keeps_config_both_optimizers_and_predictions(tmp_path):
    landmarks, targets = linear_pairs(32)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, reconstruction="huber", reconstruction_weight=3.0,
                        consistency_weight=0.5, noise_std=0.2, seed=5, **SMALL)
    model.compile(d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.Adam(1e-3))
    model.fit((landmarks, targets), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "landmark.keras")
    loaded = keras.models.load_model(tmp_path / "landmark.keras")
    assert loaded.get_config() == model.get_config()
    assert int(loaded.d_optimizer.iterations) == int(loaded.g_optimizer.iterations) == 2
    assert isinstance(loaded.d_optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(loaded.predict(landmarks), model.predict(landmarks))


def test_wrong_shapes_and_settings_are_refused_with_what_to_do():
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile()
    landmarks, targets = linear_pairs(8)
    with pytest.raises(ValueError, match=r"targets must have shape \(batch, 4\).*\(batch, 3\)"):
        model.fit((landmarks, targets[:, :3]), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"\(n_cells, 6\)"):
        model.predict(landmarks[:, :5])
    with pytest.raises(ValueError, match="pairs"):
        model.fit(landmarks, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="reconstruction_weight"):
        LandmarkGAN(N_LANDMARKS, N_TARGETS, reconstruction_weight=-1.0)
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        LandmarkGAN(N_LANDMARKS, N_TARGETS, reconstruction="l2")


def compiled_models():
    gan = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    gan.compile()
    mlp = MLPRegressor(N_LANDMARKS, N_TARGETS, hidden_units=(8,))
    mlp.compile(optimizer="adam", loss="mse")
    return gan, mlp


@pytest.mark.parametrize("where", ["landmarks", "targets", "validation"])
def test_nan_input_to_fit_is_a_clear_value_error(where):
    landmarks, targets = linear_pairs(16)
    validation = linear_pairs(8, seed=1)
    poisoned = {"landmarks": landmarks, "targets": targets, "validation": validation[0]}
    poisoned[where] = poisoned[where].copy()
    poisoned[where][3, 1] = np.nan
    validation = (poisoned["validation"], validation[1])
    gan, mlp = compiled_models()
    with pytest.raises(ValueError, match="contains 1 NaN"):
        gan.fit((poisoned["landmarks"], poisoned["targets"]), validation_data=validation,
                verbose=0)
    with pytest.raises(ValueError, match="contains 1 NaN"):
        mlp.fit(poisoned["landmarks"], poisoned["targets"], validation_data=validation,
                verbose=0)


def test_nan_input_to_evaluate_and_predict_is_a_clear_value_error():
    landmarks, targets = linear_pairs(16)
    landmarks[0, 0] = np.inf
    for model in compiled_models():
        with pytest.raises(ValueError, match="NaN or infinite"):
            model.evaluate(landmarks, targets, verbose=0)
        with pytest.raises(ValueError, match="NaN or infinite"):
            model.predict(landmarks, verbose=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        compiled_models()[0].generate(landmarks)


def test_neither_model_uses_dropout():
    """Keras repeats the dropout mask on every replica: a distributed step would differ."""
    for model in compiled_models():
        layers = [layer for sub in model.layers for layer in getattr(sub, "layers", [sub])]
        assert layers and not any(isinstance(layer, keras.layers.Dropout) for layer in layers)


def test_no_function_in_the_models_is_longer_than_40_lines():
    source = inspect.getsource(landmark)
    functions = [node for node in ast.walk(ast.parse(source))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in functions}
    assert "train_step" in lengths and max(lengths.values()) <= 40, lengths


def test_landmark_gan_trains_under_mirrored_strategy(strategy):
    with strategy.scope():
        model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
        model.compile()
    dataset = datasets.as_dataset(linear_pairs(32), batch_size=8, drop_remainder=True)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert int(model.d_optimizer.iterations.numpy()) == 4


def train_mlp(strategy=None, initial_weights=None):
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        mlp = MLPRegressor(N_LANDMARKS, N_TARGETS, hidden_units=(8,))
        mlp.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    if initial_weights is not None:
        mlp.set_weights(initial_weights)
    start = mlp.get_weights()
    dataset = datasets.as_dataset(linear_pairs(16), batch_size=8, shuffle=False,
                                  drop_remainder=True)
    history = mlp.fit(dataset, epochs=1, verbose=0)
    return mlp, start, history.history["loss"]


def test_a_two_replica_mlp_step_equals_the_single_device_step(strategy):
    single, start, single_loss = train_mlp()
    distributed, _, distributed_loss = train_mlp(strategy, initial_weights=start)
    assert any(not np.allclose(a, b) for a, b in zip(start, single.get_weights()))
    for expected, got in zip(single.get_weights(), distributed.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(distributed_loss, single_loss, rtol=1e-4)


def test_landmark_gan_trains_in_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile()
    history = model.fit(linear_pairs(32), batch_size=8, epochs=1, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert model.predict(linear_pairs(4)[0]).dtype == np.float32


def test_mlp_baseline_fits_with_mse_and_round_trips(tmp_path):
    landmarks, targets = linear_pairs(128)
    mlp = MLPRegressor(N_LANDMARKS, N_TARGETS, hidden_units=(32,))
    mlp.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = mlp.fit(landmarks, targets, batch_size=32, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    mlp.save(tmp_path / "mlp.keras")
    loaded = keras.models.load_model(tmp_path / "mlp.keras")
    assert loaded.get_config() == mlp.get_config()
    np.testing.assert_allclose(
        loaded.predict(landmarks, verbose=0), mlp.predict(landmarks, verbose=0), rtol=1e-5
    )


def test_landmark_split_refuses_a_landmark_named_twice():
    cells = datasets.synthetic_counts(n_cells=30, n_genes=12, seed=0)
    with pytest.raises(ValueError, match="named more than once: gene_3"):
        datasets.landmark_split(cells, n_landmarks=3, landmarks=["gene_3", "gene_1", "gene_3"])


def test_target_expression_undoes_the_standardization():
    cells = datasets.synthetic_counts(n_cells=40, n_genes=12, seed=0)
    split = datasets.landmark_split(cells, n_landmarks=4, seed=0)
    columns = [list(cells.var_names).index(gene) for gene in split.target_genes]
    np.testing.assert_allclose(split.target_expression(split.y_test),
                               cells.X[split.test_index][:, columns], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(n_cells, 8\)"):
        split.target_expression(split.y_test[:, :3])


def test_per_replica_noise_comes_from_distribute(monkeypatch):
    calls = []
    original = distribute.normal

    def spy(shape, seed_generator, dtype="float32"):
        calls.append(shape)
        return original(shape, seed_generator, dtype)

    monkeypatch.setattr(distribute, "normal", spy)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile()
    model.fit(linear_pairs(8), batch_size=8, epochs=1, verbose=0)
    assert calls


@pytest.mark.parametrize("where", ["landmarks", "targets"])
def test_nan_in_a_later_batch_of_a_dataset_is_a_value_error_naming_it(where):
    import tensorflow as tf

    landmarks, targets = linear_pairs(32)
    {"landmarks": landmarks, "targets": targets}[where][20, 1] = np.nan  # third batch of four
    dataset = tf.data.Dataset.from_tensor_slices((landmarks, targets)).batch(8)
    for model in compiled_models():
        for method in (model.fit, model.evaluate):
            with pytest.raises(ValueError, match=f"The {where} contains (1 )?NaN or infinite"):
                method(dataset, verbose=0)
        assert all(np.all(np.isfinite(np.array(w))) for w in model.weights)
    mlp = compiled_models()[1]
    with pytest.raises(ValueError, match="The landmarks contains NaN"):
        mlp.predict(tf.data.Dataset.from_tensor_slices(
            np.where(np.arange(32)[:, None] == 20, np.nan, landmarks)).batch(8), verbose=0)
