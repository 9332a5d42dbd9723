"""Wasserstein GAN with gradient penalty (WGAN-GP), the base of scGAN and DNA-GAN.

A critic D (the discriminator, with an unbounded score instead of a probability) estimates the
Wasserstein-1 distance between real and generated data; the generator G shrinks it. Gulrajani et
al. (2017, "Improved training of Wasserstein GANs") keep D 1-Lipschitz with a gradient penalty:

    critic loss    = mean D(G(z)) - mean D(x) + gp_weight * mean (|grad D(x_hat)| - 1)^2
    generator loss = -mean D(G(z))

where x_hat = eps * x + (1 - eps) * G(z), eps ~ U(0, 1) per example, and the critic takes
``n_critic`` steps for every generator step. Subclasses build the two networks for their data:
:class:`~course.models.scgan.ScGAN` (single-cell counts) and
:class:`~course.models.dnagan.DNAGAN` (one-hot DNA).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from course import distribute
from course.models.adversarial import AdversarialModel
from course.models.validation import at_least, require


def wgan_optimizer() -> keras.optimizers.Optimizer:
    """Adam(1e-4, beta_1=0.5, beta_2=0.9): the WGAN-GP paper's setting, also scGAN's."""
    return keras.optimizers.Adam(learning_rate=1e-4, beta_1=0.5, beta_2=0.9)


def uniform(shape, seed_generator) -> tf.Tensor:
    """U(0, 1) noise that differs between replicas: the normal CDF of per-replica normal noise
    (a uniform variable by the probability integral transform)."""
    return 0.5 * (1.0 + ops.erf(distribute.normal(shape, seed_generator) / np.sqrt(2.0)))


def critic_loss(real_scores, fake_scores):
    """Mean critic score of generated minus real examples (minus the Wasserstein estimate)."""
    real_scores, fake_scores = ops.cast(real_scores, "float32"), ops.cast(fake_scores, "float32")
    return ops.mean(fake_scores) - ops.mean(real_scores)


class WassersteinGAN(AdversarialModel):
    """Base of the WGAN-GP models: the critic and generator steps, the gradient penalty.

    Subclasses set ``self.data_shape`` and ``self.latent_dim`` and the sizes of their networks,
    then call this constructor, which builds ``self.generator`` and ``self.discriminator`` (the
    critic: one unbounded float32 score per example, no dropout and no batch normalization,
    since the penalty needs per-example gradients) with their ``_build_generator`` and
    ``_build_critic``. Conditional subclasses override the hooks ``_unpack``, ``_generate`` and
    ``_discriminate``.

    Args:
        n_critic: critic steps per generator step.
        gp_weight: weight lambda of the gradient penalty.
        seed: seed of the model's random number generator.
    """

    def __init__(self, n_critic: int = 5, gp_weight: float = 10.0, seed: int = 1337, **kwargs):
        super().__init__(**kwargs)
        at_least("n_critic", n_critic)
        require(gp_weight >= 0, f"gp_weight must be non-negative, got {gp_weight}.")
        self.n_critic, self.gp_weight, self.seed = int(n_critic), float(gp_weight), seed
        self.generator = self._build_generator()
        self.discriminator = self._build_critic()
        self._finish_init(seed, ("d_loss", "g_loss", "gradient_penalty"))

    def default_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        """Both players default to Adam(1e-4, beta_1=0.5, beta_2=0.9)."""
        return wgan_optimizer()

    def gradient_penalty(self, real_data, generated_data, condition):
        """Mean over examples of (|grad_x D(x_hat)| - 1)^2 at random interpolates x_hat."""
        batch_size = ops.shape(real_data)[0]
        epsilon = uniform((batch_size,) + (1,) * len(self.data_shape), self.seed_generator)
        interpolates = epsilon * real_data + (1.0 - epsilon) * generated_data
        with tf.GradientTape() as tape:
            tape.watch(interpolates)
            # A SUM over the batch: each example's gradient is then exactly its own, whatever
            # the batch size (a mean would shrink it by the local batch size, which is smaller
            # on each replica than on one device). No division by the number of replicas here
            # either: the norm must be the true one, only the final loss is scaled.
            scores = ops.sum(ops.cast(self._discriminate(interpolates, condition, True), "float32"))
        gradients = ops.cast(tape.gradient(scores, interpolates), "float32")
        axes = tuple(range(1, len(self.data_shape) + 1))
        norms = ops.sqrt(ops.sum(ops.square(gradients), axis=axes) + 1e-12)
        return ops.mean(ops.square(norms - 1.0))

    def train_step(self, data):
        real_data, condition = self._unpack(data)
        batch_size = ops.shape(real_data)[0]

        # Train the critic n_critic times on this batch, each time against fresh fakes.
        for _ in range(self.n_critic):
            random_latent_vectors = self.random_latent_vectors(batch_size)
            generated_data = self._generate(random_latent_vectors, condition, training=True)
            with tf.GradientTape() as tape:
                real_scores = self._discriminate(real_data, condition, training=True)
                fake_scores = self._discriminate(generated_data, condition, training=True)
                penalty = self.gradient_penalty(real_data, generated_data, condition)
                d_loss = critic_loss(real_scores, fake_scores) + self.gp_weight * penalty
                scaled_d_loss = distribute.scale_loss(d_loss, self.d_optimizer)
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply(tape.gradient(scaled_d_loss, weights), weights)

        # Train the generator to raise the critic's score of fresh fakes. Note that we should
        # *not* update the weights of the critic here.
        with tf.GradientTape() as tape:
            generated_data = self._generate(self.random_latent_vectors(batch_size), condition,
                                            training=True)
            fake_scores = self._discriminate(generated_data, condition, training=True)
            g_loss = -ops.mean(ops.cast(fake_scores, "float32"))
            scaled_g_loss = distribute.scale_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss, gradient_penalty=penalty)

    def test_step(self, data):
        real_data, condition = self._unpack(data)
        generated_data = self._generate(self.random_latent_vectors(ops.shape(real_data)[0]),
                                        condition)
        real_scores = self._discriminate(real_data, condition)
        fake_scores = self._discriminate(generated_data, condition)
        penalty = self.gradient_penalty(real_data, generated_data, condition)
        d_loss = critic_loss(real_scores, fake_scores) + self.gp_weight * penalty
        g_loss = -ops.mean(ops.cast(fake_scores, "float32"))
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss, gradient_penalty=penalty)

