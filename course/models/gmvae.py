"""The Gaussian-mixture VAE (GMVAE) of scVAE: clusters in the latent space.

Grønbech, Vording, Timshel, Sønderby, Pers & Winther, "scVAE: variational auto-encoders for
single-cell gene expression data", Bioinformatics 36(16), 4415-4422 (2020); code:
github.com/scvae/scvae.

The prior on z is a mixture of K Gaussians with learned means and diagonal variances:

    y ~ Cat(1/K, ..., 1/K),   z | y=k ~ N(m_k, diag(s_k^2)),   x | z ~ NB(library * share(z), theta)

Inference has two parts: q(y|x), a softmax over the K components, and q(z|x, y), a Gaussian
from an encoder that sees x and the one-hot y. The ELBO sums over the components:

    ELBO(x) = sum_k q(k|x) [ E_q(z|x,k) log p(x|z) - KL(q(z|x,k) || p(z|k)) ] - KL(q(y|x) || p(y))

with one reparameterized z per component and both KL terms in closed form (for a uniform p(y),
KL(q(y|x) || p(y)) = log K - H[q(y|x)]). A cell's cluster is argmax_k q(k|x)
(:meth:`GMVAE.cluster`).

The decoder, likelihoods and numpy verbs are the VAE's (``vae.py``, ``vae_arrays.py``); what is
new is the prior, the two-part posterior and the loss.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, networks
from course.models.vae import COUNT_LIKELIHOODS, VAE
from course.models.vae_arrays import in_batches
from course.models.validation import at_least, one_of


def gaussian_kl(mean, log_var, prior_mean, prior_log_var):
    """KL(N(mean, exp(log_var)) || N(prior_mean, exp(prior_log_var))), summed over the last
    axis (diagonal Gaussians)."""
    return 0.5 * ops.sum(prior_log_var - log_var
                         + (ops.exp(log_var) + ops.square(mean - prior_mean))
                         / ops.exp(prior_log_var) - 1.0, axis=-1)


def categorical_kl_to_uniform(logits):
    """KL(Cat(softmax(logits)) || uniform over the K categories) = log K - entropy."""
    log_q = ops.log_softmax(logits, axis=-1)
    return ops.sum(ops.exp(log_q) * log_q, axis=-1) + math.log(logits.shape[-1])


@keras.saving.register_keras_serializable(package="course")
class GMVAE(VAE):
    """The Gaussian-mixture VAE of scVAE (Grønbech et al. 2020) for single-cell counts.

    Fit it on raw counts (or other data its likelihood takes); then :meth:`cluster` gives each
    cell's most probable component and ``encode`` the mean of z under q(y|x) and q(z|x, y).

    Args:
        data_shape: (n_genes,) for counts.
        n_components: K, the number of mixture components (e.g. the number of cell types).
        latent_dim: size of z.
        hidden_units: widths of the shared encoder and of the decoder (default (128,) for counts).
        likelihood: as :class:`VAE` ("nb" by default).
        beta: weight of both KL terms (:class:`course.callbacks.KLWarmup` ramps ``kl_weight``
            up to it, scVAE's warm-up).
        batch_norm, seed: as :class:`VAE`.
    """

    def __init__(self, data_shape: tuple[int, ...], n_components: int, latent_dim: int = 10,
                 hidden_units: tuple[int, ...] | None = None, likelihood: str = "nb",
                 beta: float = 1.0, batch_norm: bool = False, seed: int | None = None, **kwargs):
        at_least("n_components", n_components, 2)
        one_of("likelihood", likelihood, ("gaussian", *COUNT_LIKELIHOODS))
        self.n_components = int(n_components)  # Needed while the VAE builds the networks.
        super().__init__(data_shape, latent_dim=latent_dim, hidden_units=hidden_units,
                         likelihood=likelihood, beta=beta, batch_norm=batch_norm, seed=seed,
                         **kwargs)
        self.kl_z_tracker = keras.metrics.Mean(name="kl_z_loss")
        self.kl_y_tracker = keras.metrics.Mean(name="kl_y_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_loss_tracker, self.kl_z_tracker,
                self.kl_y_tracker]

    # Networks ----------------------------------------------------------------------------------

    def _build_encoder(self) -> keras.Model:
        """x -> logits of q(y|x), and for each one-hot y, q(z|x, y) = N(z_mean, exp(z_log_var))."""
        data = keras.Input(self.data_shape, name="data")
        component = keras.Input((self.n_components,), name="component")
        hidden = networks.dense_stack(data, self.hidden_units, batch_norm=self.batch_norm,
                                      name="encoder")
        component_logits = networks.output_layer(hidden, (self.n_components,),
                                                 name="component_logits")
        hidden_z = layers.Concatenate(name="encoder_component")([hidden, component])
        z_mean = networks.output_layer(hidden_z, (self.latent_dim,), name="z_mean")
        z_log_var = networks.output_layer(hidden_z, (self.latent_dim,), name="z_log_var")
        return keras.Model([data, component], [component_logits, z_mean, z_log_var],
                           name="encoder")

    def _add_weights(self) -> None:
        """The VAE's weights plus the prior's component means and log-variances."""
        super()._add_weights()
        self.prior_means = self.add_weight(
            shape=(self.n_components, self.latent_dim), name="prior_means",
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
        )
        self.prior_log_variances = self.add_weight(
            shape=(self.n_components, self.latent_dim), initializer="zeros",
            name="prior_log_variances",
        )

    # The posterior and the loss terms ----------------------------------------------------------

    def posterior(self, x, training=False):
        """``(component_logits, z_mean, z_log_var)``: q(y|x) of shape (batch, K) and q(z|x, k)
        for every component k, shape (batch, K, latent_dim)."""
        data = self._encoder_input(x)
        batch = ops.shape(data)[0]
        # Encode every cell once per component: rows (cell, k) with the one-hot of k.
        repeated = ops.repeat(data, self.n_components, axis=0)
        components = ops.tile(ops.eye(self.n_components), (batch, 1))
        logits, z_mean, z_log_var = self.encoder([repeated, components], training=training)
        shape = (batch, self.n_components, self.latent_dim)
        # q(y|x) does not depend on y: keep one row per cell.
        component_logits = ops.reshape(logits, (batch, self.n_components, self.n_components))[:, 0]
        return component_logits, ops.reshape(z_mean, shape), ops.reshape(z_log_var, shape)

    def loss_terms(self, x, training=False):
        """Per-example ``(reconstruction_loss, kl_z_loss, kl_y_loss)``: the expectations over
        q(y|x) of -log p(x|z_k) and KL(q(z|x,k) || p(z|k)), and KL(q(y|x) || p(y))."""
        component_logits, z_mean, z_log_var = self.posterior(x, training)
        q_y = ops.softmax(component_logits, axis=-1)
        # One reparameterized z per component, decoded for every cell and component.
        z = self.reparameterize(z_mean, z_log_var)
        repeated_x = ops.repeat(x, self.n_components, axis=0)
        log_likelihood = self.log_likelihood(repeated_x, ops.reshape(z, (-1, self.latent_dim)),
                                             training)
        reconstruction = -ops.reshape(log_likelihood, ops.shape(q_y))
        kl_z = gaussian_kl(z_mean, z_log_var, self.prior_means, self.prior_log_variances)
        return (ops.sum(q_y * reconstruction, axis=-1), ops.sum(q_y * kl_z, axis=-1),
                categorical_kl_to_uniform(component_logits))

    # Training ----------------------------------------------------------------------------------

    def train_step(self, data):
        x = self._inputs(data)
        with tf.GradientTape() as tape:
            reconstruction_loss, kl_z_loss, kl_y_loss = self.loss_terms(x, training=True)
            # The negative ELBO, averaged over the (local) batch; kl_weight warms both KLs up.
            loss = ops.mean(reconstruction_loss + self.kl_weight * (kl_z_loss + kl_y_loss))
            # Divide by the number of replicas (their gradients are summed), inside the tape.
            scaled_loss = distribute.scale_loss(loss, self.optimizer)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(loss, reconstruction_loss, kl_z_loss, kl_y_loss)

    def test_step(self, data):
        reconstruction_loss, kl_z_loss, kl_y_loss = self.loss_terms(self._inputs(data))
        loss = ops.mean(reconstruction_loss + self.kl_weight * (kl_z_loss + kl_y_loss))
        return self._update_trackers(loss, reconstruction_loss, kl_z_loss, kl_y_loss)

    def _update_trackers(self, loss, *terms):
        self.loss_tracker.update_state(loss)
        for tracker, values in zip(self.metrics[1:], terms):
            tracker.update_state(ops.mean(values))
        return {metric.name: metric.result() for metric in self.metrics}

    # Using a trained model ---------------------------------------------------------------------

    def _encode(self, x, training=False):
        """The mean and log-variance of z under the whole posterior q(y|x) q(z|x, y)."""
        component_logits, z_mean, z_log_var = self.posterior(x, training)
        q_y = ops.softmax(component_logits, axis=-1)[..., None]
        mean = ops.sum(q_y * z_mean, axis=1)
        # Law of total variance over the components.
        second_moment = ops.sum(q_y * (ops.exp(z_log_var) + ops.square(z_mean)), axis=1)
        return mean, ops.log(ops.maximum(second_moment - ops.square(mean), 1e-12))

    def cluster_probabilities(self, x) -> np.ndarray:
        """q(y=k|x) of each example (numpy, shape (n, n_components))."""
        def probabilities(x):
            return ops.softmax(self.posterior(x)[0], axis=-1)

        return in_batches(probabilities, [self.checked_data(x)])

    def cluster(self, x) -> np.ndarray:
        """The most probable mixture component of each example: argmax_k q(k|x)."""
        return np.argmax(self.cluster_probabilities(x), axis=1)

    def _prior_sample(self, n: int, seed: int | None) -> np.ndarray:
        """z from the mixture prior: a uniform component, then its Gaussian."""
        at_least("The number of examples n", n)
        seed_generator = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        components = keras.random.randint((int(n),), 0, self.n_components, seed=seed_generator)
        noise = keras.random.normal((int(n), self.latent_dim), seed=seed_generator)
        z = (ops.take(self.prior_means, components, axis=0)
             + ops.exp(0.5 * ops.take(self.prior_log_variances, components, axis=0)) * noise)
        return ops.convert_to_numpy(z)
