"""Inferring target genes from landmark genes: a conditional GAN (GGAN-style) and an MLP.

D-GEX (Chen et al. 2016) regresses the expression of target genes on a small panel of
"landmark" genes with an MLP trained by mean squared error. GGAN (Wang et al. 2018) trains the
regressor as the generator of a conditional GAN instead, with three terms:

    generator loss = adversarial_weight * adversarial      (make D accept (landmarks, prediction))
                   + reconstruction_weight * reconstruction (stay close to the truth)
                   + consistency_weight * consistency       (two noisy copies -> the same answer)

Here the generator has two uses. At latent vector z = 0 it gives the point prediction, which the
reconstruction and consistency terms train (on two noisy copies of the landmarks); at random z it
gives conditional samples, which the discriminator judges. The reconstruction term decides what
the prediction estimates: MSE the conditional mean, L1 the conditional median. On zero-inflated
single-cell data most targets have a median of zero, so an L1-trained model learns to predict
"not detected" and wins on MAE while losing the expression; the default is therefore MSE (under
``course.evaluation``'s protocol on PBMC cells it gave the highest per-gene r of MSE, Huber and
L1). The adversarial term is meant to pull towards profiles that look measured; on 700 cells it
barely does: see benchmarks/gan.py for where this model wins and where it loses.
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
    one_of,
    split_pair,
    validate_finite,
    validate_shape,
)

RECONSTRUCTIONS = ("mse", "l1", "huber")


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
    """A conditional GAN whose generator predicts target genes from landmark genes plus noise.

    Args:
        n_landmarks: number of landmark (input) genes.
        n_targets: number of target (output) genes.
        latent_dim: size of the generator's latent noise vector.
        hidden_units: widths of the hidden layers of both networks.
        reconstruction: "mse" (conditional mean), "l1" (conditional median) or "huber".
        reconstruction_weight: weight of the reconstruction term; None uses the number of
            targets. The error is a mean over genes while the adversarial term is one logit
            per cell, so the weight must grow with the number of targets to keep the balance.
        adversarial_weight: weight of the adversarial term.
        consistency_weight: weight of the mean squared difference between the predictions
            for two noisy copies of the same landmarks (GGAN's consistency term).
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
                             ("consistency_weight", consistency_weight), ("noise_std", noise_std)):
            at_least(name, weight, 0)
        in_interval("label_smoothing", label_smoothing, 0.0, 1.0)
        self.n_landmarks, self.n_targets, self.latent_dim = n_landmarks, n_targets, latent_dim
        self.hidden_units = tuple(hidden_units)
        self.reconstruction = reconstruction
        self.reconstruction_weight = reconstruction_weight
        self.adversarial_weight = adversarial_weight
        self.consistency_weight = consistency_weight
        self.noise_std = noise_std
        self.label_smoothing = label_smoothing
        self.seed = seed
        self.generator = self._build_generator()
        self.discriminator = self._build_discriminator()
        self._finish_init(seed, ("d_loss", "g_loss", "adversarial_loss", "reconstruction_loss",
                                 "consistency_loss"))

    def _build_generator(self) -> keras.Model:
        landmarks = keras.Input((self.n_landmarks,), name="landmarks")
        latent = keras.Input((self.latent_dim,), name="latent")
        x = layers.Concatenate(name="landmarks_and_latent")([landmarks, latent])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu", name="hidden")
        predicted = networks.output_layer(x, (self.n_targets,), name="targets")
        return keras.Model([landmarks, latent], predicted, name="generator")

    def _build_discriminator(self) -> keras.Model:
        # No dropout: Keras repeats the dropout mask on every replica (see DESIGN.md).
        landmarks = keras.Input((self.n_landmarks,), name="landmarks")
        targets = keras.Input((self.n_targets,), name="targets")
        x = layers.Concatenate(name="landmarks_and_targets")([landmarks, targets])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu")
        logits = layers.Dense(1, dtype="float32", name="logit")(x)
        return keras.Model([landmarks, targets], logits, name="discriminator")

    def call(self, landmarks, training=False):
        """The deterministic prediction (latent vector z = 0) for a batch of landmarks."""
        if isinstance(landmarks, (tuple, list)):  # fit((landmarks, targets)) feeds the pair.
            landmarks = landmarks[0]
        latent = ops.zeros((ops.shape(landmarks)[0], self.latent_dim), dtype=landmarks.dtype)
        return self.generator([landmarks, latent], training=training)

    def _noisy_landmarks(self, landmarks):
        """The landmarks plus Gaussian noise of sd ``noise_std`` (a noisy measurement)."""
        noise = distribute.normal(ops.shape(landmarks), self.seed_generator)
        return landmarks + self.noise_std * noise

    def _sample(self, landmarks, training=False):
        """A conditional sample: the generator at a fresh random latent vector (per replica)."""
        latent = self.random_latent_vectors(ops.shape(landmarks)[0])
        return self.generator([landmarks, latent], training=training)

    def _weighted_total(self, adversarial_loss, reconstruction_loss, consistency_loss):
        # By default the reconstruction weight is the number of targets: the mean over genes
        # then pulls as hard as GGAN's norm (a sum over genes), whatever the number of targets.
        weight = self.reconstruction_weight
        weight = self.n_targets if weight is None else weight
        return (self.adversarial_weight * adversarial_loss + weight * reconstruction_loss
                + self.consistency_weight * consistency_loss)

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

        # Train the generator (and *not* the discriminator): its samples should fool D, and
        # its prediction (latent z = 0) for two noisy copies of the landmarks should be close
        # to the truth and to each other.
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator([landmarks, self._sample(landmarks, True)],
                                             training=True)
            adversarial_loss = non_saturating_generator_loss(fake_logits)
            predicted = self(self._noisy_landmarks(landmarks), training=True)
            other_predicted = self(self._noisy_landmarks(landmarks), training=True)
            reconstruction_loss = reconstruction_error(predicted, targets, self.reconstruction)
            consistency_loss = reconstruction_error(predicted, other_predicted, "mse")
            g_loss = self._weighted_total(adversarial_loss, reconstruction_loss, consistency_loss)
            scaled_g_loss = distribute.scale_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(
            d_loss=d_loss, g_loss=g_loss, adversarial_loss=adversarial_loss,
            reconstruction_loss=reconstruction_loss, consistency_loss=consistency_loss)

    def test_step(self, data):
        # The training losses without updates; reconstruction_loss is that of predict()'s
        # noiseless prediction (early stopping watches it).
        landmarks, targets = self.validate_batch(*split_pair(data))
        real_logits = self.discriminator([landmarks, targets])
        fake_logits = self.discriminator([landmarks, self._sample(landmarks)])
        adversarial_loss = non_saturating_generator_loss(fake_logits)
        reconstruction_loss = reconstruction_error(self(landmarks), targets, self.reconstruction)
        consistency_loss = reconstruction_error(self(self._noisy_landmarks(landmarks)),
                                                self(self._noisy_landmarks(landmarks)), "mse")
        return self._update_trackers(
            d_loss=discriminator_loss(real_logits, fake_logits, self.label_smoothing),
            g_loss=self._weighted_total(adversarial_loss, reconstruction_loss, consistency_loss),
            adversarial_loss=adversarial_loss, reconstruction_loss=reconstruction_loss,
            consistency_loss=consistency_loss)

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
        """Deterministic target prediction (numpy): the generator at z = 0, without noise.

        z = 0 is the mode of the latent prior; the consistency term trains the generator to
        give nearly the same answer for any small perturbation, so this is its typical output.
        """
        landmarks = self._validate_landmarks(landmarks)
        return super().predict(landmarks, batch_size=batch_size, verbose=verbose, **kwargs)

    def generate(self, landmarks, seed: int | None = None) -> np.ndarray:
        """One conditional sample per cell (numpy): the generator at a random latent vector; a
        fixed ``seed`` repeats the samples."""
        landmarks = self._validate_landmarks(landmarks)
        latent = self.random_latent_vectors(len(landmarks), seed)
        return ops.convert_to_numpy(self.generator([ops.convert_to_tensor(landmarks), latent]))


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
