"""DCA: a deep count autoencoder that denoises single-cell counts with a ZINB likelihood.

Eraslan, Simon, Mircea, Mueller & Theis, "Single-cell RNA-seq denoising using a deep count
autoencoder", Nature Communications 10, 390 (2019).

The encoder sees the cell's log1p counts after size-factor normalization, z-scored per gene; a
deterministic bottleneck (no sampling, no KL term) feeds a decoder with three heads per gene,
the parameters of a zero-inflated negative binomial (ZINB):

    mu    = size_factor * exp(offset + mean head)    the denoised expression
    theta = softplus(dispersion head)        inverse dispersion, per cell and gene
    pi    = sigmoid(dropout head)            probability of an extra ("technical") zero
    loss  = -log ZINB(counts; mu, theta, pi), summed over genes, averaged over cells

where ``size_factor`` is the cell's total count over the median total count of the training
cells, and ``offset`` the log of each gene's mean normalized count in the training cells (our
addition: training starts from the library-normalized mean instead of one count per gene, and
needs far fewer epochs). The denoised (imputed) matrix is ``mu``: the ZINB explains the zeros
away as dropout.
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf
from keras import ops

from course import distribute, likelihoods, networks
from course.models.base import CheckedInputs, Configurable, as_matrix, in_batches, row_sums
from course.models.validation import (
    at_least,
    input_arrays,
    raw_count_batch,
    require,
    validated_raw_counts,
)

# DCA clips the mean to [1e-5, 1e6] and the inverse dispersion to [1e-4, 1e4].
LOG_MEAN_RANGE = (float(np.log(1e-5)), float(np.log(1e6)))
THETA_RANGE = (1e-4, 1e4)


@keras.saving.register_keras_serializable(package="course")
class DCA(Configurable, CheckedInputs, keras.Model):
    """Deep count autoencoder (Eraslan et al., Nat Commun 2019); see the module docstring.

    Args:
        n_genes: number of genes (columns of the raw count matrix).
        latent_dim: width of the bottleneck (DCA's default: 32).
        hidden_units: widths of the encoder's hidden layers (the decoder mirrors them;
            DCA's default (64,) gives its 64-32-64 network).
        batch_norm: batch normalization (synchronized over replicas) in the hidden layers.
    """

    def __init__(self, n_genes: int, latent_dim: int = 32, hidden_units: tuple[int, ...] = (64,),
                 batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.n_genes, self.latent_dim = int(n_genes), int(latent_dim)
        self.hidden_units = tuple(int(units) for units in hidden_units)
        for name, size in (("n_genes", n_genes), ("latent_dim", latent_dim)):
            at_least(name, size)
        if self.hidden_units:
            at_least("hidden_units", self.hidden_units)
        self.batch_norm = bool(batch_norm)
        self.encoder, self.decoder = self._build_encoder(), self._build_decoder()
        # Set by fit() from the training cells, saved with the model.
        self.median_library = self._statistic((), 1.0, "median_library")
        self.input_mean = self._statistic((self.n_genes,), 0.0, "input_mean")
        self.input_std = self._statistic((self.n_genes,), 1.0, "input_std")
        self.log_gene_mean = self._statistic((self.n_genes,), 0.0, "log_gene_mean")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    def _statistic(self, shape, value, name):
        return self.add_weight(shape=shape, initializer=keras.initializers.Constant(value),
                               trainable=False, name=name)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _build_encoder(self) -> keras.Model:
        data = keras.Input((self.n_genes,), name="normalized_counts")
        hidden = networks.dense_stack(data, self.hidden_units, batch_norm=self.batch_norm,
                                      name="encoder")
        code = networks.dense_stack(hidden, (self.latent_dim,), batch_norm=self.batch_norm,
                                    name="bottleneck")
        return keras.Model(data, code, name="encoder")

    def _build_decoder(self) -> keras.Model:
        code = keras.Input((self.latent_dim,), name="code")
        hidden = networks.dense_stack(code, self.hidden_units[::-1], batch_norm=self.batch_norm,
                                      name="decoder")
        heads = [networks.output_layer(hidden, (self.n_genes,), name=name)
                 for name in ("log_mean", "dispersion", "dropout")]
        return keras.Model(code, heads, name="decoder")

    # The model ----------------------------------------------------------------------------------

    def _size_factor(self, x):
        library = ops.sum(ops.cast(x, "float32"), axis=-1, keepdims=True)
        return library / self.median_library

    def _normalize(self, x):
        """log1p of size-factor-normalized counts, z-scored per gene (DCA's input)."""
        size_factor = ops.maximum(self._size_factor(x), 1e-8)
        return (ops.log1p(x / size_factor) - self.input_mean) / self.input_std

    def zinb_parameters(self, x, training=False):
        """``(mu, theta, dropout_logits)`` of each cell and gene, from raw counts ``x``."""
        code = self.encoder(self._normalize(x), training=training)
        log_mean, dispersion, dropout_logits = self.decoder(code, training=training)
        log_mean = ops.clip(self.log_gene_mean + log_mean, *LOG_MEAN_RANGE)
        mu = self._size_factor(x) * ops.exp(log_mean)
        theta = ops.clip(ops.softplus(dispersion), *THETA_RANGE)
        return mu, theta, dropout_logits

    def reconstruction_loss(self, x, training=False):
        """-log ZINB(x; mu, theta, pi) of each cell, summed over genes."""
        mu, theta, dropout_logits = self.zinb_parameters(x, training)
        log_likelihood = likelihoods.zero_inflated_negative_binomial(x, mu, theta, dropout_logits)
        return -ops.sum(log_likelihood, axis=-1)

    def train_step(self, data):
        x = self.validate_batch(keras.utils.unpack_x_y_sample_weight(data)[0])
        with tf.GradientTape() as tape:
            # No sampling and no KL: the per-cell ZINB negative log-likelihood is the loss.
            reconstruction_loss = self.reconstruction_loss(x, training=True)
            loss = ops.mean(reconstruction_loss)
            # Divided by the number of replicas (their gradients are summed), loss-scaled for
            # mixed precision: inside the tape.
            scaled_loss = distribute.scale_loss(loss, self.optimizer)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        x = self.validate_batch(keras.utils.unpack_x_y_sample_weight(data)[0])
        self.loss_tracker.update_state(ops.mean(self.reconstruction_loss(x)))
        return {"loss": self.loss_tracker.result()}

    def call(self, x, training=False):
        """The denoised expression ``mu`` of raw counts ``x``."""
        return self.zinb_parameters(self.validate_batch(x), training)[0]

    # Data ---------------------------------------------------------------------------------------

    def validate_batch(self, x):
        """A batch of raw counts after checking, in the step, that every cell has some counts
        (a tf.data input is checked batch by batch)."""
        return raw_count_batch(x, self.n_genes, empty_cells=False)

    is_count_model = True  # An AnnData is read from layers["counts"] when it has one.

    def validate_inputs(self, x, layer: str | None = None):
        """``x`` as float32 raw counts of shape (n_cells, n_genes) (a sparse matrix stays
        sparse; an AnnData gives its ``layer``), or a clear ValueError."""
        x = as_matrix(self.model_data(x, layer))
        if x.ndim != 2 or x.shape[1] != self.n_genes:
            raise ValueError(f"Expected raw counts of shape (n_cells, {self.n_genes}), got "
                             f"{x.shape}. Build DCA(n_genes=...) for your gene count.")
        x = validated_raw_counts(x)
        if np.any(row_sums(x) == 0):
            raise ValueError("Some cells have no counts at all; remove them before DCA.")
        return x

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            self.validate_inputs(arrays[0])

    def fit(self, x=None, y=None, layer: str | None = None, **kwargs):
        """``keras.Model.fit`` on raw counts (an array, a scipy sparse matrix, an AnnData or a
        tf.data pipeline of them), after checking them and recording the median library size,
        each gene's mean normalized count and the means and deviations of the normalized input
        (over all of the cells; this reads a pipeline once)."""
        if isinstance(x, tf.data.Dataset):
            require(x.cardinality() != tf.data.INFINITE_CARDINALITY,
                    "DCA.fit reads the dataset once for its statistics (library sizes, gene "
                    "means): pass a finite dataset (without repeat()) and choose epochs.")
            batches = [keras.utils.unpack_x_y_sample_weight(batch)[0] for batch in x]
            counts = self.validate_inputs(np.concatenate([np.asarray(b) for b in batches]))
        else:
            counts = x = self.validate_inputs(x, layer)
        self._record_statistics(counts)
        return super().fit(x, y, **kwargs)

    def _record_statistics(self, counts) -> None:
        """The median library size, each gene's log mean normalized count, and the mean and
        deviation of each gene's log1p normalized count (sparse stays sparse: log1p(0) = 0)."""
        library = row_sums(counts)
        median = float(np.median(library))
        self.median_library.assign(median)
        size_factors = (library / median).reshape(-1, 1)
        if scipy.sparse.issparse(counts):
            normalized = scipy.sparse.csr_matrix(counts.multiply(1.0 / size_factors))
            logged = normalized.log1p()
            mean = np.asarray(logged.mean(axis=0)).reshape(-1)
            variance = np.asarray(logged.multiply(logged).mean(axis=0)).reshape(-1) - mean**2
            gene_mean = np.asarray(normalized.mean(axis=0)).reshape(-1)
        else:
            normalized = counts / size_factors
            logged = np.log1p(normalized)
            mean, variance, gene_mean = logged.mean(axis=0), logged.var(axis=0), \
                normalized.mean(axis=0)
        self.log_gene_mean.assign(np.log(gene_mean + 1e-5))
        self.input_mean.assign(mean)
        self.input_std.assign(np.maximum(np.sqrt(np.maximum(variance, 0.0)), 1e-3))

    def denoise(self, x, layer: str | None = None) -> np.ndarray:
        """The denoised expected counts ``mu`` of each cell and gene (numpy): the imputation."""
        return in_batches(lambda batch: self.zinb_parameters(batch)[0],
                          [self.validate_inputs(x, layer)])

    def encode(self, x, layer: str | None = None) -> np.ndarray:
        """The bottleneck code of each cell (numpy)."""
        return in_batches(lambda batch: self.encoder(self._normalize(batch)),
                          [self.validate_inputs(x, layer)])
