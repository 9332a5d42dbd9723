"""scGAN and cscGAN (WGAN-GP): the LSN output layer, the gradient penalty, each half of the step,
the label, saving, bad input, and a distributed step equal to the single-device one."""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from course import datasets, distribute
from course.demos import gan_gallery
from course.models import ConditionalScGAN, ScGAN
from course.models.scgan import LibrarySizeNormalization
from course.models.wgan import WassersteinGAN

N_GENES = 12
SMALL = dict(latent_dim=4, generator_units=(8,), critic_units=(8,), library_size=100.0)


def tiny_counts(n=16, seed=0):
    return np.random.default_rng(seed).poisson(3.0, size=(n, N_GENES)).astype("float32") + 1


def tiny_labels(n=16):
    return (np.arange(n) % 3).astype("int64")


def sgd(rate=0.05):
    return keras.optimizers.SGD(rate)


def test_lsn_layer_outputs_non_negative_cells_of_the_library_size():
    scores = np.random.default_rng(0).normal(size=(5, N_GENES)).astype("float32")
    cells = np.asarray(LibrarySizeNormalization(100.0)(scores))
    assert cells.min() >= 0.0
    assert np.any(cells == 0.0), "the ReLU should switch genes off exactly"
    np.testing.assert_allclose(cells.sum(axis=1), 100.0, rtol=1e-5)


def test_generated_cells_have_the_library_size_and_repeat_with_a_seed():
    gan = ScGAN(N_GENES, **SMALL)
    cells = gan.generate(6, seed=3)
    assert cells.shape == (6, N_GENES)
    np.testing.assert_allclose(cells.sum(axis=1), 100.0, rtol=1e-5)
    np.testing.assert_array_equal(cells, gan.generate(6, seed=3))


class LinearCritic(WassersteinGAN):
    """A WGAN-GP whose critic is D(x) = w . x, whose input gradient is w everywhere."""

    def __init__(self, weight_norm: float):
        self.data_shape, self.latent_dim = (3,), 2
        super().__init__(n_critic=1, gp_weight=10.0, seed=0)
        self.discriminator.set_weights([np.array([[weight_norm], [0.0], [0.0]], "float32")])

    def _build_generator(self):
        return keras.Sequential([keras.Input((2,)), layers.Dense(3)])

    def _build_critic(self):
        return keras.Sequential([keras.Input((3,)), layers.Dense(1, use_bias=False)])


