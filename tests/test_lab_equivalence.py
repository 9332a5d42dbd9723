"""The labs' solutions compute what the package computes (issue 13).

The labs tell students that the toolkit holds what they wrote ("``course.models.VAE`` is the same
model with everything you wrote above inside"). Each test below draws random inputs from seeded
numpy Generators and checks that a solution's function or class (``solutions/0N_*.py``, loaded
with ``tests.lab_harness.solution_namespace``) gives the package counterpart's output: equal up to
float rounding, or, for a training step, the same losses and the same updated weights from the
same weights, batch and noise.

Pairs (lab, exercise: solution name -> package name). "elsewhere" marks pairs tested in another
file; "differs" marks deliberate differences and says what is tested instead.

== == ============================== ===================================================
1  1.1 standardize                    datasets.landmark_split's training-cell standardization
                                      (differs: +1e-6 in the denominator vs scale 1 for a
                                      constant gene; both give 0 for it on the training cells)
1  1.2 build_encoder, build_decoder   models.MLPRegressor(hidden_units=(128,), "relu")
1  1.3 reconstruction_loss            n_genes * models.landmark.reconstruction_error("mse"),
                                      and 2 x the unit-variance likelihoods.gaussian NLL
                                      minus n_genes log(2 pi) (the course's loss convention)
1  1.4 Autoencoder.train_step         Keras' built-in step of fit (elsewhere:
                                      test_checks_lab01; the package has no autoencoder)
2  2.1 sample_z                       VAE.reparameterize, given the same epsilon (differs:
                                      the package draws epsilon with distribute.normal,
                                      different on every replica)
2  2.2 kl_divergence                  models.vae.kl_divergence (elsewhere: test_checks_lab02)
2  2.3 DigitVAE.train_step            VAE.train_step (elsewhere: test_checks_lab02)
2  --  build_encoder, build_decoder,  VAE(likelihood="bernoulli").encoder, .decoder, call,
       DigitVAE.call,                 reconstruct, -log_likelihood
       DigitVAE.reconstruction_loss
2  2.4 decode_grid                    plots.manifold_grid (its canvas, cut into images)
3  3.1 nb_log_likelihood              likelihoods.negative_binomial, element by element, up to
                                      the float32 rounding of the log-gamma terms that the
                                      lab subtracts (the toolkit's TFP avoids it)
3  3.2 expected_counts                VAE(likelihood="nb").reconstruct (library x softmax);
                                      with 3.1 vs VAE.log_likelihood: elsewhere
                                      (test_checks_lab03)
3  3.3 denoised_expression            the log-normalization of datasets' adata.X
4  4.1 discriminator_loss             models.gan.discriminator_loss
4  4.2 non_saturating_generator_loss  models.gan.non_saturating_generator_loss
4  4.3 saturating_generator_loss      models.gan.saturating_generator_loss
4  4.4 SmallGAN (networks, step)      GAN(network="dense", hidden_units=(256,)) .generator,
                                      .discriminator, train_step (same noise injected)
4  4.5 grid_of_classes                plots.class_grid (its images)
5  5.1 per_gene_floor                 evaluation.per_gene_mean, evaluation.per_gene_median
5  5.2 fit_ridge                      evaluation.ridge
5  5.3 train_mlp                      evaluation.mlp (differs: the lab's MLP has 256 hidden
                                      units and trains on arrays, the protocol's 512 on a
                                      seeded tf.data pipeline; tested with the protocol's
                                      width set to 256 and one batch per epoch, which makes
                                      the order of the cells irrelevant)
5  5.4 ggan_generator_loss            LandmarkGAN(reconstruction="l1")'s logged g_loss in
                                      train_step, and gan.non_saturating_generator_loss +
                                      landmark.reconstruction_error
5  5.5 per_gene_correlation           metrics.per_gene_pearson (differs: the package also
                                      calls a column constant when its spread is float32
                                      rounding (< 1e-6 of its size) and clips r to [-1, 1];
                                      equal on real data and on exactly constant columns)
6  6.1 scaled_mean_loss               distribute.scale_loss(ops.mean(...)), on one device
                                      and on each of two replicas
6  6.2 train_step_on_replica          Keras' built-in fit step with loss="mse" (what the lab
                                      says compile(loss=...) does), on one device and on two
                                      replicas
6  6.3 replica_noise                  distribute.normal, on one device and on two replicas
6  6.4 train_distributed_gan          none: it only calls the package (as_dataset, GAN,
                                      strategy.scope); test_checks_lab06 grades it
7  7.1 Representations                DGD.representations (the lookup and the initial scale)
7  7.2 gmm_log_density                models.dgd.mixture_log_density
7  7.3 LabDGD (losses, train_step)    DGD.log_likelihood, log_prior, train_step (differs: the
                                      DGD adds a hyperprior on the mixture, log p(prior) /
                                      n_cells per cell; tested: everything else equal and
                                      the means and log-variances off by exactly the
                                      hyperprior's gradient step)
7  7.4 infer_representations          DGD.infer from the same start (the hyperprior is
                                      constant in z)
7  --  best_component_means           DGD.infer(steps=0), its start (both rank components
                                      by -log p(x|z) - log p(z); the lab once left out the
                                      prior)
== == ============================== ===================================================
"""

