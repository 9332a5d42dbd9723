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

``decoder="linear"`` gives LDVAE (Svensson et al., "Interpretable factor models of single-cell
RNA-seq via variational autoencoders", Bioinformatics 2020): the decoder is one linear map of z
(then the softmax), so each latent factor has one loading per gene (:meth:`VAE.loadings`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, likelihoods, networks

LIKELIHOODS = ("bernoulli", "gaussian", "poisson", "nb", "zinb")
COUNT_LIKELIHOODS = ("poisson", "nb", "zinb")
NETWORKS = ("dense", "conv")
DECODERS = ("deep", "linear")
# Measured by benchmarks/vae.py on the bundled PBMC cells: one hidden layer of 128 gives count
# models a better latent space (kNN cell-type accuracy) than (256, 128), which loses to PCA.
DEFAULT_HIDDEN_UNITS = (256, 128)
COUNT_HIDDEN_UNITS = (128,)
# A floor on the Gaussian variance: without it, features that never change (image borders,
# genes that are always zero) drive their variance to zero and the likelihood to infinity.
MIN_LOG_VARIANCE = -4.6
PREDICT_BATCH_SIZE = 512


def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) in closed form, summed over latent dimensions."""
    z_mean = ops.cast(z_mean, "float32")
    z_log_var = ops.cast(z_log_var, "float32")
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)


def _in_batches(function, arrays, batch_size: int = PREDICT_BATCH_SIZE):
    """Apply ``function`` to slices of ``arrays`` and concatenate the (tuple of) numpy results."""
    results = []
    for start in range(0, len(arrays[0]), batch_size):
        batch = [ops.convert_to_tensor(array[start : start + batch_size]) for array in arrays]
        output = function(*batch)
        results.append(tuple(ops.convert_to_numpy(o) for o in keras.tree.flatten(output)))
    columns = tuple(np.concatenate(column) for column in zip(*results))
    return columns if len(columns) > 1 else columns[0]


@keras.saving.register_keras_serializable(package="course")
class VAE(keras.Model):
    """A variational autoencoder (see the module docstring for the objective), or with
    ``decoder="linear"`` an LDVAE (Svensson et al., Bioinformatics 2020).

    Args:
        input_shape: shape of one example, e.g. (28, 28, 1) for MNIST or (n_genes,) for counts.
        latent_dim: size of z.
        hidden_units: widths of the encoder's Dense layers, after its convolutions when
            network='conv' (the deep decoder mirrors them). Default: (128,) for count
            likelihoods (it beats PCA on PBMC, see benchmarks/vae.py), else (256, 128).
        likelihood: "bernoulli" (images in [0, 1]), "gaussian" (real values, e.g. log-normalized
            expression), or for raw counts "poisson", "nb" or "zinb".
        beta: weight of the KL term (1 is the true ELBO; :class:`KLWarmup` ramps it up).
        network: "dense", or "conv" for images.
        decoder: "deep" (mirrors the encoder) or "linear" (LDVAE: one linear layer from z,
            whose weights are the gene loadings of each factor; dense networks only).
        batch_norm: batch normalization in the hidden layers of encoder and decoder.
        seed: seed of the reparameterization noise.

    There is no dropout: Keras draws the same dropout mask on every replica under
    MirroredStrategy, so a distributed step would differ from the single-device one.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        latent_dim: int = 2,
        hidden_units: tuple[int, ...] | None = None,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        network: str = "dense",
        decoder: str = "deep",
        batch_norm: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(size) for size in input_shape)
        self.latent_dim = int(latent_dim)
        if hidden_units is None:
            hidden_units = COUNT_HIDDEN_UNITS if likelihood in COUNT_LIKELIHOODS else (
                DEFAULT_HIDDEN_UNITS)
        self.hidden_units = tuple(int(units) for units in hidden_units)
        self.likelihood = likelihood
        self.network = network
        self.decoder_kind = decoder
        self._check_arguments()
        self.batch_norm = bool(batch_norm)
        self.seed = seed
        self.target_beta = float(beta)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.encoder = self._build_encoder()
        self.decoder = self._build_decoder()
        self._add_weights(beta)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        # The sub-models are built from keras.Input, so the wrapper is built too: fit() need
        # not trace call() to build it, and saving keeps the optimizer state.
        self.built = True

    def _add_weights(self, beta: float) -> None:
        """The variables outside the sub-models: beta, and the likelihood's own parameters."""
        # A variable, not a float: KLWarmup changes it during training, and it is saved.
        self.beta = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(beta), trainable=False, name="beta"
        )
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
            # The library size that decode() and sample() use by default; fit() sets it to the
            # median total count of the training cells.
            self.library_size = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(1e4), trainable=False,
                name="library_size",
            )

    def get_config(self) -> dict:
        # Written out: the automatic config of Model subclasses in Keras 3.15 records the
        # constructor's default values, not the ones passed (Model.__new__ drops them).
        return {
            **super().get_config(),
            "input_shape": self.data_shape,
            "latent_dim": self.latent_dim,
            "hidden_units": self.hidden_units,
            "likelihood": self.likelihood,
            "beta": self.target_beta,
            "network": self.network,
            "decoder": self.decoder_kind,
            "batch_norm": self.batch_norm,
            "seed": self.seed,
        }

    @property
    def is_count_model(self) -> bool:
        return self.likelihood in COUNT_LIKELIHOODS

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    # Networks ----------------------------------------------------------------------------------

    def _check_arguments(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(
                f"Unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}."
            )
        if self.network not in NETWORKS:
            raise ValueError(f"Unknown network {self.network!r}; choose 'dense' or 'conv'.")
        if self.decoder_kind not in DECODERS:
            raise ValueError(f"Unknown decoder {self.decoder_kind!r}; choose 'deep' or 'linear'.")
        if self.decoder_kind == "linear" and self.network == "conv":
            raise ValueError("decoder='linear' (LDVAE) needs network='dense'.")
        if self.network == "conv" and len(self.data_shape) != 3:
            raise ValueError(
                f"network='conv' needs images of shape (height, width, channels), got "
                f"input_shape={self.data_shape}; use network='dense'."
            )
        if self.is_count_model and len(self.data_shape) != 1:
            raise ValueError(
                f"Count likelihoods need input_shape=(n_genes,), got {self.data_shape}."
            )
        if self.latent_dim < 1 or not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError("latent_dim and every entry of hidden_units must be at least 1.")

    def _condition_inputs(self) -> list:
        """Extra inputs of encoder and decoder (none here; the ConditionalVAE adds a label)."""
        return []

    def _join(self, tensor, conditions, name):
        return layers.Concatenate(name=name)([tensor, *conditions]) if conditions else tensor

    def _build_encoder(self) -> keras.Model:
        data = keras.Input(self.data_shape, name="data")
        conditions = self._condition_inputs()
        if self.network == "conv":
            hidden = networks.conv_downsample(data)
        else:
            hidden = layers.Flatten(name="flatten")(data) if len(self.data_shape) > 1 else data
        hidden = self._join(hidden, conditions, "encoder_condition")
        hidden = networks.dense_stack(
            hidden,
            self.hidden_units,
            batch_norm=self.batch_norm,
            name="encoder",
        )
        z_mean = networks.output_layer(hidden, (self.latent_dim,), name="z_mean")
        z_log_var = networks.output_layer(hidden, (self.latent_dim,), name="z_log_var")
        return keras.Model([data, *conditions], [z_mean, z_log_var], name="encoder")

    def _build_decoder(self) -> keras.Model:
        z = keras.Input((self.latent_dim,), name="z")
        conditions = self._condition_inputs()
        hidden = self._join(z, conditions, "decoder_condition")
        if self.decoder_kind == "deep":
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
        return keras.Model([z, *conditions], outputs, name="decoder")

    def loadings(self) -> np.ndarray:
        """The gene loadings of an LDVAE: its decoder weights, shape (n_genes, latent_dim).

        Column k says how factor z[k] moves the (pre-softmax, log-scale) expression of each gene.
        """
        if self.decoder_kind != "linear":
            raise ValueError("loadings() needs a linear decoder: build VAE(decoder='linear').")
        layer = self.decoder.get_layer("scale" if self.is_count_model else "output")
        kernel = ops.convert_to_numpy(layer.kernel)[: self.latent_dim]
        return kernel.reshape(self.latent_dim, -1).T.copy()

    # The model: encode, sample, decode, and the per-example loss terms --------------------------

    def _encoder_input(self, x):
        # Counts span orders of magnitude; the encoder sees log1p(counts), as in scVI.
        return ops.log1p(x) if self.is_count_model else x

    def _encode(self, x, condition=None, training=False):
        return self.encoder([self._encoder_input(x)], training=training)

    def _decode(self, z, condition=None, training=False):
        return self.decoder([z], training=training)

    def log_likelihood(self, x, z, condition=None, training=False):
        """log p(x|z) of each example, summed over its features."""
        outputs = self._decode(z, condition, training)
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

    def reparameterize(self, z_mean, z_log_var):
        """A sample z = z_mean + exp(z_log_var / 2) * epsilon, epsilon ~ N(0, I).

        z is a differentiable function of the encoder outputs; the randomness enters only
        through epsilon (drawn differently on every replica).
        """
        epsilon = distribute.normal(ops.shape(z_mean), self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def loss_terms(self, x, condition=None, training=False):
        """Per-example ``(reconstruction_loss, kl_loss)`` with one sample z ~ q(z|x)."""
        z_mean, z_log_var = self._encode(x, condition, training)
        z = self.reparameterize(z_mean, z_log_var)
        return -self.log_likelihood(x, z, condition, training), kl_divergence(z_mean, z_log_var)

    # Training ----------------------------------------------------------------------------------

    def _unpack(self, data):
        """The data (and condition) of a batch as fed by fit/evaluate."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return x, None

    def train_step(self, data):
        x, condition = self._unpack(data)
        with tf.GradientTape() as tape:
            # The encoder gives the approximate posterior q(z|x) = N(z_mean, exp(z_log_var)).
            z_mean, z_log_var = self._encode(x, condition, training=True)
            # Reparameterization trick: a sample of q(z|x) through which gradients flow.
            z = self.reparameterize(z_mean, z_log_var)
            # -log p(x|z) summed over features, and KL(q(z|x) || N(0, I)) over latent dims.
            reconstruction_loss = -self.log_likelihood(x, z, condition, training=True)
            kl_loss = kl_divergence(z_mean, z_log_var)
            # Average the per-example negative ELBO over the (local) batch.
            loss = ops.mean(reconstruction_loss + self.beta * kl_loss)
            # Divide by the number of replicas (their gradients are summed) and apply the
            # mixed-precision loss scale: inside the tape, so the gradients see it.
            scaled_loss = distribute.scale_loss(loss, self.optimizer)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(loss, reconstruction_loss, kl_loss)

    def test_step(self, data):
        x, condition = self._unpack(data)
        reconstruction_loss, kl_loss = self.loss_terms(x, condition, training=False)
        loss = ops.mean(reconstruction_loss + self.beta * kl_loss)
        return self._update_trackers(loss, reconstruction_loss, kl_loss)

    def _update_trackers(self, loss, reconstruction_loss, kl_loss):
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.kl_loss_tracker.update_state(ops.mean(kl_loss))
        return {metric.name: metric.result() for metric in self.metrics}

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` after checking the data (for count likelihoods: raw counts).

        A count model also records the median library size of the training cells (of the
        first batch, when ``x`` is a ``tf.data.Dataset``) as the default of :meth:`decode`.
        """
        if isinstance(x, tf.data.Dataset):
            sample = [None if a is None else np.asarray(a) for a in self._unpack(next(iter(x)))]
        else:
            sample = self._unpack((x, y) if y is not None else (x,))
        counts, _ = self.check_inputs(*sample)
        if self.is_count_model:
            self.library_size.assign(float(np.median(counts.sum(axis=-1))))
        return super().fit(x, y, **kwargs)

    def call(self, x, training=False):
        """The reconstruction of ``x``: the likelihood mean, decoded from the posterior mean."""
        return self._reconstruction(x, None, training)

    # Using a trained model ---------------------------------------------------------------------

    def _reconstruction(self, x, condition=None, training=False):
        z_mean, _ = self._encode(x, condition, training)
        outputs = self._decode(z_mean, condition, training)
        return self._likelihood_mean(outputs, self._library(x))

    def _library(self, x):
        """Each cell's total count (its library size), or None for non-count likelihoods."""
        if not self.is_count_model:
            return None
        return ops.sum(ops.cast(x, "float32"), axis=-1, keepdims=True)

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

    def check_inputs(self, x, condition=None):
        """Return ``x`` as a float32 array (and the condition), or raise a ValueError that
        says what is wrong with it (shape; for count likelihoods, not raw counts)."""
        x = np.asarray(x)
        if tuple(x.shape) == self.data_shape:
            raise ValueError(
                f"Got one example of shape {x.shape} without the batch axis; the model expects "
                f"a batch of shape (n, {', '.join(map(str, self.data_shape))}). Pass x[None] "
                "for one example, or slice the batch: x[:1] instead of x[0]."
            )
        if x.ndim != len(self.data_shape) + 1 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"Expected data of shape (n, {', '.join(map(str, self.data_shape))}), got "
                f"{x.shape}. Reshape the data, or build the model with input_shape={x.shape[1:]}."
            )
        if self.is_count_model:
            likelihoods.validate_counts(x)
        elif len(x) == 0 or not np.all(np.isfinite(x)):
            raise ValueError("x is empty or contains NaN/infinite values; clean the data first.")
        return x.astype(np.float32), condition

    def encode(self, x, return_distribution: bool = False):
        """The posterior mean of z for each example of ``x`` (numpy).

        Returns:
            ``z_mean``, or ``(z_mean, z_log_var)`` when ``return_distribution`` is True.
        """
        return self._encode_arrays(x, None, return_distribution)

    def decode(self, z, library_size=None):
        """The likelihood mean of p(x|z) (numpy): pixel probabilities, Gaussian means, or
        expected counts for cells of ``library_size`` total counts (default: the median of the
        training cells)."""
        return self._decode_arrays(z, None, library_size)

    def sample(self, n: int, library_size=None):
        """Decode ``n`` draws z ~ N(0, I): new examples, as likelihood means (numpy)."""
        return self._decode_arrays(self._prior_sample(n), None, library_size)

    def reconstruct(self, x):
        """Encode ``x`` to its posterior mean and decode it again (numpy)."""
        return self._reconstruct_arrays(x, None)

    def _encode_arrays(self, x, condition, return_distribution):
        arrays = [array for array in self.check_inputs(x, condition) if array is not None]
        z_mean, z_log_var = _in_batches(lambda *batch: self._encode(*batch), arrays)
        return (z_mean, z_log_var) if return_distribution else z_mean

    def _decode_arrays(self, z, condition, library_size):
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}.")
        if library_size is None:
            library_size = ops.convert_to_numpy(self.library_size) if self.is_count_model else 1
        library = np.broadcast_to(np.asarray(library_size, np.float32).reshape(-1, 1), (len(z), 1))
        arrays = [z, np.ascontiguousarray(library)]
        if condition is not None:
            arrays.append(self._check_labels(condition, len(z)))

        def decode_batch(z, library, *condition):
            return self._likelihood_mean(self._decode(z, *condition), library)

        return _in_batches(decode_batch, arrays)

    def _reconstruct_arrays(self, x, condition):
        arrays = [array for array in self.check_inputs(x, condition) if array is not None]
        return _in_batches(lambda *batch: self._reconstruction(*batch), arrays)

    def _prior_sample(self, n: int) -> np.ndarray:
        if int(n) < 1:
            raise ValueError(f"n must be a positive number of samples, got {n}.")
        noise = distribute.normal((int(n), self.latent_dim), self.seed_generator)
        return ops.convert_to_numpy(noise)


