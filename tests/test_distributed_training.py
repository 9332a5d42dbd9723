"""Every model trains correctly under MirroredStrategy over two logical CPUs.

The weight update for a global batch must equal the single-device update for the same batch, and
the logged losses must equal the single-device values. Latent noise is switched off (zeros) for
the comparison so that both runs compute exactly the same thing; plain SGD is used because Adam's
scale invariance would hide a wrongly scaled gradient. A companion test removes the division by
the number of replicas and checks that the comparison then FAILS, which proves it can.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

from course import datasets, distribute, models

GLOBAL_BATCH = 8
N_EXAMPLES = 16  # two global batches: two optimizer steps
RNG = np.random.default_rng(0)
GAUSSIAN_DATA = RNG.normal(size=(N_EXAMPLES, 12)).astype("float32")
COUNT_DATA = RNG.poisson(3.0, size=(N_EXAMPLES, 12)).astype("float32")
LABELS = np.arange(N_EXAMPLES) % 3


def sgd():
    return keras.optimizers.SGD(learning_rate=0.05)


@dataclasses.dataclass
class Case:
    """How to build, compile and feed one model family."""

    build: Callable[[], keras.Model]
    compile: Callable[[keras.Model], None]
    data: object
    loss_keys: tuple[str, ...]
    draws_noise: bool = True


CASES = {
    "vae": Case(
        lambda: models.VAE(data_shape=(12,), latent_dim=2, hidden_units=(8,),
                           likelihood="gaussian"),
        lambda model: model.compile(optimizer=sgd()),
        GAUSSIAN_DATA,
        ("loss", "reconstruction_loss", "kl_loss"),
    ),
    "batch-norm-vae": Case(
        lambda: models.VAE(data_shape=(12,), latent_dim=2, hidden_units=(8,),
                           likelihood="gaussian", batch_norm=True),
        lambda model: model.compile(optimizer=sgd()),
        GAUSSIAN_DATA,
        ("loss", "reconstruction_loss", "kl_loss"),
    ),
    "nb-vae": Case(
        lambda: models.VAE(data_shape=(12,), latent_dim=2, hidden_units=(8,), likelihood="nb"),
        lambda model: model.compile(optimizer=sgd()),
        COUNT_DATA,
        ("loss", "reconstruction_loss", "kl_loss"),
    ),
    "conditional-vae": Case(
        lambda: models.ConditionalVAE(data_shape=(12,), num_classes=3, latent_dim=2,
                                      hidden_units=(8,), likelihood="gaussian"),
        lambda model: model.compile(optimizer=sgd()),
        (GAUSSIAN_DATA, LABELS),
        ("loss", "reconstruction_loss", "kl_loss"),
    ),
    "gan": Case(
        lambda: models.GAN(data_shape=(12,), latent_dim=4, hidden_units=(8,)),
        lambda model: model.compile(d_optimizer=sgd(), g_optimizer=sgd()),
        GAUSSIAN_DATA,
        ("d_loss", "g_loss"),
    ),
    "conditional-gan": Case(
        lambda: models.ConditionalGAN(data_shape=(12,), num_classes=3, latent_dim=4,
                                      hidden_units=(8,)),
        lambda model: model.compile(d_optimizer=sgd(), g_optimizer=sgd()),
        (GAUSSIAN_DATA, LABELS),
        ("d_loss", "g_loss"),
    ),
    "landmark-gan": Case(
        lambda: models.LandmarkGAN(n_landmarks=5, n_targets=7, hidden_units=(8,)),
        lambda model: model.compile(d_optimizer=sgd(), g_optimizer=sgd()),
        (GAUSSIAN_DATA[:, :5], GAUSSIAN_DATA[:, 5:]),
        ("d_loss", "g_loss", "adversarial_loss", "reconstruction_loss", "consistency_loss"),
    ),
    "mlp-regressor": Case(
        lambda: models.MLPRegressor(n_landmarks=5, n_targets=7, hidden_units=(8,)),
        lambda model: model.compile(optimizer=sgd(), loss="mse"),
        (GAUSSIAN_DATA[:, :5], GAUSSIAN_DATA[:, 5:]),
        ("loss",),
        draws_noise=False,
    ),
}


def zero_noise(shape, seed_generator, dtype="float32"):
    seed_generator.next()
    return tf.zeros(shape, dtype)


def train(case: Case, strategy=None, initial_weights=None, epochs: int = 1):
    """Build (optionally under a strategy), set the initial weights, train two SGD steps per
    epoch."""
    keras.utils.set_random_seed(0)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = case.build()
        case.compile(model)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    start = [w.copy() for w in model.get_weights()]
    dataset = datasets.as_dataset(
        case.data, batch_size=GLOBAL_BATCH, shuffle=False, drop_remainder=True
    )
    history = model.fit(dataset, epochs=epochs, verbose=0)
    return model, start, history.history


def assert_same_training(single, distributed, loss_keys):
    _, start, single_logs = single
    model, _, distributed_logs = distributed
    for before, after_single, after_distributed in zip(
        start, single[0].get_weights(), model.get_weights()
    ):
        if not np.allclose(before, after_single):
            np.testing.assert_allclose(after_distributed, after_single, rtol=1e-4, atol=1e-6)
    for key in loss_keys:
        np.testing.assert_allclose(distributed_logs[key], single_logs[key], rtol=1e-4)


@pytest.fixture
def no_noise(monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)


@pytest.mark.parametrize("name", CASES)
def test_update_and_logged_losses_equal_the_single_device_ones(name, strategy, no_noise):
    case = CASES[name]
    single = train(case)
    distributed = train(case, strategy, initial_weights=single[1])
    changed = [not np.allclose(a, b) for a, b in zip(single[1], single[0].get_weights())]
    assert any(changed), "the single-device step did not change any weight"
    assert_same_training(single, distributed, case.loss_keys)


@pytest.mark.parametrize("name", ["vae", "gan", "landmark-gan"])
def test_the_comparison_fails_when_the_loss_is_not_scaled_by_replicas(
    name, strategy, no_noise, monkeypatch
):
    """Proof that the test above has teeth: without the division, each step is 2x too big."""
    case = CASES[name]
    single = train(case)

    def unscaled(loss, optimizer=None):
        return optimizer.scale_loss(loss) if optimizer is not None else loss

    monkeypatch.setattr(distribute, "scale_loss", unscaled)
    distributed = train(case, strategy, initial_weights=single[1])
    with pytest.raises(AssertionError):
        assert_same_training(single, distributed, case.loss_keys)


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.draws_noise])
def test_every_model_draws_its_noise_per_replica(name, monkeypatch):
    """All latent noise goes through distribute.normal, which differs between replicas
    (see test_distribute.py): keras.random alone would repeat it on every replica."""
    calls = []

    def spy(shape, seed_generator, dtype="float32"):
        calls.append(shape)
        return tf.random.stateless_normal(shape, seed=[1, 2], dtype=dtype)

    monkeypatch.setattr(distribute, "normal", spy)
    _, _, logs = train(CASES[name])
    assert calls, f"{name} never called distribute.normal"
    assert all(np.isfinite(logs[key][0]) for key in CASES[name].loss_keys)


@pytest.mark.parametrize("name", CASES)
def test_a_model_trained_under_a_strategy_saves_and_reloads_outside_it(name, strategy, tmp_path):
    case = CASES[name]
    model, _, _ = train(case, strategy)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for original, loaded in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(original, loaded)
    dataset = datasets.as_dataset(case.data, batch_size=GLOBAL_BATCH, shuffle=False)
    history = reloaded.fit(dataset, epochs=1, verbose=0)
    assert all(np.isfinite(history.history[key][0]) for key in case.loss_keys)


@pytest.mark.parametrize("name", CASES)
def test_mixed_precision_trains_with_loss_scaling_and_float32_losses(name):
    keras.config.set_dtype_policy("mixed_float16")
    # The dynamic loss scale starts at 2**15: the first steps overflow in float16 and are
    # skipped (by design) while the scale halves, so train long enough to see updates.
    model, start, logs = train(CASES[name], epochs=10)
    optimizers = [getattr(model, attr) for attr in ("optimizer", "d_optimizer", "g_optimizer")
                  if getattr(model, attr, None) is not None]
    assert any(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in optimizers)
    assert all(np.isfinite(logs[key][-1]) for key in CASES[name].loss_keys)
    assert any(not np.allclose(a, b) for a, b in zip(start, model.get_weights()))