@pytest.mark.parametrize("weight_norm, penalty", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_is_the_squared_distance_of_the_gradient_norm_from_one(
    weight_norm, penalty
):
    model = LinearCritic(weight_norm)
    real, fake = tf.random.normal((7, 3)), tf.random.normal((7, 3))
    assert float(model.gradient_penalty(real, fake, None)) == pytest.approx(penalty, abs=1e-5)


@pytest.mark.parametrize("player", ["critic", "generator"])
def test_each_half_of_the_step_updates_only_its_own_network(player):
    gan = ScGAN(N_GENES, n_critic=2, **SMALL)
    d_rate, g_rate = (0.1, 0.0) if player == "critic" else (0.0, 0.1)
    gan.compile(d_optimizer=sgd(d_rate), g_optimizer=sgd(g_rate))
    before = {name: [np.array(w) for w in network.trainable_weights]
              for name, network in (("critic", gan.discriminator), ("generator", gan.generator))}
    logs = gan.train_step(ops.convert_to_tensor(tiny_counts()))
    assert set(logs) == {"d_loss", "g_loss", "gradient_penalty"}
    for name, network in (("critic", gan.discriminator), ("generator", gan.generator)):
        moved = any(not np.allclose(b, np.array(a))
                    for b, a in zip(before[name], network.trainable_weights))
        assert moved == (name == player)


def test_training_counts_are_normalized_to_the_library_size():
    gan = ScGAN(N_GENES, **SMALL)
    counts = tiny_counts()
    normalized = np.asarray(gan.normalize(counts))
    np.testing.assert_allclose(normalized.sum(axis=1), 100.0, rtol=1e-5)
    np.testing.assert_allclose(normalized, counts / counts.sum(1, keepdims=True) * 100, rtol=1e-5)


def test_conditional_generator_and_critic_use_the_label():
    gan = ConditionalScGAN(N_GENES, num_classes=3, **SMALL)
    assert not np.allclose(gan.generate([0, 0], seed=1), gan.generate([2, 2], seed=1))
    counts = tiny_counts(2)
    assert not np.allclose(gan.predict((counts, np.array([0, 0])), verbose=0),
                           gan.predict((counts, np.array([1, 1])), verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("conditional", [False, True])
def test_save_and_load_keeps_config_optimizer_state_and_outputs(tmp_path, conditional):
    gan = ConditionalScGAN(N_GENES, 3, n_critic=2, **SMALL) if conditional else \
        ScGAN(N_GENES, n_critic=2, **SMALL)
    gan.compile()
    data = (tiny_counts(), tiny_labels()) if conditional else tiny_counts()
    gan.fit(datasets.as_dataset(data, batch_size=8), epochs=1, verbose=0)
    path = tmp_path / "scgan.keras"
    gan.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(gan) and loaded.n_critic == 2 and loaded.library_size == 100.0
    assert int(loaded.d_optimizer.iterations) == int(gan.d_optimizer.iterations) == 4
    request = [0, 1, 2] if conditional else 3
    np.testing.assert_allclose(loaded.generate(request, seed=5), gan.generate(request, seed=5),
                               rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (-tiny_counts(), "negative values"),
    (np.where(np.eye(16, N_GENES) > 0, np.nan, tiny_counts()), "NaN"),
    (np.zeros((16, N_GENES), "float32"), "without any counts"),
])
def test_bad_counts_are_refused_at_fit_evaluate_and_predict(bad, message):
    gan = ScGAN(N_GENES, **SMALL)
    gan.compile()
    for call in (lambda: gan.fit(bad, epochs=1, verbose=0), lambda: gan.evaluate(bad, verbose=0),
                 lambda: gan.predict(bad, verbose=0)):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("labels, message", [
    (tiny_labels() + 1, r"in \[0, 3\)"),
    (tiny_labels() + 0.5, "integer class indices"),
])
def test_cscgan_refuses_bad_labels(labels, message):
    gan = ConditionalScGAN(N_GENES, num_classes=3, **SMALL)
    gan.compile()
    with pytest.raises(ValueError, match=message):
        gan.fit((tiny_counts(), labels), epochs=1, verbose=0)


def test_wrong_number_of_genes_and_arguments_are_refused():
    gan = ScGAN(N_GENES, **SMALL)
    gan.compile()
    with pytest.raises(ValueError, match=f"shape \\(batch, {N_GENES}\\)"):
        gan.fit(tiny_counts()[:, :5], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="n_critic"):
        ScGAN(N_GENES, n_critic=0)
    with pytest.raises(ValueError, match="library_size"):
        ScGAN(N_GENES, library_size=0)


def zero_noise(shape, seed_generator, dtype="float32"):
    seed_generator.next()
    return tf.zeros(shape, dtype)


def train_two_steps(build, data, strategy=None, initial_weights=None):
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build()
        model.compile(d_optimizer=sgd(0.01), g_optimizer=sgd(0.01))
    if initial_weights is not None:
        model.set_weights(initial_weights)
    start = model.get_weights()
    dataset = datasets.as_dataset(data, batch_size=8, shuffle=False, drop_remainder=True)
    return model, start, model.fit(dataset, epochs=1, verbose=0).history


@pytest.mark.slow
@pytest.mark.parametrize("conditional", [False, True])
def test_distributed_step_equals_the_single_device_step(conditional, strategy, monkeypatch):
    """Two replicas of 4 cells must update and log exactly what one device does with 8 (noise
    off: zero latent vectors, interpolation weight 0.5). The gradient penalty sums the scores
    over the batch, so each cell's gradient norm does not depend on the local batch size."""
    monkeypatch.setattr(distribute, "normal", zero_noise)

    def build():
        if conditional:
            return ConditionalScGAN(N_GENES, 3, n_critic=2, **SMALL)
        return ScGAN(N_GENES, n_critic=2, **SMALL)

    data = (tiny_counts(), tiny_labels()) if conditional else tiny_counts()
    single, start, single_logs = train_two_steps(build, data)
    distributed, _, distributed_logs = train_two_steps(build, data, strategy, start)
    assert any(not np.allclose(a, b) for a, b in zip(start, single.get_weights()))
    for expected, got in zip(single.get_weights(), distributed.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    for key in ("d_loss", "g_loss", "gradient_penalty"):
        np.testing.assert_allclose(distributed_logs[key], single_logs[key], rtol=1e-4)


def test_independent_nb_baseline_matches_per_type_means_and_keeps_types():
    counts = datasets.counts(datasets.synthetic_counts(n_cells=600, n_genes=20, seed=0))
    labels = np.arange(600) % 2
    samples = gan_gallery.independent_nb_sampler(counts, labels, labels, seed=0)
    for label in (0, 1):
        np.testing.assert_allclose(samples[labels == label].mean(0),
                                   counts[labels == label].mean(0), rtol=0.25, atol=1.0)
    assert np.all(samples == np.round(samples)) and samples.min() >= 0


def test_scgan_trains_in_mixed_precision_with_float32_losses():
    keras.config.set_dtype_policy("mixed_float16")
    gan = ConditionalScGAN(N_GENES, 3, n_critic=2, **SMALL)
    gan.compile()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    history = gan.fit((tiny_counts(), tiny_labels()), batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    cells = gan.generate([0, 1], seed=0)
    assert cells.dtype == np.float32
    np.testing.assert_allclose(cells.sum(axis=1), 100.0, rtol=1e-3)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("bad, message", [(np.nan, "The data contains NaN or infinite"),
                                          (-2.0, "negative values")])
def test_bad_counts_in_a_later_batch_of_a_dataset_are_a_value_error(conditional, bad, message):
    gan = ConditionalScGAN(N_GENES, 3, n_critic=1, **SMALL) if conditional else \
        ScGAN(N_GENES, n_critic=1, **SMALL)
    gan.compile()
    counts = tiny_counts(32)
    counts[20, 3] = bad  # in the third batch of four
    data = (counts, tiny_labels(32)) if conditional else counts
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)
    for method in (gan.fit, gan.evaluate):
        with pytest.raises(ValueError, match=message):
            method(dataset, verbose=0)
    if np.isnan(bad):  # finite_batch gates the step; assert_batch does not (yet).
        assert all(np.all(np.isfinite(np.array(w))) for w in gan.weights)


def test_cscgan_refuses_out_of_range_labels_in_a_later_batch_of_a_dataset():
    gan = ConditionalScGAN(N_GENES, 3, n_critic=1, **SMALL)
    gan.compile()
    labels = tiny_labels(32)
    labels[20] = 7
    dataset = tf.data.Dataset.from_tensor_slices((tiny_counts(32), labels)).batch(8)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        gan.fit(dataset, verbose=0)
