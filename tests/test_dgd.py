"""The Deep Generative Decoder: the objective, MAP training of the batch's representations,
inference for new cells, input checks, saving, and two-replica training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from course import datasets, distribute
from course.models import DGD
from course.models.dgd import mixture_log_density

N_CELLS, N_GENES, LATENT_DIM, N_COMPONENTS = 48, 20, 3, 4


@pytest.fixture(scope="module")
def cells():
    adata = datasets.synthetic_counts(n_cells=N_CELLS, n_genes=N_GENES, n_cell_types=3, seed=0,
                                      mean_library_size=500.0)
    return datasets.counts(adata), datasets.labels(adata)[0]


def tiny_dgd(**kwargs):
    options = dict(n_genes=N_GENES, n_cells=N_CELLS, latent_dim=LATENT_DIM,
                   n_components=N_COMPONENTS, hidden_units=(16,), seed=0)
    options.update(kwargs)
    return DGD(**options)


@pytest.fixture(scope="module")
def trained(cells):
    """A DGD after a few epochs (shared by the tests that only use a trained model)."""
    keras.utils.set_random_seed(0)
    model = compiled(tiny_dgd())
    model.fit(cells[0], batch_size=16, epochs=5, verbose=0)
    return model


def compiled(model, optimizer=None, representation_optimizer=None):
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2),
                  representation_optimizer=representation_optimizer)
    return model


def randomize_prior(model, seed=1):
    """Unequal means, variances and weights, so every term of the mixture matters."""
    rng = np.random.default_rng(seed)
    model.means.assign(rng.normal(size=model.means.shape).astype("float32"))
    model.log_variances.assign(rng.normal(-0.5, 0.5, model.log_variances.shape).astype("float32"))
    model.weight_logits.assign(rng.normal(size=model.weight_logits.shape).astype("float32"))
    model.log_theta.assign(rng.normal(0.0, 0.5, model.log_theta.shape).astype("float32"))
    model.representations.assign(rng.normal(size=model.representations.shape).astype("float32"))


def numpy_loss_terms(model, counts, indices):
    """-log p(x|z) and -log p(z) - log p(prior) / n_cells per cell, with scipy."""
    z = model.get_representations()[indices]
    mu = counts.sum(axis=1, keepdims=True) * model.decoder.predict(z, verbose=0)
    theta = np.exp(model.log_theta.numpy().astype(np.float64))
    reconstruction = -stats.nbinom.logpmf(counts, theta, theta / (theta + mu)).sum(axis=1)
    means, log_var = model.means.numpy(), model.log_variances.numpy()
    weights = np.exp(model.weight_logits.numpy()) / np.exp(model.weight_logits.numpy()).sum()
    per_component = stats.norm.logpdf(z[:, None, :], means, np.exp(0.5 * log_var)).sum(-1)
    log_density = logsumexp(per_component + np.log(weights), axis=1)
    hyperprior = (stats.norm.logpdf(means, 0.0, 1.0).sum()
                  + stats.norm.logpdf(log_var, 2 * np.log(model.component_scale), 1.0).sum())
    return reconstruction, -log_density - hyperprior / model.n_cells


# The objective -------------------------------------------------------------------------------


def test_mixture_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    z, means = rng.normal(size=(6, 2)), rng.normal(size=(3, 2))
    log_var, logits = rng.normal(size=(3, 2)), rng.normal(size=3)
    weights = np.exp(logits) / np.exp(logits).sum()
    expected = np.log(sum(
        weights[k] * stats.multivariate_normal.pdf(z, means[k], np.diag(np.exp(log_var[k])))
        for k in range(3)
    ))
    values = mixture_log_density(z.astype("float32"), means.astype("float32"),
                                 log_var.astype("float32"), logits.astype("float32"))
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-5)


def test_loss_terms_equal_a_direct_computation(cells):
    counts, _ = cells
    model = tiny_dgd()
    randomize_prior(model)
    indices = np.array([5, 0, 17, 3])
    reconstruction, prior = numpy_loss_terms(model, counts[indices], indices)
    z = model.representations.numpy()[indices]
    np.testing.assert_allclose(-np.asarray(model.log_likelihood(counts[indices], z)),
                               reconstruction, rtol=1e-4)
    np.testing.assert_allclose(-np.asarray(model.log_prior(z)), prior, rtol=1e-4, atol=1e-4)
    compiled(model)
    logs = model.evaluate((counts[indices], indices), batch_size=4, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(np.mean(reconstruction + prior), rel=1e-4)
    assert logs["prior_loss"] == pytest.approx(np.mean(prior), rel=1e-4, abs=1e-4)


# Training ------------------------------------------------------------------------------------


def test_a_step_updates_only_the_representations_of_the_batch(cells):
    counts, _ = cells
    model = compiled(tiny_dgd())
    before = model.get_representations()
    network_before = [w.numpy().copy() for w in model.network_weights]
    batch = np.array([3, 10, 11, 40])
    model.fit((counts[batch], batch), batch_size=4, epochs=1, verbose=0)
    changed = np.any(model.get_representations() != before, axis=1)
    np.testing.assert_array_equal(np.flatnonzero(changed), np.sort(batch))
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(network_before,
                                                                  model.network_weights))


@pytest.mark.slow
def test_with_adam_for_the_table_cells_outside_the_batch_would_move(cells):
    """Why the representations get Adagrad: Adam's momentum moves rows without a gradient."""
    counts, _ = cells
    model = compiled(tiny_dgd(), representation_optimizer=keras.optimizers.Adam(0.01))
    model.fit((counts[:4], np.arange(4)), batch_size=4, epochs=1, verbose=0)
    before = model.get_representations()
    model.fit((counts[4:8], np.arange(4, 8)), batch_size=4, epochs=1, verbose=0)
    assert np.any(model.get_representations()[:4] != before[:4])


