"""VAE and ConditionalVAE: the objective, training, input checks, saving, distribution."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course import datasets
from course.callbacks import KLWarmup
from course.models import VAE, ConditionalVAE
from course.models.vae import kl_divergence

N_GENES = 30


@pytest.fixture(scope="module")
def digits():
    images, labels = datasets.load_mnist("train", source="bundled")
    return images[:128], labels[:128]


@pytest.fixture(scope="module")
def cells():
    adata = datasets.synthetic_counts(n_cells=128, n_genes=N_GENES, n_cell_types=3, seed=0)
    return datasets.counts(adata), datasets.labels(adata)[0]


def tiny_vae(**kwargs):
    options = dict(data_shape=(28, 28, 1), latent_dim=2, hidden_units=(16,), seed=0)
    options.update(kwargs)
    return VAE(**options)


def count_vae(likelihood="nb", **kwargs):
    return VAE((N_GENES,), latent_dim=3, hidden_units=(16,), likelihood=likelihood, **kwargs)


def compiled(model, learning_rate=1e-3):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


# The objective -------------------------------------------------------------------------------


def test_kl_is_zero_when_posterior_equals_prior():
    np.testing.assert_allclose(kl_divergence(np.zeros((4, 3)), np.zeros((4, 3))), 0.0, atol=1e-7)


def test_kl_is_positive_when_posterior_differs_from_prior():
    z_mean = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    z_log_var = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
    kl = np.asarray(kl_divergence(z_mean, z_log_var))
    assert kl[0] == pytest.approx(0.5)  # 0.5 * mean**2 for unit variance.
    assert kl[1] > 0


def test_gradients_reach_the_encoder_through_the_sampler(digits):
    model = tiny_vae()
    with tf.GradientTape() as tape:
        reconstruction_loss, _ = model.loss_terms(digits[0][:8], training=True)
    gradients = tape.gradient(reconstruction_loss, model.encoder.trainable_weights)
    # The reconstruction term depends on the encoder only through z = mean + sigma * epsilon.
    assert all(g is not None for g in gradients)
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_loss_falls_on_a_small_batch(digits, likelihood):
    model = compiled(tiny_vae(likelihood=likelihood), learning_rate=3e-3)
    images = digits[0][:32]
    before = model.evaluate(images, batch_size=32, verbose=0, return_dict=True)["loss"]
    model.fit(images, epochs=30, batch_size=32, verbose=0)
    after = model.evaluate(images, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert after < before - 10


@pytest.mark.parametrize("likelihood", ["nb", "zinb", "poisson"])
def test_count_models_train_on_raw_counts(cells, likelihood):
    counts, _ = cells
    model = compiled(count_vae(likelihood), learning_rate=3e-3)
    history = model.fit(counts, epochs=8, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "reconstruction_loss", "kl_loss"}


def test_count_decoder_scales_to_the_requested_library_size(cells):
    model = compiled(count_vae("nb"))
    model.fit(cells[0], epochs=1, batch_size=64, verbose=0)
    z = np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(model.decode(z, library_size=250.0).sum(axis=1), 250.0, rtol=1e-4)
    median = np.median(cells[0].sum(axis=1))
    np.testing.assert_allclose(model.generate(3).sum(axis=1), median, rtol=1e-4)


def test_count_likelihoods_default_to_one_hidden_layer_of_128():
    # The architecture that beats PCA on PBMC (benchmarks/vae.py); images keep (256, 128).
    assert VAE((N_GENES,), likelihood="nb").hidden_units == (128,)
    assert VAE((N_GENES,), likelihood="nb").get_config()["hidden_units"] == (128,)
    assert VAE((28, 28, 1)).hidden_units == (256, 128)


def test_the_vae_has_no_dropout_layers():
    # Keras repeats the dropout mask on every replica, which breaks distributed equivalence.
    model = count_vae("nb", batch_norm=True)
    layers = model.encoder.layers + model.decoder.layers
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in layers)
    with pytest.raises(ValueError, match="dropout"):
        count_vae("nb", dropout=0.1)


# Input checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda x: np.log1p(x), "log-normalized"),
        (lambda x: x - 1.0, "negative"),
        (lambda x: np.where(x > 5, np.nan, x), "NaN"),
        (lambda x: x[:0], "empty"),
        (lambda x: x[:, :-1], "shape"),
    ],
)
def test_count_model_refuses_bad_data_before_training(cells, corrupt, message):
    model = compiled(count_vae("nb"))
    with pytest.raises(ValueError, match=message):
        model.fit(corrupt(cells[0]), epochs=1, verbose=0)


def test_count_model_checks_a_tf_data_pipeline_too(cells):
    model = compiled(count_vae("zinb"))
    normalized = datasets.as_dataset(np.log1p(cells[0]), batch_size=32)
    with pytest.raises(ValueError, match="raw integer counts"):
        model.fit(normalized, epochs=1, verbose=0)


def test_wrong_image_shape_is_a_clear_error(digits):
    model = tiny_vae()
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28, 1\)"):
        model.encode(digits[0].reshape(-1, 784))


ENTRY_POINTS = {
    "fit": lambda model, data: model.fit(data, epochs=1, verbose=0),
    "evaluate": lambda model, data: model.evaluate(data, verbose=0),
    "predict": lambda model, data: model.predict(data, verbose=0),
}


def with_nan(x):
    x = x.copy()
    x[70, 0] = np.nan  # In the third batch of 32.
    return x


BAD_DATA = {
    # name: (likelihood, corrupt the data, the message's key phrase)
    "nan-pixels": ("bernoulli", with_nan, "NaN"),
    "uint8-pixels": ("bernoulli", lambda x: (x * 255).astype(np.uint8), "divided by 255"),
    "pixels-above-one": ("bernoulli", lambda x: x * 2.0, r"\[0, 1\]"),
    "nan-gaussian": ("gaussian", with_nan, "NaN"),
    "log-normalized-counts": ("nb", np.log1p, "log-normalized"),
    "negative-counts": ("zinb", lambda x: x - 1.0, "negative"),
    "wrong-shape": ("bernoulli", lambda x: x[:, :27], "shape"),
}


def model_and_data(kind, digits, cells):
    likelihood, corrupt, message = BAD_DATA[kind]
    if likelihood in ("nb", "zinb"):
        model, x = count_vae(likelihood), cells[0][:96].copy()
    else:
        model, x = tiny_vae(likelihood=likelihood), digits[0][:96].copy()
    return compiled(model), corrupt(x), message


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("kind", BAD_DATA)
def test_bad_arrays_are_refused_at_fit_evaluate_and_predict(digits, cells, kind, entry_point):
    model, x, message = model_and_data(kind, digits, cells)
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry_point](model, x)


def later_batch_is_bad(x, bad_x, batch_size=32):
    """A tf.data pipeline whose first two batches are clean and whose third is ``bad_x``'s."""
    mixed = np.concatenate([x[: 2 * batch_size].astype(bad_x.dtype), bad_x[2 * batch_size :]])
    return tf.data.Dataset.from_tensor_slices(mixed).batch(batch_size)


