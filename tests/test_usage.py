"""The README's "Using the models", as a specification: the verbs of each model, the input shapes
they take (always a batch), and a saved model loaded back after ``from course import models``."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from course import models


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def vae():
    return models.VAE(data_shape=(28, 28, 1), latent_dim=2, hidden_units=(16,), seed=0)


def test_vae_verbs_take_and_return_batches(vae, digits):
    z = vae.encode(digits)
    assert z.shape == (8, 2)
    z_mean, z_log_var = vae.encode(digits, return_distribution=True)
    assert z_log_var.shape == (8, 2)
    assert vae.decode(z).shape == (8, 28, 28, 1)
    assert vae.generate(3).shape == (3, 28, 28, 1)
    assert vae.reconstruct(digits[:2]).shape == (2, 28, 28, 1)


def test_one_example_without_the_batch_axis_is_named_as_such(vae, digits):
    with pytest.raises(ValueError, match="without the batch axis") as error:
        vae.encode(digits[0])
    assert "x[None]" in str(error.value) and "x[:1]" in str(error.value)
    assert "data_shape=(28, 1)" not in str(error.value)
    assert vae.encode(digits[0][None]).shape == (1, 2)


def test_conditional_models_take_one_label_per_example(digits):
    cvae = models.ConditionalVAE(data_shape=(28, 28, 1), num_classes=10, latent_dim=2,
                                 hidden_units=(16,), seed=0)
    labels = np.arange(8) % 10
    assert cvae.encode(digits, labels).shape == (8, 2)
    assert cvae.generate(np.array([3, 3, 7, 7])).shape == (4, 28, 28, 1)
    cgan = models.ConditionalGAN(data_shape=(28, 28, 1), num_classes=10, latent_dim=8)
    assert cgan.generate(np.array([0, 1, 2]), seed=0).shape == (3, 28, 28, 1)


def test_gan_generates_n_examples_reproducibly_from_a_seed():
    gan = models.GAN(data_shape=(28, 28, 1), latent_dim=8)
    first, second = gan.generate(4, seed=1), gan.generate(4, seed=1)
    assert first.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(first, second)


def test_a_saved_model_loads_back_with_the_same_outputs(vae, digits, tmp_path):
    path = tmp_path / "model.keras"
    vae.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.encode(digits), vae.encode(digits), rtol=1e-5, atol=1e-6)