@pytest.mark.slow
def test_training_lowers_the_loss_and_separates_the_cell_types(cells):
    counts, cell_types = cells
    keras.utils.set_random_seed(0)
    model = compiled(tiny_dgd(), representation_optimizer=keras.optimizers.Adagrad(0.3))
    history = model.fit(counts, batch_size=16, epochs=40, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    from course import metrics

    assert metrics.latent_knn_accuracy(model.get_representations(), cell_types, k=5, cv=3) > 0.8


@pytest.mark.slow
def test_same_seed_same_result(cells):
    counts, _ = cells

    def train():
        keras.utils.set_random_seed(0)
        model = compiled(tiny_dgd())
        model.fit(counts, batch_size=16, epochs=2, verbose=0)
        return model.get_representations()

    np.testing.assert_array_equal(train(), train())


# Using a trained model -----------------------------------------------------------------------


def test_output_shapes(cells, trained):
    counts, model = cells[0], trained
    assert model.get_representations().shape == (N_CELLS, LATENT_DIM)
    assert model((counts[:5], np.arange(5))).shape == (5, N_GENES)
    assert model.decode(np.zeros((7, LATENT_DIM))).shape == (7, N_GENES)
    assert model.generate(9).shape == (9, N_GENES)
    components = model.assign_components(model.get_representations())
    assert components.shape == (N_CELLS,) and set(components) <= set(range(N_COMPONENTS))
    assert model.infer(counts[:6], steps=3).shape == (6, LATENT_DIM)
    np.testing.assert_allclose(model.decode(np.zeros((2, LATENT_DIM)), library_size=100.0)
                               .sum(axis=1), 100.0, rtol=1e-4)


def test_infer_lowers_the_loss_of_new_cells_and_leaves_the_model_frozen(cells, trained):
    counts, model = cells[0], trained
    weights = [w.copy() for w in model.get_weights()]

    def loss(z):
        return np.asarray(-model.log_likelihood(counts[:8], z) - model.log_prior(z))

    start, inferred = model.infer(counts[:8], steps=0), model.infer(counts[:8], steps=100)
    assert np.all(loss(inferred) < loss(start))
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_infer_starts_at_the_best_component_mean(cells):
    counts, _ = cells
    model = tiny_dgd()
    randomize_prior(model)
    start = model.infer(counts[:5], steps=0)
    means = model.means.numpy()
    losses = [np.asarray(-model.log_likelihood(counts[:5], np.repeat(m[None], 5, 0))
                         - model.log_prior(np.repeat(m[None], 5, 0))) for m in means]
    np.testing.assert_allclose(start, means[np.argmin(np.stack(losses, 1), axis=1)])


# Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c, i: (c + 0.5, i), "non-integer"),
        (lambda c, i: (np.where(c == c.max(), np.nan, c), i), "NaN"),
        (lambda c, i: (c[:, :-1], i), "shape"),
        (lambda c, i: (c, i + N_CELLS), "0 .. 47"),
        (lambda c, i: (c, i - 1), "0 .. 47"),
        (lambda c, i: (c, i.astype("float32")), "integers"),
        (lambda c, i: (c, i[:-1]), "one per cell"),
    ],
    ids=["non-integer", "nan", "wrong-gene-count", "index-too-large", "negative-index",
         "float-indices", "too-few-indices"],
)
def test_bad_input_raises_a_clear_value_error(cells, change, words):
    counts, _ = cells
    model = compiled(tiny_dgd())
    bad_counts, bad_indices = change(counts[:8].copy(), np.arange(8))
    with pytest.raises(ValueError, match=words):
        model.fit((bad_counts, bad_indices), batch_size=8, epochs=1, verbose=0)