@pytest.mark.parametrize(
    "kind, entry_point",
    [("uint8-pixels", "fit"), ("uint8-pixels", "evaluate"), ("uint8-pixels", "predict"),
     ("log-normalized-counts", "fit"), ("log-normalized-counts", "evaluate"),
     ("log-normalized-counts", "predict"),
     # About 5 s each (a traced training step): in the full suite only.
     pytest.param("nan-gaussian", "fit", marks=pytest.mark.slow),
     pytest.param("negative-counts", "fit", marks=pytest.mark.slow)],
)
def test_a_bad_later_batch_of_a_tf_data_pipeline_is_refused(digits, cells, kind, entry_point):
    model, bad_x, message = model_and_data(kind, digits, cells)
    clean = digits[0][:96] if BAD_DATA[kind][0] in ("bernoulli", "gaussian") else cells[0][:96]
    if kind == "uint8-pixels":  # Clean uint8 batches are all zeros and ones.
        clean = (clean > 0.5).astype(np.uint8)
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry_point](model, later_batch_is_bad(clean, bad_x))


def test_a_tf_data_pipeline_of_wrong_shape_is_refused(digits):
    data = tf.data.Dataset.from_tensor_slices(digits[0][:64, :27]).batch(32)
    with pytest.raises(ValueError, match=r"shape \(batch, 28, 28, 1\)"):
        compiled(tiny_vae()).fit(data, epochs=1, verbose=0)