@keras.saving.register_keras_serializable(package="course")
class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder also see a one-hot label: q(z|x, y) and p(x|z, y).

    Fit it on ``(x, labels)``; then ``sample(n, labels)`` generates examples of chosen classes
    (a digit, a cell type) and ``decode(z, labels)`` shows one latent code under other labels.

    Args:
        num_classes: number of labels (integers 0 .. num_classes - 1).
        Other arguments: as :class:`VAE`.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, **kwargs):
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        super().__init__(input_shape, **kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}

    def _condition_inputs(self) -> list:
        return [keras.Input((self.num_classes,), name="label")]

    def _encode(self, x, condition=None, training=False):
        one_hot = ops.one_hot(ops.cast(condition, "int32"), self.num_classes)
        data = ops.convert_to_tensor(self._encoder_input(x))
        return self.encoder([data, one_hot], training=training)

    def _decode(self, z, condition=None, training=False):
        one_hot = ops.one_hot(ops.cast(condition, "int32"), self.num_classes)
        return self.decoder([ops.convert_to_tensor(z), one_hot], training=training)

    def _unpack(self, data):
        x, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None and isinstance(x, (tuple, list)) and len(x) == 2:
            x, labels = x  # fit((x, labels)) with numpy arrays arrives as ((x, labels),).
        if labels is None:
            raise ValueError("A ConditionalVAE is fit on (x, labels); the labels are missing.")
        return x, labels

    def call(self, inputs, training=False):
        """The reconstruction of ``x`` given ``inputs = (x, labels)``."""
        x, labels = inputs
        return self._reconstruction(x, labels, training)

    def _check_labels(self, labels, n: int) -> np.ndarray:
        if labels is None:
            raise ValueError("A ConditionalVAE needs labels: one integer per example.")
        labels = np.broadcast_to(np.asarray(labels), (n,)) if np.ndim(labels) == 0 else labels
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be {n} integers (one per example), got {labels!r:.80}.")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"labels must lie in 0 .. {self.num_classes - 1}, got {labels.min()} .. "
                f"{labels.max()}."
            )
        return np.ascontiguousarray(labels.astype(np.int32))

    def check_inputs(self, x, condition=None):
        x, _ = super().check_inputs(x)
        return x, self._check_labels(condition, len(x))

    def encode(self, x, labels, return_distribution: bool = False):
        """The posterior mean of z given examples and their labels (see :meth:`VAE.encode`)."""
        return self._encode_arrays(x, labels, return_distribution)

    def decode(self, z, labels, library_size=None):
        """The likelihood mean of p(x|z, label) (numpy); ``labels`` may be one int for all."""
        return self._decode_arrays(z, labels, library_size)

    def sample(self, n: int, labels, library_size=None):
        """``n`` new examples of the given label(s) (one int, or one per example)."""
        return self._decode_arrays(self._prior_sample(n), labels, library_size)

    def reconstruct(self, x, labels):
        """Encode ``(x, labels)`` to the posterior mean and decode it with the same labels."""
        return self._reconstruct_arrays(x, labels)
