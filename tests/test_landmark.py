"""LandmarkGAN and the MLP baseline: the generator loss is exactly the weighted sum of its three
terms, training lowers the error, predictions are deterministic, saving keeps both optimizers,
and bad input is refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from course import datasets
from course.models import LandmarkGAN, MLPRegressor

N_LANDMARKS, N_TARGETS = 6, 4
SMALL = dict(latent_dim=3, hidden_units=(16,))


def linear_pairs(n=64, seed=0):
    """Targets that are a fixed linear function of the landmarks, plus a little noise."""
    rng = np.random.default_rng(seed)
    landmarks = rng.normal(size=(n, N_LANDMARKS)).astype("float32")
    mixing = np.random.default_rng(99).normal(size=(N_LANDMARKS, N_TARGETS)) / 2
    targets = landmarks @ mixing + 0.05 * rng.normal(size=(n, N_TARGETS))
    return landmarks, targets.astype("float32")


def losses_with_same_noise(model, landmarks, targets):
    """The generator losses, drawn twice with identical noise (the seed state is rewound)."""
    state = np.array(model.seed_generator.state)
    first = model.generator_losses(landmarks, targets)
    model.seed_generator.state.assign(state)
    return first, lambda: model.generator_losses(landmarks, targets)


@pytest.mark.parametrize(
    "weight, term", [("l1_weight", "l1_loss"), ("consistency_weight", "consistency_loss"),
                     ("adversarial_weight", "adversarial_loss")]
)
def test_doubling_a_weight_adds_exactly_its_term_to_the_generator_loss(weight, term):
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, l1_weight=3.0, noise_std=0.5, **SMALL)
    landmarks, targets = map(ops.convert_to_tensor, linear_pairs(16))
    losses, again = losses_with_same_noise(model, landmarks, targets)
    for name in ("adversarial_loss", "l1_loss", "consistency_loss"):
        assert float(losses[name]) > 0, f"{name} is zero"
    setattr(model, weight, 2 * getattr(model, weight))
    doubled = again()
    assert float(doubled[term]) == pytest.approx(float(losses[term]), rel=1e-6)
    added = float(doubled["g_loss"]) - float(losses["g_loss"])
    assert added == pytest.approx(getattr(model, weight) / 2 * float(losses[term]), rel=1e-4)


def test_the_default_l1_weight_is_the_number_of_targets():
    default = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    explicit = LandmarkGAN(N_LANDMARKS, N_TARGETS, l1_weight=float(N_TARGETS), **SMALL)
    explicit.set_weights(default.get_weights())
    landmarks, targets = map(ops.convert_to_tensor, linear_pairs(16))
    default_losses, _ = losses_with_same_noise(default, landmarks, targets)
    explicit_losses, _ = losses_with_same_noise(explicit, landmarks, targets)
    assert float(default_losses["g_loss"]) == pytest.approx(float(explicit_losses["g_loss"]))


def test_training_logs_every_term_and_lowers_the_error():
    landmarks, targets = linear_pairs(128)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile(g_optimizer=keras.optimizers.Adam(3e-3))
    error_before = np.abs(model.predict(landmarks) - targets).mean()
    history = model.fit((landmarks, targets), batch_size=32, epochs=15, verbose=0)
    assert set(history.history) == {m.name for m in model.metrics} == {
        "d_loss", "g_loss", "adversarial_loss", "l1_loss", "consistency_loss"}
    assert np.abs(model.predict(landmarks) - targets).mean() < 0.6 * error_before


def test_prediction_is_deterministic_and_shaped_like_the_targets():
    landmarks, _ = linear_pairs(10)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    prediction = model.predict(landmarks)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (10, N_TARGETS)
    np.testing.assert_array_equal(prediction, model.predict(landmarks))


def test_save_and_load_keeps_config_both_optimizers_and_predictions(tmp_path):
    landmarks, targets = linear_pairs(32)
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, l1_weight=3.0, consistency_weight=0.5,
                        noise_std=0.2, seed=5, **SMALL)
    model.compile(d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.Adam(1e-3))
    model.fit((landmarks, targets), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "landmark.keras")
    loaded = keras.models.load_model(tmp_path / "landmark.keras")
    assert loaded.get_config() == model.get_config()
    assert int(loaded.d_optimizer.iterations) == int(loaded.g_optimizer.iterations) == 2
    assert isinstance(loaded.d_optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(loaded.predict(landmarks), model.predict(landmarks))


def test_wrong_shapes_are_refused_with_the_expected_shape():
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile()
    landmarks, targets = linear_pairs(8)
    with pytest.raises(ValueError, match=r"targets must have shape \(batch, 4\).*\(batch, 3\)"):
        model.fit((landmarks, targets[:, :3]), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"\(n_cells, 6\)"):
        model.predict(landmarks[:, :5])
    with pytest.raises(ValueError, match="pairs"):
        model.fit(landmarks, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="l1_weight"):
        LandmarkGAN(N_LANDMARKS, N_TARGETS, l1_weight=-1.0)


def test_landmark_gan_trains_under_mirrored_strategy(strategy):
    with strategy.scope():
        model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
        model.compile()
    dataset = datasets.as_dataset(linear_pairs(32), batch_size=8, drop_remainder=True)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert int(model.d_optimizer.iterations.numpy()) == 4


def test_landmark_gan_trains_in_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    model = LandmarkGAN(N_LANDMARKS, N_TARGETS, **SMALL)
    model.compile()
    history = model.fit(linear_pairs(32), batch_size=8, epochs=1, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert model.predict(linear_pairs(4)[0]).dtype == np.float32


def test_mlp_baseline_fits_with_mse_and_round_trips(tmp_path):
    landmarks, targets = linear_pairs(128)
    mlp = MLPRegressor(N_LANDMARKS, N_TARGETS, hidden_units=(32,), dropout=0.0)
    mlp.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = mlp.fit(landmarks, targets, batch_size=32, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    mlp.save(tmp_path / "mlp.keras")
    loaded = keras.models.load_model(tmp_path / "mlp.keras")
    assert loaded.get_config() == mlp.get_config()
    np.testing.assert_allclose(
        loaded.predict(landmarks, verbose=0), mlp.predict(landmarks, verbose=0), rtol=1e-5
    )
