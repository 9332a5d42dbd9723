"""The Deep Generative Decoder (DGD): a decoder without an encoder.

Schuster & Krogh, "The deep generative decoder: MAP estimation of representations improves
modelling of single-cell RNA data", Bioinformatics 39(9), btad497 (2023).

Every training cell i owns a trainable representation z_i. A Gaussian-mixture prior p(z) with
learnable means, diagonal variances and weights describes where representations lie, and a
decoder turns z_i into negative-binomial counts scaled by the cell's library size, as in scVI.
Training finds maximum a posteriori (MAP) values of everything at once, representations
included, by minimizing per cell

    loss_i = -log NB(x_i; library_i * decoder(z_i), theta) - log p(z_i) - log p(prior) / n_cells

where p(prior) is a hyperprior on the mixture parameters (means ~ N(0, 1), log-variances ~
N(2 log component_scale, 1); the flat Dirichlet prior on the weights adds only a constant).
Summed over all cells this is the negative log posterior of the whole data set.

A batch carries the cells' counts AND their indices: the step gathers those cells'
representations, so their gradient is sparse (``tf.IndexedSlices``: rows of the batch only).
The representations have their own optimizer, by default Adagrad, whose update and state touch
only those rows (Adam's momentum would keep moving every representation on every step).
Under ``MirroredStrategy`` each replica gathers its own cells; the summed sparse gradients
update every replica's copy of the representation table alike.

New cells get representations by the same MAP optimization with the decoder and the prior
frozen (:meth:`DGD.infer`), started at the best of the mixture's component means.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from course import distribute, likelihoods, networks
from course.models.base import (
    CheckedInputs,
    Configurable,
    TwoOptimizers,
    as_matrix,
    dense_rows,
    row_count,
    row_sums,
)
from course.models.validation import (
    assert_batch,
    at_least,
    input_arrays,
    raw_count_batch,
    require,
    split_pair,
    validated_raw_counts,
)

tfd = tfp.distributions
PREDICT_BATCH_SIZE = 512


def mixture_log_density(z, means, log_variances, weight_logits) -> tf.Tensor:
    """log p(z) of each row of ``z`` under a mixture of diagonal Gaussians.

    p(z) = sum_k softmax(weight_logits)_k N(z; means_k, diag(exp(log_variances_k))).
    """
    z, means, log_variances, weight_logits = (
        tf.cast(t, tf.float32) for t in (z, means, log_variances, weight_logits)
    )
    mixture = tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=weight_logits),
        components_distribution=tfd.MultivariateNormalDiag(
            loc=means, scale_diag=tf.exp(0.5 * log_variances)
        ),
    )
    return mixture.log_prob(z)


def hyperprior_log_density(means, log_variances, component_scale: float) -> tf.Tensor:
    """log p of the mixture parameters: means ~ N(0, 1), log-variances ~ N(2 log scale, 1)."""
    mean_prior = tfd.Normal(0.0, 1.0).log_prob(tf.cast(means, tf.float32))
    variance_prior = tfd.Normal(2.0 * math.log(component_scale), 1.0).log_prob(
        tf.cast(log_variances, tf.float32)
    )
    return tf.reduce_sum(mean_prior) + tf.reduce_sum(variance_prior)


def split_batch(data):
    """(counts, cell_indices) of a batch: ``(counts, indices)`` or ``((counts, indices),)``."""
    return split_pair(
        data,
        "A DGD trains on (counts, cell_indices): each batch must say which cells it holds, "
        "so that their representations are updated. Pass fit(counts) for all training "
        "cells in order, or a dataset of (counts, cell_indices) batches.",
    )


@keras.saving.register_keras_serializable(package="course")
class DGD(TwoOptimizers, Configurable, CheckedInputs, keras.Model):
    """The Deep Generative Decoder of Schuster & Krogh (2023) for single-cell counts.

    See the module docstring for the objective. Fit it on the raw counts of the training cells
    (``fit(counts)``, or batches of ``(counts, cell_indices)``); read their representations with
    :meth:`get_representations`, find representations of new cells with :meth:`infer`.

    ``compile(optimizer=..., representation_optimizer=...)`` takes one optimizer for the
    decoder and prior (default Adam 1e-3) and one for the representations (default Adagrad
    0.1: sparse, per-row updates); see :class:`course.models.base.TwoOptimizers`.

    Args:
        n_genes: number of genes (columns of the count matrix).
        n_cells: number of training cells: one representation each.
        latent_dim: size of each representation.
        n_components: number of Gaussian components of the prior (e.g. the number of cell types).
        hidden_units: widths of the decoder's Dense layers.
        component_scale: typical standard deviation of a component (the hyperprior's centre).
        seed: seed of the initial representations and mixture means, and of :meth:`generate`.
    """

    def __init__(
        self,
        n_genes: int,
        n_cells: int,
        latent_dim: int = 10,
        n_components: int = 10,
        hidden_units: tuple[int, ...] = (128,),
        component_scale: float = 0.5,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, size in (("n_genes", n_genes), ("n_cells", n_cells), ("latent_dim", latent_dim),
                           ("n_components", n_components), ("hidden_units", hidden_units)):
            at_least(name, size)
        require(component_scale > 0, f"component_scale must be positive, got {component_scale}.")
        require(keras.config.dtype_policy().name == "float32",
                "The DGD trains in float32: its representation optimizer is not covered by "
                "mixed-precision loss scaling. Call keras.config.set_dtype_policy('float32').")
        self.n_genes, self.n_cells = int(n_genes), int(n_cells)
        self.latent_dim, self.n_components = int(latent_dim), int(n_components)
        self.hidden_units = tuple(int(units) for units in hidden_units)
        self.component_scale = float(component_scale)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.decoder = self._build_decoder()
        self._add_weights()
        self.trackers = [keras.metrics.Mean(name=name)
                         for name in ("loss", "reconstruction_loss", "prior_loss")]
        self.built = True

    def _add_weights(self) -> None:
        """Dispersion, one representation per training cell, the mixture prior, library size."""
        # Gene-wise NB inverse dispersion, log-scale so theta = exp(log_theta) stays positive.
        self.log_theta = self.add_weight(shape=(self.n_genes,), initializer="zeros",
                                         name="log_theta")
        # One representation per training cell: parameters, not outputs of an encoder.
        self.representations = self.add_weight(
            shape=(self.n_cells, self.latent_dim), name="representations",
            initializer=keras.initializers.RandomNormal(stddev=0.01, seed=self.seed),
        )
        self._add_prior_weights()
        # The library size of decode() and generate(); fit() sets the training cells' median.
        self.library_size = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(1e4), trainable=False,
            name="library_size",
        )

    @property
    def metrics(self):
        return self.trackers

    @property
    def network_weights(self) -> list:
        """The weights shared by all cells: decoder, dispersion and mixture prior."""
        return [*self.decoder.trainable_weights, self.log_theta, self.means, self.log_variances,
                self.weight_logits]

    def _add_prior_weights(self) -> None:
        """The mixture's means, log-variances (diagonal) and weight logits (uniform at first)."""
        self.means = self.add_weight(
            shape=(self.n_components, self.latent_dim), name="means",
            initializer=keras.initializers.RandomNormal(
                stddev=1.0, seed=None if self.seed is None else self.seed + 1
            ),
        )
        self.log_variances = self.add_weight(
            shape=(self.n_components, self.latent_dim), name="log_variances",
            initializer=keras.initializers.Constant(2.0 * math.log(self.component_scale)),
        )
        self.weight_logits = self.add_weight(shape=(self.n_components,), initializer="zeros",
                                             name="weight_logits")

    def _build_decoder(self) -> keras.Model:
        z = keras.Input((self.latent_dim,), name="z")
        hidden = networks.dense_stack(z, self.hidden_units, name="decoder")
        # Each gene's share of the cell's transcripts; the library size scales it to counts.
        scale = networks.output_layer(hidden, (self.n_genes,), "softmax", name="scale")
        return keras.Model(z, scale, name="decoder")

    # The per-cell loss terms ------------------------------------------------------------------

    def log_likelihood(self, counts, z, training=False):
        """log p(x|z) of each cell: NB with mean library size * decoder(z), summed over genes."""
        library = ops.sum(ops.cast(counts, "float32"), axis=-1, keepdims=True)
        mu = library * self.decoder(z, training=training)
        values = likelihoods.negative_binomial(counts, mu, ops.exp(self.log_theta))
        return ops.sum(values, axis=-1)

    def log_prior(self, z):
        """log p(z) of each representation plus its 1/n_cells share of the hyperprior."""
        hyperprior = hyperprior_log_density(self.means, self.log_variances, self.component_scale)
        density = mixture_log_density(z, self.means, self.log_variances, self.weight_logits)
        return density + hyperprior / self.n_cells

    # Training ----------------------------------------------------------------------------------

    def train_step(self, data):
        counts, cell_indices = self.validate_batch(*split_batch(data))
        with tf.GradientTape() as tape:
            # Gather the batch's representations: the gradient reaches only these rows.
            z = ops.take(self.representations, cell_indices, axis=0)
            # -log p(x|z) over genes and -log p(z) under the mixture prior, per cell.
            reconstruction_loss = -self.log_likelihood(counts, z, training=True)
            prior_loss = -self.log_prior(z)
            # The per-cell negative log posterior, averaged over the (local) batch.
            loss = ops.mean(reconstruction_loss + prior_loss)
            # Divide by the number of replicas: their gradients are summed.
            scaled_loss = distribute.scale_loss(loss)
        network_weights = self.network_weights
        gradients = tape.gradient(scaled_loss, [*network_weights, self.representations])
        # Decoder and prior take one step; so do the batch's representations (sparse rows).
        self.optimizer.apply(gradients[:-1], network_weights)
        self.representation_optimizer.apply(gradients[-1:], [self.representations])
        return self._update_trackers(loss, reconstruction_loss, prior_loss)

    def test_step(self, data):
        counts, cell_indices = self.validate_batch(*split_batch(data))
        z = ops.take(self.representations, cell_indices, axis=0)
        reconstruction_loss = -self.log_likelihood(counts, z)
        prior_loss = -self.log_prior(z)
        return self._update_trackers(ops.mean(reconstruction_loss + prior_loss),
                                     reconstruction_loss, prior_loss)

    def _update_trackers(self, loss, reconstruction_loss, prior_loss):
        """Log the mean loss, reconstruction loss and prior loss of the batch."""
        for tracker, value in zip(self.trackers, (loss, reconstruction_loss, prior_loss)):
            tracker.update_state(ops.mean(value))
        return {metric.name: metric.result() for metric in self.metrics}

    # Two optimizers (their compile and saving: base.TwoOptimizers) --------------------------------

    optimizer_names = ("optimizer", "representation_optimizer")

    def default_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        if name == "optimizer":
            return keras.optimizers.Adam(1e-3)
        return keras.optimizers.Adagrad(learning_rate=0.1)

    def optimized_variables(self, name: str) -> list:
        return self.network_weights if name == "optimizer" else [self.representations]

    # Fitting arrays or datasets -------------------------------------------------------------------

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` on ``(counts, cell_indices)`` after checking them.

        ``fit(counts)`` with one row per training cell, in order, adds the indices itself. A
        ``tf.data.Dataset`` of ``(counts, cell_indices)`` batches is checked batch by batch.
        Also records the median library size of the (checked) cells as :meth:`decode`'s default.
        Counts may be a scipy sparse matrix or an AnnData (``layer=``; default its "counts").
        """
        x, y = self.model_data((x, y), kwargs.pop("layer", None))
        if isinstance(x, tf.data.Dataset):
            # An out-of-range index would fail deep inside the step (or, on a GPU, silently
            # gather zeros): check every batch of a finite dataset, the first of an endless one.
            finite = x.cardinality() != tf.data.INFINITE_CARDINALITY
            batches = (x if finite else x.take(1)).as_numpy_iterator()
            counts = np.concatenate([self.validate_inputs(*split_batch(b))[0] for b in batches])
        else:
            if y is None and not isinstance(x, (tuple, list)):
                x = (x, self._all_cell_indices(x))
            x = self.validate_inputs(*split_batch((x, y) if y is not None else (x,)))
            counts, y = x[0], None
        self.library_size.assign(float(np.median(row_sums(counts))))
        return super().fit(x, y, **kwargs)

    def _all_cell_indices(self, counts) -> np.ndarray:
        if row_count(counts) != self.n_cells:
            raise ValueError(
                f"fit(counts) needs one row per training cell ({self.n_cells}), got "
                f"{row_count(counts)}; to train on some cells pass fit((counts, cell_indices))."
            )
        return np.arange(self.n_cells)

    def call(self, inputs, training=False):
        """Expected counts of the cells ``inputs = (counts, cell_indices)``."""
        counts, cell_indices = self.validate_batch(*inputs)
        z = ops.take(self.representations, cell_indices, axis=0)
        return ops.sum(counts, axis=-1, keepdims=True) * self.decoder(z, training=training)

    # Checking inputs ---------------------------------------------------------------------------

    is_count_model = True  # An AnnData is read from layers["counts"] when it has one.

    def validate_batch(self, counts, cell_indices):
        """A batch after checking, in the step, that it holds raw counts of ``n_genes`` genes
        and integer indices of training cells (a tf.data input is checked batch by batch)."""
        cell_indices = ops.convert_to_tensor(cell_indices)
        require(cell_indices.dtype.is_integer,
                f"cell_indices must be integers (one per cell), got {cell_indices.dtype}.")
        cell_indices = assert_batch(
            cell_indices, ops.logical_and(ops.greater_equal(cell_indices, 0),
                                          ops.less(cell_indices, self.n_cells)),
            f"cell_indices must lie in 0 .. {self.n_cells - 1} (the model has one "
            "representation per training cell). For new cells use infer(counts).")
        return raw_count_batch(counts, self.n_genes), cell_indices

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if len(arrays) == 2:
            self.validate_inputs(*arrays)

    def validated_counts(self, counts) -> np.ndarray:
        """``counts`` as float32 after checking the shape (n, n_genes) and that they are raw
        integer counts; a ValueError says what is wrong."""
        counts = as_matrix(self.model_data(counts))
        if counts.ndim != 2 or counts.shape[1] != self.n_genes:
            raise ValueError(
                f"Expected counts of shape (n_cells, {self.n_genes}), got {counts.shape}. Use the "
                "genes the model was trained on, in the same order."
            )
        return validated_raw_counts(counts, "counts")

    def validate_inputs(self, counts, cell_indices) -> tuple[np.ndarray, np.ndarray]:
        """Checked ``(counts, cell_indices)``: indices are integers in 0 .. n_cells - 1."""
        counts = self.validated_counts(counts)
        cell_indices = np.asarray(cell_indices)
        if cell_indices.shape != (row_count(counts),) or not np.issubdtype(cell_indices.dtype,
                                                                     np.integer):
            raise ValueError(
                f"cell_indices must be {row_count(counts)} integers (one per cell), got "
                f"{cell_indices.dtype} of shape {cell_indices.shape}."
            )
        if cell_indices.min() < 0 or cell_indices.max() >= self.n_cells:
            raise ValueError(
                f"cell_indices must lie in 0 .. {self.n_cells - 1} (the model has one "
                f"representation per training cell), got {cell_indices.min()} .. "
                f"{cell_indices.max()}. For new cells use infer(counts)."
            )
        return counts, cell_indices.astype(np.int32)

    # Using a trained model ---------------------------------------------------------------------

    def get_representations(self) -> np.ndarray:
        """The representations of the training cells (numpy, one row per cell)."""
        return ops.convert_to_numpy(self.representations)

    def infer(self, counts, steps: int = 300, learning_rate: float = 0.05) -> np.ndarray:
        """MAP representations of new cells, with the decoder and the prior frozen.

        Each cell starts at the component mean that explains it best; then Adam takes
        ``steps`` full-batch steps on the representations only.
        """
        counts = ops.convert_to_tensor(dense_rows(self.validated_counts(counts)))
        if int(steps) < 0 or not learning_rate > 0:
            raise ValueError("steps must be >= 0 and learning_rate positive.")
        z = keras.Variable(self._best_component_means(counts), name="new_representations")
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build([z])

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = ops.sum(-self.log_likelihood(counts, z) - self.log_prior(z))
            # Only z moves: the decoder and the prior stay as trained.
            optimizer.apply(tape.gradient(loss, [z]), [z])

        for _ in range(int(steps)):
            step()
        return ops.convert_to_numpy(z)

    def _best_component_means(self, counts) -> np.ndarray:
        losses = []
        for component in range(self.n_components):
            z = ops.broadcast_to(self.means[component], (ops.shape(counts)[0], self.latent_dim))
            losses.append(-self.log_likelihood(counts, z) - self.log_prior(z))
        best = ops.argmin(ops.stack(losses, axis=1), axis=1)
        return ops.convert_to_numpy(ops.take(self.means, best, axis=0))

    def assign_components(self, z) -> np.ndarray:
        """The most probable mixture component of each representation (a clustering)."""
        z = tf.constant(np.asarray(z, np.float32))
        components = tfd.MultivariateNormalDiag(loc=self.means,
                                                scale_diag=ops.exp(0.5 * self.log_variances))
        log_joint = components.log_prob(z[:, None, :]) + tf.nn.log_softmax(self.weight_logits)
        return ops.convert_to_numpy(ops.argmax(log_joint, axis=1))

    def decode(self, z, library_size=None) -> np.ndarray:
        """Expected counts of cells with representations ``z`` and ``library_size`` counts
        (default: the median of the training cells)."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}), got {z.shape}.")
        if library_size is None:
            library_size = ops.convert_to_numpy(self.library_size)
        library = np.broadcast_to(np.asarray(library_size, np.float32).reshape(-1, 1),
                                  (len(z), 1))
        shares = self.decoder.predict(z, batch_size=PREDICT_BATCH_SIZE, verbose=0)
        return library * shares

    def generate(self, n: int, seed: int | None = None, library_size=None) -> np.ndarray:
        """Expected counts of ``n`` new cells whose representations are drawn from the prior;
        a fixed ``seed`` gives the same cells each time."""
        require(int(n) >= 1, f"n must be a positive number of cells, got {n}.")
        seed_generator = self.seed_generator if seed is None else keras.random.SeedGenerator(seed)
        components = keras.random.categorical(self.weight_logits[None, :], int(n),
                                              seed=seed_generator)[0]
        noise = distribute.normal((int(n), self.latent_dim), seed_generator)
        z = (ops.take(self.means, components, axis=0)
             + ops.exp(0.5 * ops.take(self.log_variances, components, axis=0)) * noise)
        return self.decode(ops.convert_to_numpy(z), library_size)