def test_conditional_vae_refuses_bad_labels_in_a_later_batch(digits):
    images, labels = digits[0][:96], digits[1][:96].astype(np.int32).copy()
    labels[70] = 10
    model = compiled(ConditionalVAE((28, 28, 1), num_classes=10, hidden_units=(16,), seed=0))
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 10\)"):
        model.fit(data, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.fit(images, labels, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="labels are missing"):
        model.predict(images, verbose=0)


def test_a_clean_tf_data_pipeline_trains_and_sets_the_library_size(cells):
    model = compiled(count_vae("nb"))
    data = tf.data.Dataset.from_tensor_slices(cells[0]).batch(32)
    history = model.fit(data, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    median = np.median(cells[0][:32].sum(axis=1))  # Of the first batch.
    assert float(keras.ops.convert_to_numpy(model.library_size)) == pytest.approx(median)
    assert model.predict(data, verbose=0).shape == cells[0].shape


def test_generate_with_a_seed_repeats_itself(digits):
    model = tiny_vae()
    np.testing.assert_array_equal(model.generate(5, seed=1), model.generate(5, seed=1))
    assert not np.allclose(model.generate(5, seed=1), model.generate(5, seed=2))
    assert not np.allclose(model.generate(5), model.generate(5))  # The model's own generator.
    cvae = ConditionalVAE((28, 28, 1), num_classes=10, hidden_units=(16,), seed=0)
    first = cvae.generate(np.array([1, 2, 3]), seed=4)
    assert first.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(first, cvae.generate(np.array([1, 2, 3]), seed=4))
    with pytest.raises(ValueError, match="integers as labels"):
        cvae.generate(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="at least 1"):
        model.generate(0)


def test_the_config_holds_every_constructor_argument_under_its_own_name():
    arguments = dict(data_shape=(N_GENES,), latent_dim=3, hidden_units=(16, 8), likelihood="nb",
                     beta=0.5, network="dense", linear_decoder=True, batch_norm=True, seed=7)
    config = VAE(**arguments).get_config()
    assert {name: config[name] for name in arguments} == arguments
    assert ConditionalVAE((4,), num_classes=3, likelihood="gaussian").get_config()[
        "num_classes"] == 3


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(likelihood="binomial"), "likelihood must be one of"),
        (dict(network="conv", data_shape=(784,)), "network='conv' needs images"),
        (dict(likelihood="nb"), "data_shape=\\(n_genes,\\)"),
        (dict(latent_dim=0), "latent_dim must be at least 1"),
        (dict(hidden_units=(16, 0)), "hidden_units must be at least 1"),
    ],
)
def test_bad_constructor_arguments_say_what_to_do(arguments, message):
    with pytest.raises(ValueError, match=message):
        tiny_vae(**arguments)


# Conditional generation, warm-up, reproducibility --------------------------------------------


def test_conditional_generation_uses_its_label(digits):
    images, labels = digits
    model = compiled(ConditionalVAE((28, 28, 1), num_classes=10, hidden_units=(16,), seed=0))
    model.fit(images, labels, epochs=1, batch_size=64, verbose=0)
    model.fit((images, labels), epochs=1, batch_size=64, verbose=0)  # The tuple form works too.
    z = np.zeros((1, 2), np.float32)
    zeros, ones = model.decode(z, labels=0), model.decode(z, labels=1)
    assert np.abs(zeros - ones).mean() > 1e-3
    np.testing.assert_allclose(model.decode(z, labels=0), zeros)  # Decoding is deterministic.
    assert model.generate([0, 1, 2, 3]).shape == (4, 28, 28, 1)


