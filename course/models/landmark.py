"""Inferring target genes from landmark genes: a conditional GAN that predicts AND samples, and
the D-GEX MLP.

D-GEX (Chen et al. 2016) regresses the expression of target genes on a small panel of
"landmark" genes with an MLP trained by mean squared error. GGAN (Wang et al. 2018) trains the
regressor as the generator of a conditional GAN instead. But a regression gives one profile per
cell, the conditional MEAN, which is blurrier than any measured cell; a conditional generator
should give many: draws from p(targets | landmarks) that differ as real cells with those
landmarks do. LandmarkGAN keeps the two jobs apart:

    prediction(x) = linear(x) + refinement(x)       the point prediction (the conditional mean)
    sample(x, z)  = prediction(x) + generator(x, z)  a draw; z ~ N(0, I)

The prediction is trained as a regression (GGAN's reconstruction and consistency terms on two
noisy copies of the landmarks, which regularize like ridge); its linear part makes it at least a
linear model. The generator draws how a cell deviates from the prediction and is trained on
samples only, with the prediction held fixed (a stop-gradient), so the noise z is all it has:
it cannot ignore it. Two losses judge the samples:

    energy score (Gneiting & Raftery 2007; as a loss: engression, Shen & Meinshausen 2024)
        ES = 1/2 (|s1 - y| + |s2 - y|) - 1/2 |s1 - s2|      for two draws s1, s2 per cell
    adversarial (GGAN): a discriminator judges (landmarks, targets) pairs, real vs sampled.

The energy score is a proper scoring rule: its expectation is lowest for the true conditional
distribution, so the draws must spread as much as real cells do, no more. The reconstruction
term decides what the prediction estimates: MSE the conditional mean, L1 the conditional median.
On zero-inflated single-cell data most targets have a median of zero, so an L1-trained model
learns to predict "not detected" and wins on MAE while losing the expression; the default is
therefore MSE. benchmarks/gan.py measures the defaults against ridge, kNN and the conditional
samplers of ``course.evaluation``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, networks
from course.models.adversarial import AdversarialModel
from course.models.base import CheckedInputs, Configurable
from course.models.gan import discriminator_loss, non_saturating_generator_loss
from course.models.validation import (
    at_least,
    finite_batch,
    in_interval,
    input_arrays,
    one_of,
    require,
    split_pair,
    validate_finite,
    validate_shape,
)

RECONSTRUCTIONS = ("mse", "l1", "huber")
RIDGE_ALPHAS = tuple(np.logspace(-1, 5, 13))  # the alphas of the linear part (as evaluation's)


def reconstruction_error(predicted, targets, kind: str = "mse"):
    """Mean over cells and genes of the squared ("mse"), absolute ("l1") or Huber error."""
    error = ops.cast(predicted, "float32") - ops.cast(targets, "float32")
    if kind == "mse":
        return ops.mean(ops.square(error))
    if kind == "l1":
        return ops.mean(ops.abs(error))
    # Huber with delta 1: squared near the truth (the mean), absolute far away (robust).
    absolute = ops.abs(error)
    return ops.mean(ops.where(absolute < 1.0, 0.5 * ops.square(error), absolute - 0.5))


def energy_score_loss(samples, other_samples, targets):
    """Mean over cells of the fair energy score of two draws per cell (lower is better):
    1/2 (|s1 - y| + |s2 - y|) - 1/2 |s1 - s2|, Euclidean norms over genes."""
    samples, other_samples = ops.cast(samples, "float32"), ops.cast(other_samples, "float32")
    targets = ops.cast(targets, "float32")

    def norm(difference):  # The small constant keeps the gradient finite at 0.
        return ops.sqrt(ops.sum(ops.square(difference), axis=-1) + 1e-12)

    return ops.mean(0.5 * (norm(samples - targets) + norm(other_samples - targets))
                    - 0.5 * norm(samples - other_samples))


def training_pairs(x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """All (landmarks, targets) that fit() is given: two arrays, a pair, or a finite tf.data
    dataset of pairs (read once)."""
    if isinstance(x, tf.data.Dataset):
        require(x.cardinality() != tf.data.INFINITE_CARDINALITY,
                "An endless dataset cannot be read for the linear part; call "
                "solve_linear(landmarks, targets) on the training cells before fit().")
        pairs = [split_pair(batch) for batch in x.as_numpy_iterator()]
        return tuple(np.concatenate([pair[part] for pair in pairs]) for part in (0, 1))
    return tuple(np.asarray(array) for array in split_pair(x if y is None else (x, y)))


class LandmarkBatches:
    """The per-batch checks of the landmark -> target models (LandmarkGAN, MLPRegressor)."""

    def validate_batch(self, landmarks, targets=None):
        """The landmarks (and targets, when given) of a batch after checking their shapes and
        that they hold no NaN (in the step, so that every batch of a tf.data input is checked)."""
        landmarks = validate_shape(landmarks, (self.n_landmarks,), "The landmarks")
        landmarks = finite_batch(landmarks, "The landmarks")
        if targets is None:
            return landmarks
        targets = validate_shape(targets, (self.n_targets,), "The targets")
        return landmarks, finite_batch(targets, "The targets")


@keras.saving.register_keras_serializable(package="course")
class LandmarkGAN(LandmarkBatches, AdversarialModel):
    """A conditional GAN from landmark to target genes: a point prediction and conditional draws.

    GGAN (Wang, Ghasedi Dizaji & Huang 2018, Bioinformatics 34:i603) with the generator split in
    two (see the module docstring): ``predict(landmarks)`` is the regression, ``generate(
    landmarks, seed)`` one draw per cell from p(targets | landmarks), trained with the energy
    score (Shen & Meinshausen 2024) and a discriminator.

    Args:
        n_landmarks: number of landmark (input) genes.
        n_targets: number of target (output) genes.
        latent_dim: size of the generator's latent noise vector.
        hidden_units: widths of the hidden layers of the refinement, the generator and the
            discriminator.
        reconstruction: "mse" (conditional mean), "l1" (conditional median) or "huber".
        reconstruction_weight: weight of the reconstruction term; None uses the number of
            targets. The error is a mean over genes while the adversarial term is one logit
            per cell, so the weight must grow with the number of targets to keep the balance.
        adversarial_weight: weight of the adversarial term (samples that fool D).
        consistency_weight: weight of the mean squared difference between the predictions
            for two noisy copies of the same landmarks (GGAN's consistency term).
        energy_weight: weight of the energy score of two draws per cell (0: a GAN only).
        noise_std: standard deviation of the Gaussian noise added to the (standardized)
            landmarks of both noisy copies (it also regularizes, like data augmentation).
        label_smoothing: one-sided smoothing of the discriminator's real labels.
        seed: seed of the model's random number generator.
    """

    def __init__(
        self,
        n_landmarks: int,
        n_targets: int,
        latent_dim: int = 16,
        hidden_units: tuple[int, ...] = (256, 256),
        reconstruction: str = "mse",
        reconstruction_weight: float | None = None,
        adversarial_weight: float = 1.0,
        consistency_weight: float = 1.0,
        energy_weight: float = 1.0,
        noise_std: float = 0.5,
        label_smoothing: float = 0.0,
        seed: int = 1337,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, size in (("n_landmarks", n_landmarks), ("n_targets", n_targets),
                           ("latent_dim", latent_dim)):
            at_least(name, size)
        one_of("reconstruction", reconstruction, RECONSTRUCTIONS)
        for name, weight in (("reconstruction_weight", reconstruction_weight or 0.0),
                             ("adversarial_weight", adversarial_weight),
                             ("consistency_weight", consistency_weight),
                             ("energy_weight", energy_weight), ("noise_std", noise_std)):
            at_least(name, weight, 0)
        in_interval("label_smoothing", label_smoothing, 0.0, 1.0)
        self.n_landmarks, self.n_targets, self.latent_dim = n_landmarks, n_targets, latent_dim
        self.hidden_units = tuple(hidden_units)
        self.reconstruction = reconstruction
        self.reconstruction_weight = reconstruction_weight
        self.adversarial_weight = adversarial_weight
        self.consistency_weight = consistency_weight
        self.energy_weight = energy_weight
        self.noise_std = noise_std
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.predictor = self._build_predictor()
        self.generator = self._build_generator()
        self.discriminator = self._build_discriminator()
        # Ridge's alpha, saved with the model; 0 until fit() has solved the linear part.
        self.linear_alpha = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            name="linear_alpha")
        # Each target's lowest training value: a draw below it is cut to it, so draws are
        # exactly "not detected" as often as real cells (no cut until fit() sets it).
        self.target_floor = self.add_weight(shape=(n_targets,), trainable=False,
                                            initializer="zeros", name="target_floor")
        self._finish_init(seed, ("d_loss", "g_loss", "adversarial_loss", "reconstruction_loss",
                                 "consistency_loss", "energy_score"))

    def _build_predictor(self) -> keras.Model:
        # The linear part is ridge regression, solved in closed form by fit() (not trained by
        # gradient); the refinement starts at 0, so training starts from ridge's prediction.
        landmarks = keras.Input((self.n_landmarks,), name="landmarks")
        linear = layers.Dense(self.n_targets, kernel_initializer="zeros", trainable=False,
                              dtype="float32", name="linear")(landmarks)
        x = networks.dense_stack(landmarks, self.hidden_units, activation="leaky_relu",
                                 name="refinement")
        refinement = layers.Dense(self.n_targets, kernel_initializer="zeros", dtype="float32",
                                  name="refinement_output")(x)
        predicted = layers.Add(dtype="float32", name="prediction")([linear, refinement])
        return keras.Model(landmarks, predicted, name="predictor")

    def _build_generator(self) -> keras.Model:
        # The deviation of a cell from the prediction has two parts: one shared by many genes,
        # from the latent vector z (which enters every hidden unit next to the landmarks), and
        # one of each gene alone, its own standard normal noise times a learned scale (as
        # counting noise is). Either way the output is a deviation from the prediction, so a
        # generator that ignored its noise could only add a fixed offset.
        landmarks = keras.Input((self.n_landmarks,), name="landmarks")
        latent = keras.Input((self.latent_dim,), name="latent")
        gene_noise = keras.Input((self.n_targets,), name="gene_noise")
        x = layers.Concatenate(name="landmarks_and_latent")([landmarks, latent])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu", name="hidden")
        shared = networks.output_layer(x, (self.n_targets,), name="shared_deviation")
        scale = layers.Dense(self.n_targets, activation="softplus", dtype="float32",
                             name="gene_noise_scale")(x)
        own = layers.Multiply(dtype="float32", name="gene_deviation")([scale, gene_noise])
        deviation = layers.Add(dtype="float32", name="deviation")([shared, own])
        return keras.Model([landmarks, latent, gene_noise], deviation, name="generator")

    def _build_discriminator(self) -> keras.Model:
        # No dropout: Keras repeats the dropout mask on every replica (see DESIGN.md).
        landmarks = keras.Input((self.n_landmarks,), name="landmarks")
        targets = keras.Input((self.n_targets,), name="targets")
        x = layers.Concatenate(name="landmarks_and_targets")([landmarks, targets])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu")
        logits = layers.Dense(1, dtype="float32", name="logit")(x)
        return keras.Model([landmarks, targets], logits, name="discriminator")

    def call(self, landmarks, training=False):
        """The point prediction for a batch of landmarks."""
        if isinstance(landmarks, (tuple, list)):  # fit((landmarks, targets)) feeds the pair.
            landmarks = landmarks[0]
        return self.predictor(landmarks, training=training)

    def _sample(self, landmarks, noise=None, training=False):
        """A conditional draw per cell: the prediction (held fixed: a draw trains only the
        generator) plus the generator's deviation for fresh (or the given) ``noise``, a pair
        (latent vectors, gene noise), cut at each target's floor."""
        if noise is None:
            noise = self._random_noise(ops.shape(landmarks)[0])
        prediction = ops.stop_gradient(self.predictor(landmarks, training=training))
        draws = prediction + self.generator([landmarks, *noise], training=training)
        return ops.where(self.linear_alpha > 0, ops.maximum(draws, self.target_floor), draws)

    def _random_noise(self, n, seed: int | None = None):
        """The generator's noise for ``n`` cells: latent vectors and per-gene noise, N(0, I)."""
        if seed is None:
            return (self.random_latent_vectors(n),
                    distribute.normal((n, self.n_targets), self.seed_generator))
        seed_generator = keras.random.SeedGenerator(seed)
        return (self.random_latent_vectors(n, seed_generator),
                keras.random.normal((n, self.n_targets), seed=seed_generator))

    def _noisy_landmarks(self, landmarks):
        """The landmarks plus Gaussian noise of sd ``noise_std`` (a noisy measurement)."""
        noise = distribute.normal(ops.shape(landmarks), self.seed_generator)
        return landmarks + self.noise_std * noise

    def _weighted_total(self, adversarial_loss, reconstruction_loss, consistency_loss,
                        energy_score):
        # By default the reconstruction weight is the number of targets: the mean over genes
        # then pulls as hard as GGAN's norm (a sum over genes), whatever the number of targets.
        weight = self.reconstruction_weight
        weight = self.n_targets if weight is None else weight
        return (self.adversarial_weight * adversarial_loss + weight * reconstruction_loss
                + self.consistency_weight * consistency_loss + self.energy_weight * energy_score)

    def train_step(self, data):
        landmarks, targets = self.validate_batch(*split_pair(data))

        # Train the discriminator to tell true (landmarks, targets) pairs from sampled ones.
        samples = self._sample(landmarks, training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator([landmarks, targets], training=True)
            fake_logits = self.discriminator([landmarks, samples], training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.label_smoothing)
            scaled_d_loss = distribute.scale_loss(d_loss, self.d_optimizer)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled_d_loss, weights), weights)

        # Train the generator and the predictor (and *not* the discriminator). The draws should
        # fool D and score well against
        # the truth (two per cell for the energy score); the prediction for two noisy copies of
        # the landmarks should be close to the truth and to each other.
        with tf.GradientTape() as tape:
            samples = self._sample(landmarks, training=True)
            adversarial_loss = non_saturating_generator_loss(
                self.discriminator([landmarks, samples], training=True))
            energy_score = (energy_score_loss(samples, self._sample(landmarks, training=True),
                                              targets)
                            if self.energy_weight else ops.zeros(()))
            predicted = self(self._noisy_landmarks(landmarks), training=True)
            other_predicted = self(self._noisy_landmarks(landmarks), training=True)
            reconstruction_loss = reconstruction_error(predicted, targets, self.reconstruction)
            consistency_loss = reconstruction_error(predicted, other_predicted, "mse")
            g_loss = self._weighted_total(adversarial_loss, reconstruction_loss, consistency_loss,
                                          energy_score)
            scaled_g_loss = distribute.scale_loss(g_loss, self.g_optimizer)
        weights = self.optimized_variables("g_optimizer")
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(
            d_loss=d_loss, g_loss=g_loss, adversarial_loss=adversarial_loss,
            reconstruction_loss=reconstruction_loss, consistency_loss=consistency_loss,
            energy_score=energy_score)

    def test_step(self, data):
        # The training losses without updates; reconstruction_loss is that of predict()'s
        # noiseless prediction (early stopping watches it).
        landmarks, targets = self.validate_batch(*split_pair(data))
        samples = self._sample(landmarks)
        real_logits = self.discriminator([landmarks, targets])
        fake_logits = self.discriminator([landmarks, samples])
        adversarial_loss = non_saturating_generator_loss(fake_logits)
        energy_score = energy_score_loss(samples, self._sample(landmarks), targets)
        reconstruction_loss = reconstruction_error(self(landmarks), targets, self.reconstruction)
        consistency_loss = reconstruction_error(self(self._noisy_landmarks(landmarks)),
                                                self(self._noisy_landmarks(landmarks)), "mse")
        return self._update_trackers(
            d_loss=discriminator_loss(real_logits, fake_logits, self.label_smoothing),
            g_loss=self._weighted_total(adversarial_loss, reconstruction_loss, consistency_loss,
                                        energy_score),
            adversarial_loss=adversarial_loss, reconstruction_loss=reconstruction_loss,
            consistency_loss=consistency_loss, energy_score=energy_score)

    def default_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        """Adam(beta_1=0.5) for both, at 2e-4 for D and 1e-3 for the generator and predictor
        (faster: on the PBMC protocol 2e-4 left the draws far from the truth when early
        stopping ended training; see benchmarks/gan.py)."""
        learning_rate = 2e-4 if name == "d_optimizer" else 1e-3
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.5)

    def optimized_variables(self, name: str) -> list:
        """The discriminator's weights for ``d_optimizer``; those of the predictor and the
        generator for ``g_optimizer``."""
        if name == "d_optimizer":
            return self.discriminator.trainable_variables
        return self.predictor.trainable_variables + self.generator.trainable_variables

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` on ``(landmarks, targets)``, after solving the linear part of the
        prediction on these cells the first time (ridge regression, alpha by leave-one-out
        cross-validation; a ``tf.data`` input is read once for it)."""
        if not self.linear_solved:
            for array in input_arrays(x, y):
                require(len(array) > 0, "The training data is empty; pass at least one example.")
            self.fit_closed_form(*training_pairs(x, y))
        return super().fit(x, y, *args, **kwargs)

    def fit_closed_form(self, landmarks, targets) -> float:
        """What the training cells give in closed form: the linear part of the prediction,
        ridge regression of ``targets`` on ``landmarks`` (one alpha for all targets, by
        leave-one-out error), and each target's floor, its lowest training value (not detected
        on the log1p scale: draws are cut there). Returns alpha."""
        from sklearn.linear_model import RidgeCV

        landmarks = self._validate_landmarks(landmarks)
        targets = validate_shape(np.asarray(targets, dtype="float32"), (self.n_targets,),
                                 "The targets")
        validate_finite(targets, "The targets")
        require(len(targets) == len(landmarks),
                f"There are {len(landmarks)} landmark rows but {len(targets)} target rows.")
        ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(landmarks, targets)
        self.predictor.get_layer("linear").set_weights(
            [ridge.coef_.T.astype("float32"), ridge.intercept_.astype("float32")])
        self.target_floor.assign(targets.min(axis=0))
        self.linear_alpha.assign(float(ridge.alpha_))
        return float(ridge.alpha_)

    @property
    def linear_solved(self) -> bool:
        """Whether fit() (or fit_closed_form) has set the linear part (its alpha is then > 0)."""
        return float(self.linear_alpha.numpy()) > 0

    def _validate_landmarks(self, landmarks) -> np.ndarray:
        landmarks = np.asarray(landmarks, dtype="float32")
        if landmarks.ndim != 2 or landmarks.shape[1] != self.n_landmarks:
            raise ValueError(
                f"landmarks must have shape (n_cells, {self.n_landmarks}), got "
                f"{landmarks.shape}. Pass the standardized landmark genes of the split."
            )
        validate_finite(landmarks, "The landmarks")
        return landmarks

    def predict(self, landmarks, batch_size: int = 256, verbose="auto", **kwargs) -> np.ndarray:
        """The point prediction (numpy): the regression part, without noise."""
        landmarks = self._validate_landmarks(landmarks)
        return super().predict(landmarks, batch_size=batch_size, verbose=verbose, **kwargs)

    def generate(self, landmarks, seed: int | None = None) -> np.ndarray:
        """One conditional draw per cell (numpy): the prediction plus the generator's deviation
        at a random latent vector; a fixed ``seed`` repeats the draws."""
        landmarks = self._validate_landmarks(landmarks)
        noise = self._random_noise(len(landmarks), seed)
        return ops.convert_to_numpy(self._sample(ops.convert_to_tensor(landmarks), noise))


@keras.saving.register_keras_serializable(package="course")
class MLPRegressor(LandmarkBatches, Configurable, CheckedInputs, keras.Model):
    """The D-GEX baseline: an MLP (tanh hidden layers, linear output) from landmarks to targets.

    Train it with the standard ``compile(optimizer, loss="mse")`` and ``fit(landmarks, targets)``.
    D-GEX regularized with dropout; this one has none, because Keras repeats the dropout mask on
    every replica under MirroredStrategy (see DESIGN.md): stop early on validation instead.
    """

    def __init__(
        self,
        n_landmarks: int,
        n_targets: int,
        hidden_units: tuple[int, ...] = (512,),
        activation: str = "tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        at_least("n_landmarks", n_landmarks)
        at_least("n_targets", n_targets)
        self.n_landmarks = n_landmarks
        self.n_targets = n_targets
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        landmarks = keras.Input((n_landmarks,), name="landmarks")
        x = networks.dense_stack(landmarks, self.hidden_units, activation)
        targets = networks.output_layer(x, (n_targets,), name="targets")
        self.network = keras.Model(landmarks, targets, name="mlp")
        self.built = True

    def call(self, landmarks, training=False):
        return self.network(landmarks, training=training)

    # Keras' own steps, on batches checked by validate_batch.
    def train_step(self, data):
        return super().train_step(self.validate_batch(*split_pair(data)))

    def test_step(self, data):
        return super().test_step(self.validate_batch(*split_pair(data)))

    def predict_step(self, data):
        landmarks, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return super().predict_step(self.validate_batch(landmarks))
