"""GAN and ConditionalGAN: each half of the step trains only its own player, the label is
used, both optimizers survive saving, bad input is refused, and training works distributed
and in mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from course import datasets
from course.models import GAN, ConditionalGAN
from course.models.gan import GENERATOR_LOSSES, discriminator_loss, non_saturating_generator_loss

IMAGE_SHAPE = (8, 8, 1)
SMALL = dict(latent_dim=4, hidden_units=(8, 16))


def tiny_images(n=32, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *IMAGE_SHAPE)).astype("float32")


def tiny_labels(n=32):
    return (np.arange(n) % 3).astype("int64")


def weights_of(network):
    return [np.array(w) for w in network.trainable_weights]


def changed(before, network):
    return any(not np.allclose(b, np.array(a)) for b, a in zip(before, network.trainable_weights))


@pytest.mark.parametrize("network", ["dense", "conv"])
@pytest.mark.parametrize("player", ["discriminator", "generator"])
def test_each_half_of_the_step_updates_only_its_own_network(network, player):
    gan = GAN(IMAGE_SHAPE, network=network, **SMALL)
    # Freeze one player through a zero learning rate; the other one must then be the only
    # network whose weights move (a step that mixed up the variable lists would move both).
    d_rate, g_rate = (0.1, 0.0) if player == "discriminator" else (0.0, 0.1)
    gan.compile(d_optimizer=keras.optimizers.SGD(d_rate), g_optimizer=keras.optimizers.SGD(g_rate))
    d_before, g_before = weights_of(gan.discriminator), weights_of(gan.generator)
    gan.train_step(ops.convert_to_tensor(tiny_images(8)))
    assert changed(d_before, gan.discriminator) == (player == "discriminator")
    assert changed(g_before, gan.generator) == (player == "generator")


def test_generator_step_makes_the_discriminator_more_fooled():
    gan = GAN(IMAGE_SHAPE, **SMALL)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.05))
    latent = keras.random.normal((64, gan.latent_dim), seed=1)

    def fooling_loss():
        return float(non_saturating_generator_loss(gan.discriminator(gan.generator(latent))))

    before = fooling_loss()
    for _ in range(5):
        gan.train_step(ops.convert_to_tensor(tiny_images(64)))
    assert fooling_loss() < before


def test_label_smoothing_is_one_sided():
    confident_real, confident_fake = ops.full((4, 1), 20.0), ops.full((4, 1), -20.0)
    assert float(discriminator_loss(confident_real, confident_fake)) < 1e-6
    smoothed = float(discriminator_loss(confident_real, confident_fake, label_smoothing=0.1))
    # Only the real term is penalized: 0.1 * 20 (the fakes still aim at exactly 0).
    assert smoothed == pytest.approx(2.0, rel=1e-3)


def test_non_saturating_loss_has_strong_gradients_where_the_saturating_one_vanishes():
    import tensorflow as tf

    logits = tf.Variable([[-8.0]])  # D is sure the sample is fake, as early in training.
    gradients = {}
    for kind in ("non_saturating", "saturating"):
        with tf.GradientTape() as tape:
            loss = GENERATOR_LOSSES[kind](logits)
        gradients[kind] = abs(float(tape.gradient(loss, logits)[0, 0]))
    assert gradients["non_saturating"] > 100 * gradients["saturating"]


def test_conditional_generator_and_discriminator_use_the_label():
    cgan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, **SMALL)
    zeros, ones = cgan.generate([0] * 4, seed=7), cgan.generate([1] * 4, seed=7)
    assert not np.allclose(zeros, ones)
    np.testing.assert_array_equal(zeros, cgan.generate([0] * 4, seed=7))
    images = tiny_images(4)
    logits_as_zero = cgan((images, np.zeros(4, "int64")))
    logits_as_one = cgan((images, np.ones(4, "int64")))
    assert not np.allclose(logits_as_zero, logits_as_one)


@pytest.mark.parametrize("conditional", [False, True])
def test_save_and_load_keeps_config_optimizer_state_and_outputs(tmp_path, conditional):
    # Non-default arguments, so that a config falling back to the defaults is caught.
    kwargs = dict(network="conv", latent_dim=5, hidden_units=(4, 8), label_smoothing=0.1,
                  generator_loss="saturating", seed=3)
    if conditional:
        gan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, **kwargs)
        data, ask = (tiny_images(16), tiny_labels(16)), np.array([0, 1, 2])
    else:
        gan = GAN(IMAGE_SHAPE, **kwargs)
        data, ask = tiny_images(16), 3
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.SGD(0.01))
    gan.fit(data, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "gan.keras"
    gan.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(gan)
    assert loaded.get_config() == gan.get_config()
    assert int(loaded.d_optimizer.iterations) == int(gan.d_optimizer.iterations) == 2
    assert int(loaded.g_optimizer.iterations) == 2
    assert isinstance(loaded.g_optimizer, keras.optimizers.SGD)
    np.testing.assert_allclose(loaded.generate(ask, seed=11), gan.generate(ask, seed=11))
    loaded.fit(data, batch_size=8, epochs=1, verbose=0)  # Training resumes.
    assert int(loaded.g_optimizer.iterations) == 4


def test_data_of_the_wrong_shape_is_refused_with_the_expected_shape():
    gan = GAN(IMAGE_SHAPE, **SMALL)
    gan.compile()
    with pytest.raises(ValueError, match=r"\(batch, 8, 8, 1\).*got \(batch, 64\)"):
        gan.fit(np.zeros((8, 64), "float32"), batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize("conditional", [False, True])
def test_fit_on_empty_data_is_refused_instead_of_running_no_step(conditional):
    gan = ConditionalGAN(IMAGE_SHAPE, 3, **SMALL) if conditional else GAN(IMAGE_SHAPE, **SMALL)
    gan.compile()
    empty = np.zeros((0, *IMAGE_SHAPE), "float32")
    data = (empty, np.zeros(0, "int64")) if conditional else empty
    with pytest.raises(ValueError, match="The training data is empty"):
        gan.fit(data, batch_size=8, epochs=1, verbose=0)


def test_compile_names_both_optimizers_and_refuses_one_shared_or_a_single_optimizer():
    gan = GAN(IMAGE_SHAPE, **SMALL)
    with pytest.raises(ValueError, match="pass d_optimizer and g_optimizer instead"):
        gan.compile(optimizer="adam")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="same object"):
        gan.compile(d_optimizer=shared, g_optimizer=shared)
    gan.compile(d_optimizer="sgd", g_optimizer="adam")
    assert isinstance(gan.d_optimizer, keras.optimizers.SGD)
    assert gan.d_optimizer.built and gan.g_optimizer.built  # Built at once, for strategies.


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(data_shape=(28, 28)), "data_shape"),
        (dict(data_shape=(30,), network="conv"), "image"),
        (dict(data_shape=(30,), generator_loss="wasserstein"), "generator_loss"),
        (dict(data_shape=(30,), label_smoothing=1.0), "label_smoothing"),
    ],
)
def test_bad_constructor_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        GAN(**arguments)


def test_conditional_gan_refuses_labels_out_of_range():
    cgan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, **SMALL)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cgan.generate([0, 3])
    cgan.compile()
    for labels in (np.full(8, 5), np.full(8, -1)):
        # A short ValueError before training, not TensorFlow's graph assertion.
        with pytest.raises(ValueError, match=r"must be in \[0, 3\)") as error:
            cgan.fit((tiny_images(8), labels), batch_size=8, epochs=1, verbose=0)
        assert len(str(error.value)) < 300


@pytest.mark.parametrize("feed", ["tuple", "x_and_y"])
def test_conditional_gan_refuses_non_integer_labels_instead_of_truncating_them(feed):
    cgan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, **SMALL)
    cgan.compile()
    images, labels = tiny_images(8), np.full(8, 1.5)
    with pytest.raises(ValueError, match="integer class indices"):
        if feed == "tuple":
            cgan.fit((images, labels), batch_size=8, epochs=1, verbose=0)
        else:
            cgan.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    # Whole numbers stored as floats are fine.
    cgan.fit((images, labels.round()), batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_nan_input_is_refused_before_it_trains_the_weights_to_nan(conditional, method):
    gan = ConditionalGAN(IMAGE_SHAPE, 3, **SMALL) if conditional else GAN(IMAGE_SHAPE, **SMALL)
    gan.compile()
    images = tiny_images(8)
    images[0, 0, 0, 0] = np.nan
    data = (images, tiny_labels(8)) if conditional else images
    before = [np.array(w) for w in gan.weights]
    arguments = dict(batch_size=8, verbose=0, **({"epochs": 1} if method == "fit" else {}))
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        getattr(gan, method)(data, **arguments)
    assert all(np.array_equal(b, np.array(w)) for b, w in zip(before, gan.weights))


def test_nan_validation_data_is_refused():
    cgan = ConditionalGAN(IMAGE_SHAPE, 3, **SMALL)
    cgan.compile()
    images = tiny_images(8)
    images[1, 2, 3, 0] = np.inf
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        cgan.fit((tiny_images(8), tiny_labels(8)), validation_data=(images, tiny_labels(8)),
                 batch_size=8, epochs=1, verbose=0)


def test_expression_vectors_get_a_linear_output():
    gan = GAN((20,), **SMALL)
    assert gan.generate(4, seed=0).shape == (4, 20)
    assert gan.generator.layers[-1].activation.__name__ == "linear"


def test_conditional_gan_trains_under_mirrored_strategy(strategy):
    with strategy.scope():
        cgan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, network="conv", **SMALL)
        cgan.compile()
    dataset = datasets.as_dataset((tiny_images(32), tiny_labels(32)), batch_size=8,
                                  drop_remainder=True)
    history = cgan.fit(dataset, epochs=1, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert int(cgan.g_optimizer.iterations.numpy()) == 4


def test_gan_trains_in_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    gan = GAN(IMAGE_SHAPE, network="conv", **SMALL)
    gan.compile()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    history = gan.fit(tiny_images(32), batch_size=8, epochs=2, verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    assert gan.generate(2, seed=0).dtype == np.float32



def later_batch_poisoned(data, row=20):
    """A pipeline of 8-example batches whose third batch (not the first) holds NaN."""
    images = data[0] if isinstance(data, tuple) else data
    images[row, 0, 0, 0] = np.nan
    # tf.data itself (datasets.as_dataset would refuse the NaN before any step).
    return tf.data.Dataset.from_tensor_slices(data).batch(8)


@pytest.mark.parametrize("conditional", [False, True])
def test_nan_in_a_later_batch_of_a_dataset_is_a_short_value_error(conditional):
    gan = ConditionalGAN(IMAGE_SHAPE, 3, **SMALL) if conditional else GAN(IMAGE_SHAPE, **SMALL)
    gan.compile()
    data = (tiny_images(32), tiny_labels(32)) if conditional else tiny_images(32)
    dataset = later_batch_poisoned(data)
    with pytest.raises(ValueError, match="The data contains NaN or infinite values") as error:
        gan.fit(dataset, epochs=1, verbose=0)
    assert len(str(error.value)) < 300
    assert all(np.all(np.isfinite(np.array(w))) for w in gan.weights)
    with pytest.raises(ValueError, match="NaN or infinite"):
        gan.evaluate(dataset, verbose=0)
    if conditional:  # predict() takes (data, labels) as the model's one input.
        dataset = dataset.map(lambda images, labels: ((images, labels),))
    with pytest.raises(ValueError, match="NaN or infinite"):
        gan.predict(dataset, verbose=0)


@pytest.mark.parametrize("bad_label, message", [
    (3, r"labels must be in \[0, 3\)"),
    (-1, r"labels must be in \[0, 3\)"),
    (1.5, "integer class indices"),
])
def test_bad_labels_in_a_later_batch_of_a_dataset_are_a_short_value_error(bad_label, message):
    cgan = ConditionalGAN(IMAGE_SHAPE, num_classes=3, **SMALL)
    cgan.compile()
    labels = tiny_labels(32).astype(type(bad_label))
    labels[20] = bad_label
    dataset = tf.data.Dataset.from_tensor_slices((tiny_images(32), labels)).batch(8)
    for method in (cgan.fit, cgan.evaluate):
        with pytest.raises(ValueError, match=message) as error:
            method(dataset, verbose=0)
        assert len(str(error.value)) < 300
