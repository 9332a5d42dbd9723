"""DNA-GAN: a Wasserstein GAN on one-hot DNA, and sequence design by activation maximization.

Killoran, Lee, Delong, Duvenaud & Frey (2017), "Generating and designing DNA with deep
generative models", arXiv:1712.06148. A WGAN-GP (:mod:`course.models.wgan`) whose generator
ends in a softmax over A/C/G/T at every position learns to produce realistic sequences. To
*design* sequences with a property, a differentiable predictor f (here a small motif
classifier) scores the generated sequences, and gradient ascent moves the latent codes:

    z <- z + learning_rate * d f(G(z)) / dz

so designs stay on the generator's manifold of realistic sequences while f rises.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course.models.validation import assert_batch, at_least, input_arrays, validate_one_hot
from course.models.wgan import WassersteinGAN


def motif_classifier(sequence_length: int, filters: int = 16, kernel_size: int = 9):
    """A tiny convolutional classifier of motif vs no motif: one logit per sequence.

    A convolution scans every position like a PWM, global max pooling keeps the best hit.
    """
    return keras.Sequential(
        [
            keras.Input((sequence_length, 4)),
            layers.Conv1D(filters, kernel_size, activation="relu", name="scan"),
            layers.GlobalMaxPooling1D(name="best_hit"),
            layers.Dense(1, name="logit"),
        ],
        name="motif_classifier",
    )


@keras.saving.register_keras_serializable(package="course")
class DNAGAN(WassersteinGAN):
    """DNA-GAN (Killoran et al. 2017): a WGAN-GP on one-hot DNA sequences.

    Train with ``fit(sequences)``, one-hot of shape (n, sequence_length, 4). ``generate(n)``
    returns one-hot sequences (the most probable base per position); ``design(predictor, n)``
    returns sequences that the predictor scores highly.

    Args:
        sequence_length: bases per sequence.
        latent_dim: size of the latent vector z.
        filters: channels of the 1-D convolutions of both networks, one entry per layer.
        kernel_size: width of the convolutions.
        **kwargs: ``n_critic``, ``gp_weight`` and ``seed`` of
            :class:`~course.models.wgan.WassersteinGAN`.
    """

    def __init__(
        self,
        sequence_length: int,
        latent_dim: int = 32,
        filters: tuple[int, ...] = (64, 64),
        kernel_size: int = 5,
        **kwargs,
    ):
        for name, value in (("sequence_length", sequence_length), ("latent_dim", latent_dim),
                            ("kernel_size", kernel_size)):
            at_least(name, value)
        self.sequence_length, self.latent_dim = int(sequence_length), int(latent_dim)
        self.data_shape = (self.sequence_length, 4)
        self.filters, self.kernel_size = tuple(filters), int(kernel_size)
        super().__init__(**kwargs)

    def _build_generator(self) -> keras.Model:
        latent = keras.Input((self.latent_dim,), name="latent")
        x = layers.Dense(self.sequence_length * self.filters[0], name="project")(latent)
        x = layers.Reshape((self.sequence_length, self.filters[0]), name="positions")(x)
        for index, n_filters in enumerate(self.filters):
            x = layers.Conv1D(n_filters, self.kernel_size, padding="same", activation="relu",
                              name=f"conv_{index}")(x)
        x = layers.Conv1D(4, 1, name="base_logits")(x)
        # A softmax over A, C, G, T at each position: a differentiable "soft" one-hot sequence.
        bases = layers.Softmax(axis=-1, dtype="float32", name="base_probabilities")(x)
        return keras.Model(latent, bases, name="generator")

    def _build_critic(self) -> keras.Model:
        sequences = keras.Input(self.data_shape, name="sequences")
        x = sequences
        # No dropout and no batch normalization (see WassersteinGAN).
        for index, n_filters in enumerate(self.filters):
            x = layers.Conv1D(n_filters, self.kernel_size, padding="same",
                              activation="leaky_relu", name=f"conv_{index}")(x)
        x = layers.Flatten(name="flatten")(x)
        score = layers.Dense(1, dtype="float32", name="score")(x)
        return keras.Model(sequences, score, name="critic")

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            validate_one_hot(arrays[0])

    def validate_batch(self, sequences):
        """A batch of sequences after the GAN's checks (shape, no NaN) and a check that every
        position holds non-negative base probabilities that sum to 1 (one-hot DNA)."""
        sequences = super().validate_batch(sequences)
        sums = ops.sum(ops.cast(sequences, "float32"), axis=-1)
        return assert_batch(
            sequences, ops.logical_and(ops.all(ops.greater_equal(sequences, 0), axis=-1),
                                       ops.less(ops.abs(sums - 1.0), 1e-5)),
            "The sequences are not one-hot (or base probabilities): every position needs "
            "non-negative values over A, C, G, T that sum to 1.")

    def generate(self, n: int, seed: int | None = None, one_hot: bool = True) -> np.ndarray:
        """Generate ``n`` sequences: one-hot (most probable base), or the base probabilities."""
        return self._finish(self.generator(self.random_latent_vectors(n, seed)), one_hot)

    @staticmethod
    def _finish(probabilities, one_hot: bool) -> np.ndarray:
        probabilities = ops.convert_to_numpy(probabilities)
        return np.eye(4, dtype="float32")[probabilities.argmax(-1)] if one_hot else probabilities

    def design(self, predictor, n: int, steps: int = 200, learning_rate: float = 0.05,
               seed: int | None = None, one_hot: bool = True) -> np.ndarray:
        """Design ``n`` sequences by activation maximization in the latent space.

        Args:
            predictor: a Keras model (or function) from sequences (n, length, 4) to scores
                (n, 1), e.g. a classifier's logit; the designs maximize it.
            steps, learning_rate: gradient-ascent steps (Adam) on the latent codes.
            seed: seed of the starting latent codes.
        """
        if steps < 1 or learning_rate <= 0:
            raise ValueError("design needs steps >= 1 and a positive learning_rate.")
        latent = tf.Variable(self.random_latent_vectors(n, seed))
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build([latent])

        @tf.function
        def ascend():
            with tf.GradientTape() as tape:
                # Each code moves uphill on its own score (a sum, so no 1/n shrinkage).
                loss = -ops.sum(ops.cast(predictor(self.generator(latent)), "float32"))
            optimizer.apply([tape.gradient(loss, latent)], [latent])

        for _ in range(steps):
            ascend()
        return self._finish(self.generator(latent), one_hot)