def test_bad_input_to_fit_counts_infer_and_the_constructor(cells):
    counts, _ = cells
    model = compiled(tiny_dgd())
    with pytest.raises(ValueError, match="one row per training cell"):
        model.fit(counts[:10], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        model.infer(counts[:, :5])
    with pytest.raises(ValueError, match="non-integer"):
        model.infer(np.log1p(counts))
    with pytest.raises(ValueError, match="cell_indices"):
        model.train_step(counts[:4])
    with pytest.raises(ValueError, match="at least 1"):
        tiny_dgd(n_components=0)
    keras.config.set_dtype_policy("mixed_float16")
    with pytest.raises(ValueError, match="float32"):
        tiny_dgd()
    keras.config.set_dtype_policy("float32")
    with pytest.raises(ValueError, match="same object"):
        optimizer = keras.optimizers.Adam()
        tiny_dgd().compile(optimizer=optimizer, representation_optimizer=optimizer)


def test_a_dataset_is_checked_on_its_first_batch(cells):
    counts, _ = cells
    model = compiled(tiny_dgd())
    dataset = datasets.as_dataset((counts, np.arange(N_CELLS) + 1), batch_size=16, shuffle=False)
    with pytest.raises(ValueError, match="0 .. 47"):
        model.fit(dataset, epochs=1, verbose=0)


# Saving --------------------------------------------------------------------------------------


def test_save_and_load_keep_weights_config_and_both_optimizers(cells, tmp_path):
    counts, _ = cells
    model = compiled(tiny_dgd(component_scale=0.3),
                     representation_optimizer=keras.optimizers.Adagrad(0.2))
    model.fit(counts[:16], np.arange(16), batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "dgd.keras")
    loaded = keras.models.load_model(tmp_path / "dgd.keras")
    assert loaded.get_config() == model.get_config()
    for original, again in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(original, again)
    assert float(loaded.representation_optimizer.learning_rate) == pytest.approx(0.2)
    for original, again in zip(model.representation_optimizer.variables,
                               loaded.representation_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(again))
    history = loaded.fit(counts[:16], np.arange(16), batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# Two replicas --------------------------------------------------------------------------------


def train_two_steps(counts, strategy=None, initial_weights=None):
    """Two SGD steps of 8 cells each (plain SGD: a wrongly scaled gradient shows)."""
    import contextlib

    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = compiled(tiny_dgd(), optimizer=keras.optimizers.SGD(0.01),
                         representation_optimizer=keras.optimizers.SGD(0.05))
    if initial_weights is not None:
        model.set_weights(initial_weights)
    start = [w.copy() for w in model.get_weights()]
    indices = np.array([7, 1, 30, 12, 44, 2, 19, 25, 8, 33, 0, 41, 16, 5, 27, 38])
    dataset = datasets.as_dataset((counts[indices], indices), batch_size=8, shuffle=False,
                                  drop_remainder=True)
    history = model.fit(dataset, epochs=1, verbose=0)
    return model, start, history.history


def assert_same_training(single, distributed):
    (single_model, start, single_logs), (model, _, logs) = single, distributed
    for before, expected, got in zip(start, single_model.get_weights(), model.get_weights()):
        if not np.allclose(before, expected):
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    for key in ("loss", "reconstruction_loss", "prior_loss"):
        np.testing.assert_allclose(logs[key], single_logs[key], rtol=1e-4)


def test_two_replicas_update_and_log_what_one_device_does(cells, strategy):
    counts, _ = cells
    single = train_two_steps(counts)
    start = next(w for w in single[1] if w.shape == (N_CELLS, LATENT_DIM))
    moved = np.any(single[0].get_representations() != start, axis=1)
    assert moved.sum() == 16  # the cells of the two batches, and no others
    assert_same_training(single, train_two_steps(counts, strategy, initial_weights=single[1]))


@pytest.mark.slow
def test_the_comparison_fails_when_the_loss_is_not_scaled_by_replicas(
    cells, strategy, monkeypatch
):
    counts, _ = cells
    single = train_two_steps(counts)
    monkeypatch.setattr(distribute, "scale_loss", lambda loss, optimizer=None: loss)
    distributed = train_two_steps(counts, strategy, initial_weights=single[1])
    with pytest.raises(AssertionError):
        assert_same_training(single, distributed)


@pytest.mark.slow
def test_a_model_trained_under_a_strategy_saves_and_reloads_outside_it(cells, strategy,
                                                                        tmp_path):
    counts, _ = cells
    model, _, _ = train_two_steps(counts, strategy)
    model.save(tmp_path / "dgd.keras")
    loaded = keras.models.load_model(tmp_path / "dgd.keras")
    np.testing.assert_array_equal(loaded.get_representations(), model.get_representations())


@pytest.mark.parametrize("change, words", [
    (lambda c, i: (np.where(np.arange(len(c))[:, None] == 20, np.nan, c), i),
     "The counts contains NaN"),
    (lambda c, i: (c + (np.arange(len(c))[:, None] == 20) * 0.5, i), "non-integer"),
    (lambda c, i: (c, np.where(np.arange(len(i)) == 20, N_CELLS, i)), "0 .. 47"),
], ids=["nan", "non-integer", "index-too-large"])
def test_bad_input_in_a_later_batch_of_an_endless_dataset_is_a_value_error(cells, change, words):
    """fit() reads only the first batch of an endless pipeline; the step checks every batch."""
    import tensorflow as tf

    counts, _ = cells
    bad_counts, bad_indices = change(counts[:32].astype("float32"), np.arange(32))
    dataset = tf.data.Dataset.from_tensor_slices((bad_counts, bad_indices)).batch(8)
    model = compiled(tiny_dgd())
    with pytest.raises(ValueError, match=words):
        model.fit(dataset.repeat(), steps_per_epoch=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=words):
        model.evaluate(dataset, verbose=0)