from __future__ import annotations

import functools
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from lab_harness import solution_namespace
from scipy import special

from course import datasets, distribute, evaluation, likelihoods, metrics, plots
from course import models as course_models
from course.models import DGD, GAN, VAE, ConditionalGAN, LandmarkGAN, MLPRegressor
from course.models import dgd as dgd_module
from course.models import gan as gan_module
from course.models import landmark as landmark_module

SEEDS = (0, 1, 2)


def numpy(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


def solution_fixture(number: int):
    """A module-scoped fixture: the namespace of solution ``number``, executed once."""
    return pytest.fixture(scope="module")(lambda: solution_namespace(number))


lab1, lab2, lab3, lab4, lab5, lab6, lab7 = (solution_fixture(n) for n in range(1, 8))


class InjectedNoise:
    """A stand-in for ``distribute.normal`` that hands out given arrays in order (checking
    their shapes) or, without them, draws from a seeded Generator and records the draws."""

    def __init__(self, arrays=None, seed: int = 0):
        self.queue = None if arrays is None else [numpy(array) for array in arrays]
        self.rng = np.random.default_rng(seed)
        self.draws = []

    def __call__(self, shape, seed_generator=None, dtype="float32"):
        shape = tuple(int(size) for size in shape)
        if self.queue is None:
            draw = self.rng.normal(size=shape).astype("float32")
        else:
            assert self.queue, "the step drew more noise than the lab's step"
            draw = self.queue.pop(0)
            assert draw.shape == shape, f"noise of shape {shape} asked, {draw.shape} injected"
        self.draws.append(draw)
        return tf.constant(draw, dtype=dtype)


def assert_same_weights(mine, theirs, rtol=1e-5, atol=1e-6):
    assert len(mine) == len(theirs)
    for index, (a, b) in enumerate(zip(mine, theirs)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"weight {index}")


# --- Lab 1: Keras basics ------------------------------------------------------------------------


@functools.cache
def synthetic_cells(seed: int, n_cells: int = 160, n_genes: int = 60):
    """Negative-binomial counts with cell types (an AnnData of the toolkit's layout)."""
    return datasets.synthetic_counts(n_cells=n_cells, n_genes=n_genes, n_cell_types=4, seed=seed)


@functools.cache
def landmark_split(seed: int):
    return datasets.landmark_split(synthetic_cells(seed), n_landmarks=20, seed=seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_1_1_standardize_is_the_standardization_of_the_landmark_split(lab1, seed):
    adata, split = synthetic_cells(seed), landmark_split(seed)
    genes = list(adata.var_names)
    columns = [genes.index(gene) for gene in split.landmark_genes + split.target_genes]
    training_cells = np.asarray(adata.X, dtype="float32")[split.train_index][:, columns]
    mine = numpy(lab1["standardize"](training_cells))
    np.testing.assert_allclose(mine, np.hstack([split.x_train, split.y_train]),
                               rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_1_2_the_encoder_and_decoder_are_mlp_regressors_with_one_relu_layer(lab1, seed):
    rng = np.random.default_rng(seed)
    n_genes, latent_dim = 50, 2
    pairs = [
        (lab1["build_encoder"](n_genes, latent_dim),
         MLPRegressor(n_genes, latent_dim, hidden_units=(128,), activation="relu"), n_genes),
        (lab1["build_decoder"](latent_dim, n_genes),
         MLPRegressor(latent_dim, n_genes, hidden_units=(128,), activation="relu"), latent_dim),
    ]
    for lab_model, package_model, width in pairs:
        package_model.set_weights(lab_model.get_weights())
        inputs = rng.normal(size=(64, width)).astype("float32")
        np.testing.assert_allclose(numpy(lab_model(inputs)), numpy(package_model(inputs)),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_1_3_reconstruction_loss_is_the_courses_squared_error_and_gaussian_loss(lab1, seed):
    rng = np.random.default_rng(seed)
    expression = rng.normal(size=(64, 30)).astype("float32")
    reconstruction = (expression + rng.normal(scale=0.5, size=expression.shape)).astype("float32")
    n_genes = expression.shape[1]
    mine = float(numpy(lab1["reconstruction_loss"](expression, reconstruction)))
    mean_squared_error = landmark_module.reconstruction_error(reconstruction, expression, "mse")
    np.testing.assert_allclose(mine, n_genes * float(numpy(mean_squared_error)), rtol=1e-5)
    log_likelihood = likelihoods.gaussian(expression, reconstruction, np.zeros_like(expression))
    negative_log_likelihood = -numpy(ops.sum(log_likelihood, axis=-1)).astype("float64")
    np.testing.assert_allclose(
        mine, np.mean(2.0 * negative_log_likelihood - n_genes * math.log(2.0 * math.pi)),
        rtol=1e-5)


# --- Lab 2: a VAE for digits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_vae():
    return VAE(data_shape=(28, 28, 1), latent_dim=2, likelihood="bernoulli", seed=0)


def digit_images(rng, n: int = 32) -> np.ndarray:
    """Grey values in [0, 1] with mostly-empty background, like MNIST."""
    ink = rng.uniform(size=(n, 28, 28, 1)) < 0.2
    return np.where(ink, rng.uniform(0.3, 1.0, size=ink.shape), 0.0).astype("float32")


@pytest.mark.parametrize("seed", SEEDS)
def test_2_1_sample_z_is_the_vae_reparameterization_given_the_same_noise(
        lab2, digit_vae, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    z_mean = rng.normal(scale=2.0, size=(64, 2)).astype("float32")
    z_log_var = rng.uniform(-4.0, 2.0, size=(64, 2)).astype("float32")
    # The lab's noise comes from its seed_generator: draw the same numbers from a twin of it.
    monkeypatch.setitem(lab2, "seed_generator", keras.random.SeedGenerator(seed))
    epsilon = keras.random.normal((64, 2), seed=keras.random.SeedGenerator(seed))
    monkeypatch.setattr(distribute, "normal", InjectedNoise([epsilon]))
    mine = numpy(lab2["sample_z"](z_mean, z_log_var))
    np.testing.assert_allclose(mine, numpy(digit_vae.reparameterize(z_mean, z_log_var)),
                               rtol=1e-6, atol=1e-6)


def lab_digit_vae(lab2, vae):
    """The lab's DigitVAE with the weights of the toolkit's ``vae``."""
    model = lab2["DigitVAE"](lab2["build_encoder"](), lab2["build_decoder"]())
    model.encoder.set_weights(vae.encoder.get_weights())
    model.decoder.set_weights(vae.decoder.get_weights())
    return model


@pytest.mark.parametrize("seed", SEEDS)
def test_2_3_the_lab_networks_and_likelihood_are_the_bernoulli_vae(lab2, digit_vae, seed):
    rng = np.random.default_rng(seed)
    images = digit_images(rng)
    model = lab_digit_vae(lab2, digit_vae)
    for mine, theirs in zip(model.encoder(images), digit_vae.encoder(images)):
        np.testing.assert_allclose(numpy(mine), numpy(theirs), rtol=1e-5, atol=1e-6)
    z = rng.normal(size=(len(images), 2)).astype("float32")
    np.testing.assert_allclose(numpy(model.decoder(z)), numpy(digit_vae.decoder(z)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(numpy(model.reconstruction_loss(images, model.decoder(z))),
                               -numpy(digit_vae.log_likelihood(images, z)), rtol=1e-5)
    np.testing.assert_allclose(numpy(model(images)), numpy(digit_vae(images)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy(model(images)), digit_vae.reconstruct(images),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_2_4_decode_grid_is_the_manifold_grid_of_the_plots(lab2, seed):
    vae = VAE(data_shape=(28, 28, 1), latent_dim=2, likelihood="bernoulli", seed=seed)
    points_per_side, extent = 5, float(np.random.default_rng(seed).uniform(1.0, 3.0))
    mine = lab2["decode_grid"](vae.decoder, points_per_side, extent)
    figure = plots.manifold_grid(vae, n=points_per_side, span=extent)
    canvas = np.asarray(figure.axes[0].images[0].get_array())
    plt.close(figure)
    images = canvas.reshape(points_per_side, 28, points_per_side, 28).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(mine[..., 0], images.reshape(-1, 28, 28), rtol=1e-5, atol=1e-6)


# --- Lab 3: a VAE for counts ----------------------------------------------------------------------


def negative_binomial_draws(rng, n_cells: int = 64, n_genes: int = 100):
    """Counts x ~ NB(mu, theta) with realistic library sizes, gene shares and dispersions."""
    library = rng.lognormal(np.log(3000.0), 0.4, size=(n_cells, 1))
    shares = rng.dirichlet(np.full(n_genes, 0.3), size=n_cells) + 1e-7
    mu = library * shares / shares.sum(axis=1, keepdims=True)
    theta = np.exp(rng.normal(0.5, 1.0, size=n_genes))
    counts = rng.negative_binomial(theta, theta / (theta + mu))
    return counts.astype("float32"), mu.astype("float32"), theta.astype("float32")


@pytest.mark.parametrize("seed", SEEDS)
def test_3_1_nb_log_likelihood_is_the_toolkits_negative_binomial(lab3, seed):
    counts, mu, theta = negative_binomial_draws(np.random.default_rng(seed))
    mine = numpy(lab3["nb_log_likelihood"](counts, mu, theta)).astype("float64")
    theirs = numpy(likelihoods.negative_binomial(counts, mu, theta)).astype("float64")
    # The lab subtracts float32 log-gammas of thousands (the toolkit's TFP does not): they agree
    # up to the float32 rounding of those terms (float32 resolves ~1e-7 of a value's size).
    x, theta = counts.astype("float64"), theta.astype("float64")
    rounding = 1e-6 * (special.gammaln(x + theta) + special.gammaln(x + 1.0)
                       + np.abs(special.gammaln(theta)) + 1.0)
    np.testing.assert_array_less(np.abs(mine - theirs), rounding)


@pytest.mark.parametrize("seed", SEEDS)
def test_3_2_expected_counts_is_the_count_vaes_reconstruction(lab3, seed):
    counts = datasets.counts(synthetic_cells(seed))
    vae = VAE(data_shape=counts.shape[1:], latent_dim=4, likelihood="nb",
              hidden_units=(32,), seed=seed)
    # The decoder ends in a softmax; the log of its shares serves as gene logits.
    shares = vae.decode(vae.encode(counts), library_size=1.0)
    mine = numpy(lab3["expected_counts"](np.log(shares), counts))
    np.testing.assert_allclose(mine, vae.reconstruct(counts), rtol=1e-4, atol=1e-5)


class Reconstructs:
    """A stand-in model whose reconstruction is the given expected counts."""

    def __init__(self, expected):
        self.expected = expected

    def reconstruct(self, counts):
        return self.expected


@pytest.mark.parametrize("seed", SEEDS)
def test_3_3_denoised_expression_is_on_the_scale_of_the_toolkits_adata_x(lab3, seed):
    """Given the counts themselves as the 'reconstruction', the lab's scaling is adata.X."""
    adata = synthetic_cells(seed)
    counts = datasets.counts(adata)
    mine = lab3["denoised_expression"](Reconstructs(counts), counts)
    np.testing.assert_allclose(mine, np.asarray(adata.X), rtol=1e-5, atol=1e-6)


# --- Lab 4: GANs -------------------------------------------------------------------------------


def discriminator_logits(rng, n: int = 64) -> np.ndarray:
    """Logits from confident to undecided, both signs, including saturated ones."""
    logits = rng.normal(scale=3.0, size=(n, 1))
    logits[:4, 0] = [-30.0, -15.0, 15.0, 30.0]
    return logits.astype("float32")


@pytest.mark.parametrize("seed", SEEDS)
def test_4_1_to_4_3_the_lab_losses_are_the_toolkits_gan_losses(lab4, seed):
    rng = np.random.default_rng(seed)
    real_logits, fake_logits = discriminator_logits(rng), discriminator_logits(rng)
    pairs = [
        (lab4["discriminator_loss"](real_logits, fake_logits),
         gan_module.discriminator_loss(real_logits, fake_logits)),
        (lab4["non_saturating_generator_loss"](fake_logits),
         gan_module.non_saturating_generator_loss(fake_logits)),
        (lab4["saturating_generator_loss"](fake_logits),
         gan_module.saturating_generator_loss(fake_logits)),
    ]
    for mine, theirs in pairs:
        np.testing.assert_allclose(numpy(mine), numpy(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_4_4_a_small_gan_step_is_the_toolkit_gan_step(lab4, seed, monkeypatch):
    """Same weights, same batch, same noise: the same losses and updated networks."""
    rng = np.random.default_rng(seed)
    images = digit_images(rng, n=16)
    latent_dim, hidden_units = 8, (64,)
    small_gan = lab4["SmallGAN"](data_shape=(28, 28, 1), latent_dim=latent_dim,
                                 hidden_units=hidden_units, seed=seed)
    gan = GAN(data_shape=(28, 28, 1), latent_dim=latent_dim, network="dense",
              hidden_units=hidden_units, seed=seed)
    small_gan.generator.set_weights(gan.generator.get_weights())
    small_gan.discriminator.set_weights(gan.discriminator.get_weights())
    x = rng.normal(size=(8, latent_dim)).astype("float32")
    np.testing.assert_allclose(numpy(small_gan.generator(x)), numpy(gan.generator(x)),
                               rtol=1e-5, atol=1e-6)
    for model in (small_gan, gan):
        model.compile(d_optimizer=keras.optimizers.SGD(0.05),
                      g_optimizer=keras.optimizers.SGD(0.05))
    # The lab draws its two latent batches from its own SeedGenerator(seed): inject the same.
    twin = keras.random.SeedGenerator(seed)
    noise = [keras.random.normal((len(images), latent_dim), seed=twin) for _ in range(2)]
    lab_logs = small_gan.train_step(tf.constant(images))
    injected = InjectedNoise(noise)
    monkeypatch.setattr(distribute, "normal", injected)
    toolkit_logs = gan.train_step(tf.constant(images))
    assert not injected.queue, "the toolkit step drew less noise than the lab's step"
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(numpy(lab_logs[key]), numpy(toolkit_logs[key]), rtol=1e-5)
    assert_same_weights(small_gan.discriminator.get_weights(), gan.discriminator.get_weights())
    assert_same_weights(small_gan.generator.get_weights(), gan.generator.get_weights())


@pytest.mark.parametrize("seed", SEEDS)
def test_4_5_grid_of_classes_is_the_class_grid_of_the_plots(lab4, seed):
    cgan = ConditionalGAN(data_shape=(28, 28, 1), num_classes=10, latent_dim=8,
                          hidden_units=(32,), seed=seed)
    n_per_class = 3
    grid_labels, grid_images = lab4["grid_of_classes"](cgan, n_per_class)
    np.testing.assert_array_equal(grid_labels, np.repeat(np.arange(10), n_per_class))
    figure = plots.class_grid(cgan, n_per_class=n_per_class, seed=0)
    shown = [np.asarray(axis.images[0].get_array()) for axis in figure.axes if axis.images]
    plt.close(figure)
    np.testing.assert_allclose(np.asarray(grid_images)[..., 0], np.stack(shown),
                               rtol=1e-6, atol=1e-6)


# --- Lab 5: landmark genes ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_5_1_the_floors_are_the_protocols_per_gene_mean_and_median(lab5, seed):
    split = landmark_split(seed)
    n_cells = len(split.y_test)
    for statistic, predictor in (("mean", evaluation.per_gene_mean),
                                 ("median", evaluation.per_gene_median)):
        mine = lab5["per_gene_floor"](split.y_train, n_cells, statistic)
        (theirs,) = predictor(split, seed=seed, epochs=0).values()
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6, err_msg=statistic)


@pytest.mark.parametrize("seed", SEEDS)
def test_5_2_fit_ridge_is_the_protocols_ridge(lab5, seed):
    split = landmark_split(seed)
    mine = lab5["fit_ridge"](split).predict(split.x_test)
    (theirs,) = evaluation.ridge(split, seed=seed, epochs=0).values()
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_5_3_train_mlp_is_the_protocols_mlp_at_the_labs_width(lab5, loss, monkeypatch):
    """Shared: the model class, Adam(1e-3), the loss, batch size, patience and early stopping
    on the validation cells. Set to the lab's: 256 hidden units, and one batch per epoch (the
    protocol shuffles with tf.data, fit shuffles arrays: one batch makes the order moot)."""
    seed, epochs = 0, 4
    split = landmark_split(seed)
    assert (evaluation.BATCH_SIZE, evaluation.PATIENCE) == (lab5["BATCH_SIZE"], 10)
    one_batch = len(split.x_train)
    monkeypatch.setattr(evaluation, "BATCH_SIZE", one_batch)
    monkeypatch.setitem(lab5, "BATCH_SIZE", one_batch)
    monkeypatch.setattr(course_models, "MLPRegressor",
                        functools.partial(MLPRegressor, hidden_units=(256,)))
    keras.utils.set_random_seed(seed)
    mine = lab5["train_mlp"](split, loss, epochs).predict(split.x_test, verbose=0)
    (theirs,) = evaluation.mlp(loss, "MLP")(split, seed=seed, epochs=epochs).values()
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_5_4_ggan_generator_loss_is_the_landmark_gans_generator_loss(lab5, seed, monkeypatch):
    """The logged g_loss of a LandmarkGAN step is the lab's loss of that step's tensors."""
    rng = np.random.default_rng(seed)
    split = landmark_split(seed)
    landmarks, targets = tf.constant(split.x_train[:32]), tf.constant(split.y_train[:32])
    l1_weight, consistency_weight = float(rng.uniform(1, 50)), float(rng.uniform(0.1, 5))
    model = LandmarkGAN(split.n_landmarks, split.n_targets, latent_dim=4, hidden_units=(32,),
                        reconstruction="l1", reconstruction_weight=l1_weight,
                        consistency_weight=consistency_weight, energy_weight=0.0,
                        noise_std=0.5, seed=seed)
    # The discriminator does not move (learning rate 0), so the generator's loss of the step
    # can be recomputed from the initial weights and the noise the step drew.
    model.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.01))
    initial_generator = model.generator.get_weights()
    initial_predictor = model.predictor.get_weights()
    noise = InjectedNoise(seed=seed)
    monkeypatch.setattr(distribute, "normal", noise)
    logs = model.train_step((landmarks, targets))
    model.generator.set_weights(initial_generator)
    model.predictor.set_weights(initial_predictor)
    # Drawn in turn: the discriminator's sample (latent, gene noise), the generator's, then the
    # two noisy copies of the landmarks. (energy_weight=0: the lab's loss has no energy score.)
    _, _, generator_latent, gene_noise, noise_1, noise_2 = (tf.constant(draw)
                                                            for draw in noise.draws)
    samples = model.predictor(landmarks) + model.generator([landmarks, generator_latent,
                                                            gene_noise])
    fake_logits = model.discriminator([landmarks, samples])
    predicted = model(landmarks + 0.5 * noise_1)
    other_predicted = model(landmarks + 0.5 * noise_2)
    mine = lab5["ggan_generator_loss"](fake_logits, predicted, targets, other_predicted,
                                       l1_weight, consistency_weight)
    np.testing.assert_allclose(numpy(mine), numpy(logs["g_loss"]), rtol=1e-5)
    composed = (gan_module.non_saturating_generator_loss(fake_logits)
                + l1_weight * landmark_module.reconstruction_error(predicted, targets, "l1")
                + consistency_weight * landmark_module.reconstruction_error(
                    predicted, other_predicted, "mse"))
    np.testing.assert_allclose(numpy(mine), numpy(composed), rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_5_5_per_gene_correlation_is_the_toolkits_per_gene_pearson(lab5, seed):
    rng = np.random.default_rng(seed)
    split = landmark_split(seed)
    y_true = split.target_expression(split.y_test)
    y_pred = y_true + rng.normal(scale=0.5, size=y_true.shape)
    y_true[:, 0] = 0.0  # a gene not detected in any test cell
    y_pred[:, 1] = 1.5  # a constant prediction
    mine = lab5["per_gene_correlation"](y_true, y_pred)
    theirs = metrics.per_gene_pearson(y_true, y_pred)
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
    assert np.isnan(mine[:2]).all() and not np.isnan(mine[2:]).any()
    np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


# --- Lab 6: MirroredStrategy --------------------------------------------------------------------


def per_replica(strategy, function) -> np.ndarray:
    return np.stack([numpy(value) for value in
                     strategy.experimental_local_results(strategy.run(function))])


@pytest.mark.parametrize("seed", SEEDS)
def test_6_1_scaled_mean_loss_is_the_toolkits_scaled_mean(lab6, strategy, seed):
    losses = tf.constant(np.random.default_rng(seed).gamma(2.0, 3.0, size=48), tf.float32)

    def mine():
        return lab6["scaled_mean_loss"](losses)

    def theirs():
        return distribute.scale_loss(ops.mean(losses))

    np.testing.assert_allclose(numpy(mine()), numpy(theirs()), rtol=1e-6)
    np.testing.assert_allclose(per_replica(strategy, mine), per_replica(strategy, theirs),
                               rtol=1e-6)
    np.testing.assert_allclose(per_replica(strategy, mine), float(ops.mean(losses)) / 2,
                               rtol=1e-6)


def keras_fit_weight(on_strategy, x, y, initial_weight, learning_rate) -> np.ndarray:
    """w of y = x w after one SGD step of Keras' built-in fit with loss="mse"."""
    with on_strategy.scope():
        model = keras.Sequential([keras.Input(x.shape[1:]),
                                  keras.layers.Dense(y.shape[1], use_bias=False)])
        model.set_weights([np.asarray(initial_weight, "float32")])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return model.get_weights()[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_6_2_the_replica_step_is_keras_fit_step_on_one_device_and_two_replicas(
        lab6, strategy, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(12, 1)).astype("float32")
    y = (rng.uniform(1.0, 3.0) * x + rng.normal(scale=0.1, size=x.shape)).astype("float32")
    initial_weight, learning_rate = [[float(rng.uniform(-1.0, 1.0))]], 0.1
    for on_strategy in (tf.distribute.get_strategy(), strategy):
        mine = lab6["weight_after_one_step"](on_strategy, lab6["train_step_on_replica"], x, y,
                                             initial_weight, learning_rate)
        theirs = keras_fit_weight(on_strategy, x, y, initial_weight, learning_rate)
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_6_3_replica_noise_is_the_toolkits_per_replica_normal(lab6, strategy, seed):
    shape = (4, 3)
    mine_generator = keras.random.SeedGenerator(seed)
    theirs_generator = keras.random.SeedGenerator(seed)
    np.testing.assert_array_equal(numpy(lab6["replica_noise"](shape, mine_generator)),
                                  numpy(distribute.normal(shape, theirs_generator)))
    with strategy.scope():
        mine_generator = keras.random.SeedGenerator(seed)
        theirs_generator = keras.random.SeedGenerator(seed)
    mine = per_replica(strategy, lambda: lab6["replica_noise"](shape, mine_generator))
    theirs = per_replica(strategy, lambda: distribute.normal(shape, theirs_generator))
    np.testing.assert_array_equal(mine, theirs)
    assert not np.allclose(mine[0], mine[1]), "the replicas drew the same noise"


# --- Lab 7: the Deep Generative Decoder ----------------------------------------------------------


def dgd_and_lab_twin(lab7, counts, seed: int, n_components: int = 4, latent_dim: int = 3):
    """A DGD with a random mixture, and the lab's LabDGD with exactly its weights."""
    rng = np.random.default_rng(seed)
    n_cells, n_genes = counts.shape
    dgd = DGD(n_genes=n_genes, n_cells=n_cells, latent_dim=latent_dim,
              n_components=n_components, hidden_units=(16,), seed=seed)
    dgd.means.assign(rng.normal(size=(n_components, latent_dim)).astype("float32"))
    dgd.log_variances.assign(rng.normal(-1.0, 0.5, (n_components, latent_dim)).astype("float32"))
    dgd.weight_logits.assign(rng.normal(size=n_components).astype("float32"))
    dgd.log_theta.assign(rng.normal(0.5, 0.5, n_genes).astype("float32"))
    dgd.representations.assign(rng.normal(scale=0.8, size=(n_cells, latent_dim))
                               .astype("float32"))
    lab = lab7["LabDGD"](lab7["build_decoder"](latent_dim, n_genes, hidden_units=16),
                         n_cells=n_cells, n_components=n_components)
    lab.decoder.set_weights(dgd.decoder.get_weights())
    for name in ("means", "log_variances", "weight_logits", "log_theta"):
        getattr(lab, name).assign(getattr(dgd, name))
    lab.representations.table.assign(dgd.representations)
    return dgd, lab


@pytest.mark.parametrize("seed", SEEDS)
def test_7_1_representations_are_the_dgds_table(lab7, seed):
    rng = np.random.default_rng(seed)
    n_cells, latent_dim = 400, 5
    layer = lab7["Representations"](n_cells, latent_dim)
    dgd = DGD(n_genes=10, n_cells=n_cells, latent_dim=latent_dim, seed=seed)
    for owner, table in (("lab", layer.table), ("DGD", dgd.representations)):
        assert tuple(table.shape) == (n_cells, latent_dim)
        spread = float(np.std(numpy(table)))
        assert abs(spread - 0.01) < 0.001, f"the {owner}'s table starts with sd {spread:.4f}"
    layer.table.assign(dgd.representations)
    cell_indices = rng.integers(0, n_cells, size=64)
    np.testing.assert_array_equal(numpy(layer(cell_indices)),
                                  numpy(ops.take(dgd.representations, cell_indices, axis=0)))


@pytest.mark.parametrize("seed", SEEDS)
def test_7_2_gmm_log_density_is_the_dgds_mixture_log_density(lab7, seed):
    rng = np.random.default_rng(seed)
    n_components, latent_dim = 6, 4
    means = rng.normal(scale=2.0, size=(n_components, latent_dim)).astype("float32")
    log_variances = rng.uniform(-3.0, 1.0, size=(n_components, latent_dim)).astype("float32")
    weight_logits = rng.normal(size=n_components).astype("float32")
    z = rng.normal(scale=2.0, size=(128, latent_dim)).astype("float32")
    z[:4] = [[40.0] * latent_dim, [-60.0] * latent_dim, [30.0, -30.0] * 2, [0.0] * latent_dim]
    mine = numpy(lab7["gmm_log_density"](z, means, log_variances, weight_logits))
    theirs = numpy(dgd_module.mixture_log_density(z, means, log_variances, weight_logits))
    assert np.isfinite(mine).all()
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_7_3_the_lab_step_is_the_dgd_step_but_for_the_hyperprior(lab7, seed):
    """Same weights, batch and learning rates: equal reconstruction losses and updates, except
    that the DGD's hyperprior on the mixture (log p(prior) / n_cells per cell) shifts its loss
    by a constant and moves the means and log-variances by its own gradient step."""
    counts = datasets.counts(synthetic_cells(seed, n_cells=96, n_genes=40))
    dgd, lab = dgd_and_lab_twin(lab7, counts, seed)
    n_cells = len(counts)
    cell_indices = np.random.default_rng(seed).permutation(n_cells)[:32].astype("int32")
    batch = (tf.constant(counts[cell_indices]), tf.constant(cell_indices))
    learning_rate, representation_rate = 0.01, 0.5
    means, log_variances = numpy(dgd.means), numpy(dgd.log_variances)
    hyperprior = float(numpy(dgd_module.hyperprior_log_density(
        means, log_variances, dgd.component_scale)))
    for model in (dgd, lab):
        model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                      representation_optimizer=keras.optimizers.SGD(representation_rate))
    lab_logs, dgd_logs = lab.train_step(batch), dgd.train_step(batch)

    np.testing.assert_allclose(numpy(lab_logs["reconstruction_loss"]),
                               numpy(dgd_logs["reconstruction_loss"]), rtol=1e-5)
    for key in ("loss", "prior_loss"):
        np.testing.assert_allclose(numpy(lab_logs[key]) - hyperprior / n_cells,
                                   numpy(dgd_logs[key]), rtol=1e-5, atol=1e-4)
    assert_same_weights(lab.decoder.get_weights(), dgd.decoder.get_weights())
    for name in ("log_theta", "weight_logits"):
        np.testing.assert_allclose(numpy(getattr(lab, name)), numpy(getattr(dgd, name)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(numpy(lab.representations.table), numpy(dgd.representations),
                               rtol=1e-5, atol=1e-6)
    # d(-log hyperprior / n_cells) is means / n_cells and (log_variances - centre) / n_cells.
    centre = 2.0 * math.log(dgd.component_scale)
    np.testing.assert_allclose(numpy(lab.means) - learning_rate * means / n_cells,
                               numpy(dgd.means), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        numpy(lab.log_variances) - learning_rate * (log_variances - centre) / n_cells,
        numpy(dgd.log_variances), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_7_4_infer_representations_is_dgd_infer_from_the_same_start(lab7, seed):
    counts = datasets.counts(synthetic_cells(seed, n_cells=96, n_genes=40))
    dgd, lab = dgd_and_lab_twin(lab7, counts, seed)
    new_counts = counts[:24]
    start = dgd.infer(new_counts, steps=0)
    steps, learning_rate = 20, 0.05
    mine = lab7["infer_representations"](lab, new_counts, start, steps, learning_rate)
    theirs = dgd.infer(new_counts, steps=steps, learning_rate=learning_rate)
    assert not np.allclose(theirs, start), "inference did not move the representations"
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_7_4_the_labs_starting_points_are_those_of_dgd_infer(lab7, seed):
    counts = datasets.counts(synthetic_cells(seed, n_cells=96, n_genes=40))
    dgd, lab = dgd_and_lab_twin(lab7, counts, seed)
    np.testing.assert_allclose(lab7["best_component_means"](lab, counts),
                               dgd.infer(counts, steps=0), rtol=1e-6)