def test_conditional_vae_needs_valid_labels(digits):
    model = ConditionalVAE((28, 28, 1), num_classes=10, hidden_units=(16,))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.encode(digits[0][:2], np.array([3, 10]))


def test_kl_warmup_raises_beta_linearly_to_the_target(digits):
    model = compiled(tiny_vae(beta=2.0))
    history = model.fit(
        digits[0][:64], epochs=3, batch_size=64, verbose=0, callbacks=[KLWarmup(epochs=2)]
    )
    np.testing.assert_allclose(history.history["beta"], [0.0, 1.0, 2.0])
    assert float(keras.ops.convert_to_numpy(model.kl_weight)) == model.beta == 2.0


def test_the_kl_weight_variable_is_named_kl_weight_not_beta():
    """beta is the constructor's target; the variable that KLWarmup moves is kl_weight (files
    saved when it was named "beta" still load: Keras restores weights by position)."""
    names = [weight.name for weight in tiny_vae(beta=2.0).weights]
    assert "kl_weight" in names and "beta" not in names


def test_same_seed_gives_the_same_model(digits):
    def train():
        keras.utils.set_random_seed(3)
        model = compiled(tiny_vae(seed=3))
        model.fit(digits[0][:64], epochs=2, batch_size=32, verbose=0, shuffle=False)
        return model.encode(digits[0][:16])

    np.testing.assert_array_equal(train(), train())


# Saving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conv-bernoulli", "nb", "conditional-zinb"])
def test_save_and_load_keep_encodings_beta_and_optimizer_state(tmp_path, digits, cells, kind):
    if kind == "conv-bernoulli":
        model, x, labels = tiny_vae(network="conv", latent_dim=3), digits[0][:64], None
    elif kind == "nb":
        model, x, labels = count_vae("nb", batch_norm=True), cells[0], None
    else:
        model = ConditionalVAE((N_GENES,), num_classes=3, latent_dim=3, hidden_units=(16,),
                               likelihood="zinb")
        x, labels = cells
    compiled(model)
    fit_data = (x,) if labels is None else (x, labels)
    model.fit(*fit_data, epochs=2, batch_size=32, verbose=0)
    model.kl_weight.assign(0.25)
    path = tmp_path / "vae.keras"
    model.save(path)

    loaded = keras.models.load_model(path)
    encode_args = (x[:10],) if labels is None else (x[:10], labels[:10])
    np.testing.assert_allclose(loaded.encode(*encode_args), model.encode(*encode_args), atol=1e-6)
    assert loaded.get_config() == model.get_config()
    assert float(keras.ops.convert_to_numpy(loaded.kl_weight)) == 0.25
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    loaded.fit(*fit_data, epochs=1, batch_size=32, verbose=0)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) + len(x) // 32


# Distribution and precision ------------------------------------------------------------------


def test_models_train_on_two_replicas(strategy, digits, cells):
    images, digit_labels = digits
    with strategy.scope():
        image_model = compiled(tiny_vae(network="conv"))
        count_model = compiled(ConditionalVAE((N_GENES,), num_classes=3, latent_dim=3,
                                              hidden_units=(16,), likelihood="nb"))
    image_data = datasets.as_dataset(images, batch_size=32, drop_remainder=True)
    count_data = datasets.as_dataset(cells, batch_size=32, drop_remainder=True)
    for model, data in ((image_model, image_data), (count_model, count_data)):
        history = model.fit(data, epochs=2, verbose=0, callbacks=[KLWarmup(epochs=1)])
        assert np.all(np.isfinite(history.history["loss"]))
        assert history.history["beta"] == [0.0, 1.0]
        assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 4


def test_models_train_under_mixed_precision(digits, cells):
    keras.config.set_dtype_policy("mixed_float16")  # The autouse fixture resets it.
    for model, x in ((tiny_vae(network="conv"), digits[0][:64]), (count_vae("zinb"), cells[0])):
        compiled(model)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(x, epochs=3, batch_size=32, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        assert model.encode(x[:4]).dtype == np.float32
