"""Inferring target genes from landmark genes: a conditional GAN (GGAN-style) and an MLP.

D-GEX (Chen et al. 2016) regresses the expression of target genes on a small panel of
"landmark" genes with an MLP trained by mean squared error. GGAN (Wang et al. 2018) trains the
regressor as the generator of a conditional GAN instead, with three terms:

    generator loss = adversarial_weight * adversarial   (make D accept (landmarks, prediction))
                   + l1_weight * |prediction - truth|   (stay close to the truth, as a median)
                   + consistency_weight * consistency   (two noisy copies -> the same answer)

On zero-inflated single-cell data the L1 term matters most: the best MAE prediction is the
conditional median, which MSE (the conditional mean) misses.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, networks
from course.models.gan import (
    AdversarialModel,
    check_shape,
    discriminator_loss,
    generator_loss,
    split_pair,
)


@keras.saving.register_keras_serializable(package="course")
class LandmarkGAN(AdversarialModel):
    """A conditional GAN whose generator predicts target genes from landmark genes plus noise.

    Args:
        n_landmarks: number of landmark (input) genes.
        n_targets: number of target (output) genes.
        latent_dim: size of the generator's latent noise vector.
        hidden_units: widths of the hidden layers of both networks.
        adversarial_weight: weight of the adversarial term of the generator loss.
        l1_weight: weight (lambda_1) of the mean absolute error to the true targets; None
            uses the number of targets. The error is a mean over genes while the adversarial
            term is one logit per cell, so a small lambda_1 lets the adversarial term win: on
            615 PBMC targets, lambda_1 = 10-100 gave a test MAE of 0.65-0.71, about 600-1000
            gave 0.53.
        consistency_weight: weight (lambda_2) of the mean squared difference between the
            predictions for two noisy copies of the same landmarks.
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
        adversarial_weight: float = 1.0,
        l1_weight: float | None = None,
        consistency_weight: float = 1.0,
        noise_std: float = 0.5,
        label_smoothing: float = 0.0,
        seed: int = 1337,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("n_landmarks", n_landmarks), ("n_targets", n_targets),
                            ("latent_dim", latent_dim)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}.")
        for name, value in (("adversarial_weight", adversarial_weight),
                            ("l1_weight", 0.0 if l1_weight is None else l1_weight),
                            ("consistency_weight", consistency_weight), ("noise_std", noise_std)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}.")
        self.n_landmarks = n_landmarks
        self.n_targets = n_targets
        self.latent_dim = latent_dim
        self.hidden_units = tuple(hidden_units)
        self.adversarial_weight = adversarial_weight
        self.l1_weight = l1_weight
        self.consistency_weight = consistency_weight
        self.noise_std = noise_std
        self.label_smoothing = label_smoothing
        self.seed = seed

        landmarks = keras.Input((n_landmarks,), name="landmarks")
        latent = keras.Input((latent_dim,), name="latent")
        x = layers.Concatenate(name="landmarks_and_latent")([landmarks, latent])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu", name="hidden")
        predicted = networks.output_layer(x, (n_targets,), name="targets")
        self.generator = keras.Model([landmarks, latent], predicted, name="generator")

        landmarks = keras.Input((n_landmarks,), name="landmarks")
        targets = keras.Input((n_targets,), name="targets")
        x = layers.Concatenate(name="landmarks_and_targets")([landmarks, targets])
        x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu")
        logits = layers.Dense(1, dtype="float32", name="logit")(x)
        self.discriminator = keras.Model([landmarks, targets], logits, name="discriminator")

        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [
            keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_loss", "adversarial_loss", "l1_loss", "consistency_loss")
        ]
        self.built = True  # Built from keras.Input: see AdversarialModel.

    def get_config(self) -> dict:
        # Listed by hand: Keras 3.15's automatic config of Model subclasses is unreliable.
        return {
            **super().get_config(),
            "n_landmarks": self.n_landmarks,
            "n_targets": self.n_targets,
            "latent_dim": self.latent_dim,
            "hidden_units": self.hidden_units,
            "adversarial_weight": self.adversarial_weight,
            "l1_weight": self.l1_weight,
            "consistency_weight": self.consistency_weight,
            "noise_std": self.noise_std,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
        }

    @property
    def metrics(self):
        return self.trackers

    def call(self, landmarks, training=False):
        """The deterministic prediction (latent vector z = 0) for a batch of landmarks."""
        if isinstance(landmarks, (tuple, list)):  # fit((landmarks, targets)) feeds the pair.
            landmarks = landmarks[0]
        latent = ops.zeros((ops.shape(landmarks)[0], self.latent_dim), dtype=landmarks.dtype)
        return self.generator([landmarks, latent], training=training)

    def _unpack(self, data, what: str):
        landmarks, targets = split_pair(data)
        landmarks = check_shape(landmarks, (self.n_landmarks,), f"{what}: the landmarks")
        return landmarks, check_shape(targets, (self.n_targets,), f"{what}: the targets")

    def _noisy_prediction(self, landmarks, training):
        """The generator's prediction for perturbed landmarks and a fresh latent vector."""
        batch_size = ops.shape(landmarks)[0]
        noise = distribute.normal((batch_size, self.n_landmarks), self.seed_generator)
        latent = distribute.normal((batch_size, self.latent_dim), self.seed_generator)
        return self.generator([landmarks + self.noise_std * noise, latent], training=training)

    def generator_losses(self, landmarks, targets, training: bool = False) -> dict:
        """The three generator terms and their weighted total, each averaged over the cells."""
        predicted = self._noisy_prediction(landmarks, training)
        other_prediction = self._noisy_prediction(landmarks, training)
        fake_logits = self.discriminator([landmarks, predicted], training=training)
        adversarial_loss = generator_loss(fake_logits)
        l1_loss = ops.mean(ops.abs(ops.cast(predicted - targets, "float32")))
        consistency_loss = ops.mean(ops.square(ops.cast(predicted - other_prediction, "float32")))
        # By default the L1 weight is the number of targets: the mean over genes then pulls
        # as hard as GGAN's L1 norm (a sum over genes), whatever the number of targets.
        l1_weight = self.n_targets if self.l1_weight is None else self.l1_weight
        g_loss = (
            self.adversarial_weight * adversarial_loss
            + l1_weight * l1_loss
            + self.consistency_weight * consistency_loss
        )
        return {"g_loss": g_loss, "adversarial_loss": adversarial_loss, "l1_loss": l1_loss,
                "consistency_loss": consistency_loss}

    def _discriminator_loss(self, landmarks, targets, training: bool = False):
        predicted = self._noisy_prediction(landmarks, training)
        real_logits = self.discriminator([landmarks, targets], training=training)
        fake_logits = self.discriminator([landmarks, predicted], training=training)
        return discriminator_loss(real_logits, fake_logits, self.label_smoothing)

    def train_step(self, data):
        landmarks, targets = self._unpack(data, "The training data")

        # Train the discriminator to tell true (landmarks, targets) pairs from predicted ones.
        with tf.GradientTape() as tape:
            d_loss = self._discriminator_loss(landmarks, targets, training=True)
            scaled_d_loss = distribute.scale_loss(d_loss, self.d_optimizer)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled_d_loss, weights), weights)

        # Train the generator (only its weights) on the adversarial + L1 + consistency loss.
        with tf.GradientTape() as tape:
            losses = self.generator_losses(landmarks, targets, training=True)
            scaled_g_loss = distribute.scale_loss(losses["g_loss"], self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(d_loss=d_loss, **losses)

    def test_step(self, data):
        landmarks, targets = self._unpack(data, "The validation data")
        d_loss = self._discriminator_loss(landmarks, targets)
        return self._update_trackers(d_loss=d_loss, **self.generator_losses(landmarks, targets))

    def predict(self, landmarks, batch_size: int = 256, verbose="auto", **kwargs) -> np.ndarray:
        """Deterministic target prediction (numpy): the generator at z = 0, without noise.

        z = 0 is the mode of the latent prior; the consistency term trains the generator to
        give nearly the same answer for any small perturbation, so this is its typical output.
        """
        landmarks = np.asarray(landmarks, dtype="float32")
        if landmarks.ndim != 2 or landmarks.shape[1] != self.n_landmarks:
            raise ValueError(
                f"landmarks must have shape (n_cells, {self.n_landmarks}), got "
                f"{landmarks.shape}. Pass the standardized landmark genes of the split."
            )
        return super().predict(landmarks, batch_size=batch_size, verbose=verbose, **kwargs)


@keras.saving.register_keras_serializable(package="course")
class MLPRegressor(keras.Model):
    """The D-GEX baseline: an MLP (tanh hidden layers, linear output) from landmarks to targets.

    Train it with the standard ``compile(optimizer, loss="mse")`` and ``fit(landmarks, targets)``.
    """

    def __init__(
        self,
        n_landmarks: int,
        n_targets: int,
        hidden_units: tuple[int, ...] = (512,),
        dropout: float = 0.1,
        activation: str = "tanh",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if n_landmarks < 1 or n_targets < 1:
            raise ValueError(
                f"n_landmarks and n_targets must be positive, got {n_landmarks}, {n_targets}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.n_landmarks = n_landmarks
        self.n_targets = n_targets
        self.hidden_units = tuple(hidden_units)
        self.dropout = dropout
        self.activation = activation
        landmarks = keras.Input((n_landmarks,), name="landmarks")
        x = networks.dense_stack(landmarks, self.hidden_units, activation, dropout=dropout)
        targets = networks.output_layer(x, (n_targets,), name="targets")
        self.network = keras.Model(landmarks, targets, name="mlp")
        self.built = True

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_landmarks": self.n_landmarks,
            "n_targets": self.n_targets,
            "hidden_units": self.hidden_units,
            "dropout": self.dropout,
            "activation": self.activation,
        }

    def call(self, landmarks, training=False):
        return self.network(landmarks, training=training)
