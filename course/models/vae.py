"""Variational autoencoders for images and single-cell counts.

A VAE learns an encoder q(z|x) = N(z_mean, exp(z_log_var)) and a decoder p(x|z) by maximizing
the evidence lower bound (ELBO) of each example:

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))
    loss    = reconstruction_loss + beta * kl_loss,   reconstruction_loss = -log p(x|z)

with one reparameterized sample z = z_mean + exp(z_log_var / 2) * epsilon, epsilon ~ N(0, I).

For counts (likelihood "poisson", "nb" or "zinb") we follow scVI: the encoder sees
log1p(counts); the decoder outputs each gene's share of the cell's transcripts (a softmax),
scaled by the cell's observed library size (its total count) to give the mean ``mu``; the NB
inverse dispersion ``theta`` is one trainable value per gene; ZINB adds dropout logits.

``linear_decoder=True`` gives LDVAE (Svensson et al., "Interpretable factor models of single-cell
RNA-seq via variational autoencoders", Bioinformatics 2020): the decoder is one linear map of z
(then the softmax), so each latent factor has one loading per gene (:meth:`VAE.loadings`).

This file holds the math; :mod:`course.models.vae_arrays` holds the numpy side (``encode``,
``decode``, ``generate``, ``reconstruct``) and the checks of the data.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, likelihoods, networks
from course.models.base import Configurable
from course.models.vae_arrays import ConditionalVAEArrays, VAEArrays
from course.models.validation import at_least, one_of, require, split_pair

LIKELIHOODS = ("bernoulli", "gaussian", "poisson", "nb", "zinb")
COUNT_LIKELIHOODS = ("poisson", "nb", "zinb")
# Measured by benchmarks/vae.py on the bundled PBMC cells: one hidden layer of 128 gives count
# models a better latent space (kNN cell-type accuracy) than (256, 128), which loses to PCA.
DEFAULT_HIDDEN_UNITS = (256, 128)
COUNT_HIDDEN_UNITS = (128,)
# A floor on the Gaussian variance: without it, features that never change (image borders,
# genes that are always zero) drive their variance to zero and the likelihood to infinity.
MIN_LOG_VARIANCE = -4.6


def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) in closed form, summed over latent dimensions."""
    z_mean = ops.cast(z_mean, "float32")
    z_log_var = ops.cast(z_log_var, "float32")
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


@keras.saving.register_keras_serializable(package="course")
class VAE(VAEArrays, Configurable, keras.Model):
    """A variational autoencoder (see the module docstring for the objective).

    Args:
        data_shape: shape of one example, e.g. (28, 28, 1) for MNIST or (n_genes,) for counts.
        latent_dim: size of z.
        hidden_units: widths of the encoder's Dense layers (after its convolutions when
            network='conv'; the deep decoder mirrors them). Default: (128,) for count
            likelihoods (it beats PCA on PBMC, see benchmarks/vae.py), else (256, 128).
        likelihood: "bernoulli" (images in [0, 1]), "gaussian" (real values, e.g. log-normalized
            expression), or for raw counts "poisson", "nb" or "zinb".
        beta: weight of the KL term (1 is the true ELBO; :class:`KLWarmup` ramps ``kl_weight``
            up to it).
        network: "dense", or "conv" for images.
        linear_decoder: LDVAE: one linear layer from z, whose weights are the gene loadings of
            each factor (dense networks only).
        batch_norm: batch normalization in the hidden layers of encoder and decoder.
        seed: seed of the reparameterization noise.

    No dropout: Keras draws the same dropout mask on every replica under MirroredStrategy.
    """

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int = 2,
                 hidden_units: tuple[int, ...] | None = None, likelihood: str = "bernoulli",
                 beta: float = 1.0, network: str = "dense", linear_decoder: bool = False,
                 batch_norm: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(size) for size in data_shape)
        one_of("likelihood", likelihood, LIKELIHOODS)
        one_of("network", network, ("dense", "conv"))
        at_least("data_shape", self.data_shape)
        at_least("latent_dim", latent_dim)
        require(not (linear_decoder and network == "conv"),
                "linear_decoder=True (LDVAE) needs network='dense'.")
        require(network == "dense" or len(self.data_shape) == 3,
                f"network='conv' needs images of shape (height, width, channels), got "
                f"data_shape={self.data_shape}; use network='dense'.")
        require(likelihood not in COUNT_LIKELIHOODS or len(self.data_shape) == 1,
                f"Count likelihoods need data_shape=(n_genes,), got {self.data_shape}.")
        if hidden_units is None:
            hidden_units = COUNT_HIDDEN_UNITS if likelihood in COUNT_LIKELIHOODS else (
                DEFAULT_HIDDEN_UNITS)
        at_least("hidden_units", hidden_units)
        self.latent_dim, self.hidden_units = int(latent_dim), tuple(map(int, hidden_units))
        self.likelihood, self.beta, self.network = likelihood, float(beta), network
        self.linear_decoder, self.batch_norm = bool(linear_decoder), bool(batch_norm)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.encoder = self._build_encoder()
        self.decoder = self._build_decoder()
        self._add_weights()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        # The sub-models are built from keras.Input, so the wrapper is built too: fit() need
        # not trace call() to build it, and saving keeps the optimizer state.
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    # Networks and weights ----------------------------------------------------------------------

    def _condition_inputs(self) -> list:
        """Extra inputs of encoder and decoder (none here; the ConditionalVAE adds a label)."""
        return []

    def _build_encoder(self) -> keras.Model:
        data = keras.Input(self.data_shape, name="data")
        conditions = self._condition_inputs()
        if self.network == "conv":
            hidden = networks.conv_downsample(data)
        else:
            hidden = layers.Flatten(name="flatten")(data) if len(self.data_shape) > 1 else data
        if conditions:
            hidden = layers.Concatenate(name="encoder_condition")([hidden, *conditions])
        hidden = networks.dense_stack(hidden, self.hidden_units, batch_norm=self.batch_norm,
                                      name="encoder")
        z_mean = networks.output_layer(hidden, (self.latent_dim,), name="z_mean")
        z_log_var = networks.output_layer(hidden, (self.latent_dim,), name="z_log_var")
        inputs = [data, *conditions] if conditions else data
        return keras.Model(inputs, [z_mean, z_log_var], name="encoder")

    def _build_decoder(self) -> keras.Model:
        z = keras.Input((self.latent_dim,), name="z")
        conditions = self._condition_inputs()
        hidden = layers.Concatenate(name="decoder_condition")([z, *conditions]) if (
            conditions) else z
        if not self.linear_decoder:
            hidden = networks.dense_stack(
                hidden, self.hidden_units[::-1], batch_norm=self.batch_norm, name="decoder"
            )
        if self.network == "conv":
            outputs = networks.conv_upsample(hidden, self.data_shape)
        elif self.is_count_model:
            # Each gene's share of the cell's transcripts; the likelihood scales it by the
            # library size.
            outputs = networks.output_layer(hidden, self.data_shape, "softmax", name="scale")
            if self.likelihood == "zinb":
                dropout_logits = networks.output_layer(hidden, self.data_shape, name="dropout")
                outputs = [outputs, dropout_logits]
        else:
            # Bernoulli logits or Gaussian means.
            outputs = networks.output_layer(hidden, self.data_shape, name="output")
        return keras.Model([z, *conditions] if conditions else z, outputs, name="decoder")

    def _add_weights(self) -> None:
        """The variables outside the sub-models: the KL weight, the likelihood's parameters."""
        # A variable, not a float: KLWarmup raises it to beta during training, and it is saved.
        # (Files saved when it was named "beta" load alike: Keras restores weights by position.)
        self.kl_weight = self.add_weight(shape=(), initializer=keras.initializers.Constant(
            self.beta), trainable=False, name="kl_weight")
        if self.likelihood in ("nb", "zinb"):
            # Gene-wise inverse dispersion, log-scale so theta = exp(log_theta) stays positive.
            self.log_theta = self.add_weight(
                shape=self.data_shape, initializer="zeros", name="log_theta"
            )
        if self.likelihood == "gaussian":
            self.log_variance = self.add_weight(
                shape=self.data_shape, initializer="zeros", name="log_variance"
            )
        if self.is_count_model:
            # The library size that decode() and generate() use by default; fit() sets it to
            # the median total count of the training cells.
            self.library_size = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(1e4), trainable=False,
                name="library_size",
            )

    # The model: encode, sample z, decode, and the per-example loss terms -----------------------

    def _encode(self, x, training=False):
        """The posterior q(z|x) = N(z_mean, exp(z_log_var)): ``(z_mean, z_log_var)``."""
        return self.encoder(self._encoder_input(x), training=training)

    def reparameterize(self, z_mean, z_log_var):
        """A sample z = z_mean + exp(z_log_var / 2) * epsilon, epsilon ~ N(0, I).

        z is a differentiable function of the encoder outputs; the randomness enters only
        through epsilon (drawn differently on every replica).
        """
        epsilon = distribute.normal(ops.shape(z_mean), self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def log_likelihood(self, x, z, training=False):
        """log p(x|z) of each example, summed over its features."""
        return self._log_prob(x, self.decoder(z, training=training))

    def loss_terms(self, x, training=False):
        """Per-example ``(reconstruction_loss, kl_loss)`` with one sample z ~ q(z|x)."""
        # The encoder gives the approximate posterior; the reparameterization trick samples
        # it so that gradients flow back into the encoder.
        z_mean, z_log_var = self._encode(x, training)
        z = self.reparameterize(z_mean, z_log_var)
        # -log p(x|z) summed over features, and KL(q(z|x) || N(0, I)) over latent dims.
        return -self.log_likelihood(x, z, training), kl_divergence(z_mean, z_log_var)

    # The likelihood ----------------------------------------------------------------------------

    @property
    def is_count_model(self) -> bool:
        return self.likelihood in COUNT_LIKELIHOODS

    def _encoder_input(self, x):
        # Counts span orders of magnitude; the encoder sees log1p(counts), as in scVI.
        return ops.log1p(x) if self.is_count_model else x

    def _library(self, x):
        """Each cell's total count (its library size), or None for non-count likelihoods."""
        if not self.is_count_model:
            return None
        return ops.sum(ops.cast(x, "float32"), axis=-1, keepdims=True)

    def _log_prob(self, x, outputs):
        """log p(x|z) of each example, summed over its features, from the decoder outputs."""
        if self.likelihood == "bernoulli":
            values = likelihoods.bernoulli(x, outputs)
        elif self.likelihood == "gaussian":
            log_variance = ops.maximum(self.log_variance, MIN_LOG_VARIANCE)
            values = likelihoods.gaussian(x, outputs, log_variance)
        else:
            # The observed library size of each cell scales the decoded gene shares.
            values = self._count_log_likelihood(x, outputs, self._library(x))
        return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)

    def _count_log_likelihood(self, x, outputs, library):
        scale = outputs[0] if self.likelihood == "zinb" else outputs
        mu = library * scale
        if self.likelihood == "poisson":
            return likelihoods.poisson(x, mu)
        theta = ops.exp(self.log_theta)
        if self.likelihood == "nb":
            return likelihoods.negative_binomial(x, mu, theta)
        return likelihoods.zero_inflated_negative_binomial(x, mu, theta, outputs[1])

    # Training ----------------------------------------------------------------------------------

    def train_step(self, data):
        # The batch after its checks (validate_batch); for a ConditionalVAE, the pair (x, labels).
        x = self._inputs(data)
        with tf.GradientTape() as tape:
            reconstruction_loss, kl_loss = self.loss_terms(x, training=True)
            # Average the per-example negative ELBO over the (local) batch.
            loss = ops.mean(reconstruction_loss + self.kl_weight * kl_loss)
            # Divide by the number of replicas (their gradients are summed) and apply the
            # mixed-precision loss scale: inside the tape, so the gradients see it.
            scaled_loss = distribute.scale_loss(loss, self.optimizer)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(loss, reconstruction_loss, kl_loss)

    def test_step(self, data):
        reconstruction_loss, kl_loss = self.loss_terms(self._inputs(data), training=False)
        loss = ops.mean(reconstruction_loss + self.kl_weight * kl_loss)
        return self._update_trackers(loss, reconstruction_loss, kl_loss)

    def _update_trackers(self, loss, reconstruction_loss, kl_loss):
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.kl_loss_tracker.update_state(ops.mean(kl_loss))
        return {metric.name: metric.result() for metric in self.metrics}

    def _inputs(self, data):
        """The examples of a batch as fed to fit/evaluate/predict (:meth:`validate_batch`)."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.validate_batch(x)

    # Using the model ---------------------------------------------------------------------------

    def call(self, x, training=False):
        """The reconstruction of ``x``: the likelihood mean, decoded from the posterior mean."""
        return self._reconstruction(self._inputs(x), training)

    def _reconstruction(self, x, training=False):
        z_mean, _ = self._encode(x, training)
        return self._likelihood_mean(self.decoder(z_mean, training=training), self._library(x))

    def _likelihood_mean(self, outputs, library):
        """The mean of p(x|z) from the decoder outputs (library: counts per cell, or None)."""
        if self.likelihood == "bernoulli":
            return ops.sigmoid(outputs)
        if self.likelihood == "gaussian":
            return outputs
        if self.likelihood == "zinb":
            scale, dropout_logits = outputs
            return library * scale * ops.sigmoid(-dropout_logits)
        return library * outputs
    def loadings(self) -> np.ndarray:
        """The gene loadings of an LDVAE: its decoder weights, shape (n_genes, latent_dim).

        Column k says how factor z[k] moves the (pre-softmax, log-scale) expression of each gene.
        """
        require(self.linear_decoder,
                "loadings() needs a linear decoder: build VAE(linear_decoder=True).")
        layer = self.decoder.get_layer("scale" if self.is_count_model else "output")
        kernel = ops.convert_to_numpy(layer.kernel)[: self.latent_dim]
        return kernel.reshape(self.latent_dim, -1).T.copy()


@keras.saving.register_keras_serializable(package="course")
class ConditionalVAE(ConditionalVAEArrays, VAE):
    """A VAE whose encoder and decoder also see a one-hot label: q(z|x, y) and p(x|z, y).

    Its inputs are pairs ``(x, labels)`` wherever the VAE takes ``x`` (``call``,
    ``loss_terms``, ``log_likelihood``), so the VAE's training step serves it unchanged. Fit it
    on ``(x, labels)``; then ``generate(labels)`` draws examples of chosen classes (a digit, a
    cell type) and ``decode(z, labels)`` shows one latent code under other labels.

    Args:
        num_classes: number of labels (integers 0 .. num_classes - 1).
        Other arguments: as :class:`VAE`.
    """

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, **kwargs):
        at_least("num_classes", num_classes, 2)
        self.num_classes = int(num_classes)  # Needed while the VAE builds the networks.
        super().__init__(data_shape, **kwargs)

    def _condition_inputs(self) -> list:
        return [keras.Input((self.num_classes,), name="label")]

    def _inputs(self, data):
        x, labels = split_pair(data, "A ConditionalVAE is fit on (x, labels); the labels are "
                                     "missing.")
        return self.validate_batch(x), labels

    def _one_hot(self, labels):
        labels = self.validate_label_batch(labels)
        return ops.one_hot(ops.cast(labels, "int32"), self.num_classes)

    def _encode(self, inputs, training=False):
        x, labels = inputs
        data = ops.convert_to_tensor(self._encoder_input(x))
        return self.encoder([data, self._one_hot(labels)], training=training)

    def _decode(self, z, labels, training=False):
        return self.decoder([ops.convert_to_tensor(z), self._one_hot(labels)], training=training)

    def log_likelihood(self, inputs, z, training=False):
        """log p(x|z, label) of each pair ``inputs = (x, labels)``, summed over features."""
        x, labels = inputs
        return self._log_prob(x, self._decode(z, labels, training))

    def _reconstruction(self, inputs, training=False):
        z_mean, _ = self._encode(inputs, training)
        x, labels = inputs
        return self._likelihood_mean(self._decode(z_mean, labels, training), self._library(x))
