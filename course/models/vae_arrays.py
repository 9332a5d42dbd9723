"""The numpy side of the VAEs: what a user calls on arrays, and the checks of what comes in.

:class:`VAEArrays` gives :class:`course.models.VAE` its verbs (``encode``, ``decode``,
``generate``, ``reconstruct``: numpy in, numpy out, in batches of any size; arrays, scipy sparse
matrices or AnnData in), checks the data at ``fit``, ``evaluate`` and ``predict``
(:meth:`VAEArrays.validate_arrays`) and in every training step
(:meth:`VAEArrays.validate_batch`), and records the median library size of the training cells.
:class:`ConditionalVAEArrays` does the same with labels. The math is in
:mod:`course.models.vae`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from course import distribute
from course.models.base import (
    CheckedInputs,
    as_matrix,
    dense_rows,
    first_batch,
    in_batches,
    row_count,
    row_sums,
)
from course.models.validation import (
    assert_batch,
    at_least,
    finite_batch,
    input_arrays,
    requested_labels,
    require,
    validate_finite,
    validate_labels,
    validate_shape,
    validated_raw_counts,
)

RAW_COUNTS = ("The data must be raw integer counts for a count likelihood, but a batch has "
              "negative or non-integer values: pass raw integer counts, e.g. "
              "course.datasets.counts(adata), not log-normalized X.")
PIXELS = ("The Bernoulli likelihood needs pixel values in [0, 1], but a batch has NaN or values "
          "outside it: remove the NaN; images stored as integers 0-255 must be divided by 255.")


class VAEArrays(CheckedInputs):
    """numpy API and input checks of :class:`course.models.VAE`."""

    # Checks ------------------------------------------------------------------------------------

    def validate_batch(self, x):
        """``x`` after in-graph checks: the model's shape, no NaN; raw counts for count
        likelihoods, pixels in [0, 1] for the Bernoulli likelihood."""
        x = validate_shape(tf.convert_to_tensor(x), self.data_shape, "The data")
        if self.likelihood == "bernoulli":
            # One comparison pass: NaN fails both comparisons, so it needs no check of its own
            # (a second pass over the batch cost about 5% of a small MNIST step).
            return assert_batch(x, (x >= 0) & (x <= 1), PIXELS)
        x = finite_batch(x)
        if self.is_count_model:
            values = tf.cast(x, tf.float32)
            return assert_batch(x, (values >= 0) & (values == tf.round(values)), RAW_COUNTS)
        return x

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            self.checked_data(arrays[0])

    def checked_data(self, x, layer: str | None = None):
        """``x`` as float32 (a sparse matrix stays sparse; an AnnData gives its ``layer``, see
        :meth:`model_data`), or a ValueError that says what is wrong with it (shape; NaN; for
        count likelihoods, not raw counts; for Bernoulli, pixels outside [0, 1])."""
        x = as_matrix(self.model_data(x, layer))
        shape = ", ".join(map(str, self.data_shape))
        require(tuple(x.shape) != self.data_shape,
                f"Got one example of shape {x.shape} without the batch axis; the model expects "
                f"a batch of shape (n, {shape}). Pass x[None] for one example, or slice the "
                "batch: x[:1] instead of x[0].")
        require(x.ndim == len(self.data_shape) + 1 and tuple(x.shape[1:]) == self.data_shape,
                f"Expected data of shape (n, {shape}), got {x.shape}. Reshape the data, or "
                f"build the model with data_shape={x.shape[1:]}.")
        if self.is_count_model:
            return validated_raw_counts(x, "x")
        require(row_count(x) > 0, "The data is empty; pass at least one example.")
        validate_finite(x)
        if self.likelihood == "bernoulli":
            low, high = (x.min(), x.max())
            require(low >= 0 and high <= 1,
                    f"The Bernoulli likelihood needs pixel values in [0, 1], got values from "
                    f"{low:g} to {high:g}: images stored as integers 0-255 must be "
                    "divided by 255.")
        return x.astype(np.float32)

    def validate_inputs(self, x, labels=None):
        """``(x, None)`` checked as by :meth:`checked_data`, dense (the metrics call it; a
        ConditionalVAE returns ``(x, labels)``)."""
        require(labels is None, "A VAE takes no labels; use a ConditionalVAE to condition on them.")
        return dense_rows(self.checked_data(x)), None

    def fit(self, x=None, y=None, layer: str | None = None, **kwargs):
        """``keras.Model.fit`` on arrays, a scipy sparse matrix (streamed one dense batch at a
        time), an AnnData (its ``layer``; see :meth:`model_data`) or a ``tf.data`` pipeline.
        A count model first records the median library size of the training cells (of the
        first batch of a ``tf.data.Dataset``), the default of decode()."""
        x, y = self.model_data((x, y), layer)
        if self.is_count_model:
            self.validate_arrays(x, y)
            counts = first_batch(x)
            if counts is not None:
                self.library_size.assign(float(np.median(row_sums(counts))))
        return super().fit(x, y, **kwargs)

    # numpy API ---------------------------------------------------------------------------------

    def encode(self, x, return_distribution: bool = False, layer: str | None = None):
        """The posterior mean of z for each example of ``x`` (numpy); ``x`` may be an array, a
        sparse matrix or an AnnData (its ``layer``, see :meth:`model_data`).

        Returns:
            ``z_mean``, or ``(z_mean, z_log_var)`` when ``return_distribution`` is True.
        """
        z_mean, z_log_var = in_batches(self._encode, [self.checked_data(x, layer)])
        return (z_mean, z_log_var) if return_distribution else z_mean

    def decode(self, z, library_size=None):
        """The likelihood mean of p(x|z) (numpy): pixel probabilities, Gaussian means, or
        expected counts for cells of ``library_size`` total counts (default: the median of the
        training cells)."""
        def decode_batch(z, library):
            return self._likelihood_mean(self.decoder(z), library)

        return in_batches(decode_batch, self._latent_and_library(z, library_size))

    def generate(self, n: int, seed: int | None = None, library_size=None):
        """Decode ``n`` draws z ~ N(0, I): new examples, as likelihood means (numpy). A fixed
        ``seed`` gives the same examples each time."""
        return self.decode(self._prior_sample(n, seed), library_size)

    def reconstruct(self, x, layer: str | None = None):
        """Encode ``x`` to its posterior mean and decode it again (numpy)."""
        return in_batches(self._reconstruction, [self.checked_data(x, layer)])

    def _latent_and_library(self, z, library_size) -> list[np.ndarray]:
        z = np.asarray(z, np.float32)
        require(z.ndim == 2 and z.shape[1] == self.latent_dim,
                f"z must have shape (n, {self.latent_dim}), got {z.shape}.")
        if library_size is None:
            library_size = ops.convert_to_numpy(self.library_size) if self.is_count_model else 1
        library = np.broadcast_to(np.asarray(library_size, np.float32).reshape(-1, 1), (len(z), 1))
        return [z, np.ascontiguousarray(library)]

    def _prior_sample(self, n: int, seed: int | None) -> np.ndarray:
        at_least("The number of examples n", n)
        if seed is None:  # The model's own generator: new draws on every call.
            return ops.convert_to_numpy(
                distribute.normal((int(n), self.latent_dim), self.seed_generator))
        return ops.convert_to_numpy(keras.random.normal((int(n), self.latent_dim), seed=seed))


class ConditionalVAEArrays(VAEArrays):
    """numpy API and input checks of :class:`course.models.ConditionalVAE`: with labels."""

    def validate_label_batch(self, labels):
        """The labels of a batch, after an in-graph check that they are integers in
        [0, num_classes)."""
        values = tf.cast(labels, tf.float32)
        valid = (values >= 0) & (values < self.num_classes) & (values == tf.round(values))
        return assert_batch(labels, valid, f"The labels must be integers in [0, "
                            f"{self.num_classes}); relabel the data or build the model with more "
                            "classes.")

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            require(len(arrays) >= 2,
                    "A ConditionalVAE is fit on (x, labels); the labels are missing.")
            self.checked_pair(arrays[0], arrays[1])

    def checked_pair(self, x, labels, layer: str | None = None):
        """``(x, labels)`` checked: ``x`` as by :meth:`checked_data` (sparse stays sparse), one
        integer label in [0, num_classes) per example."""
        x = self.checked_data(x, layer)
        return x, self._checked_labels(labels, row_count(x))

    def validate_inputs(self, x, labels=None):
        """``(x, labels)`` checked as by :meth:`checked_pair`, ``x`` dense (the metrics call
        it)."""
        x, labels = self.checked_pair(x, labels)
        return dense_rows(x), labels

    def _checked_labels(self, labels, n: int) -> np.ndarray:
        require(labels is not None, "A ConditionalVAE needs labels: one integer per example.")
        labels = np.broadcast_to(labels, (n,)) if np.ndim(labels) == 0 else np.asarray(labels)
        require(labels.shape == (n,),
                f"labels must be {n} integers (one per example), got shape {labels.shape}.")
        validate_labels(labels, self.num_classes)
        return np.ascontiguousarray(labels.astype(np.int32))

    def encode(self, x, labels, return_distribution: bool = False, layer: str | None = None):
        """The posterior mean of z given examples and their labels (see :meth:`VAE.encode`)."""
        arrays = self.checked_pair(x, labels, layer)
        z_mean, z_log_var = in_batches(lambda *inputs: self._encode(inputs), arrays)
        return (z_mean, z_log_var) if return_distribution else z_mean

    def decode(self, z, labels, library_size=None):
        """The likelihood mean of p(x|z, label) (numpy); ``labels`` may be one int for all."""
        arrays = self._latent_and_library(z, library_size)
        arrays.append(self._checked_labels(labels, len(arrays[0])))

        def decode_batch(z, library, labels):
            return self._likelihood_mean(self._decode(z, labels), library)

        return in_batches(decode_batch, arrays)

    def generate(self, labels, seed: int | None = None, library_size=None):
        """One new example per requested label (numpy); a fixed ``seed`` repeats them."""
        labels = requested_labels(labels, self.num_classes)
        return self.decode(self._prior_sample(len(labels), seed), labels, library_size)

    def reconstruct(self, x, labels, layer: str | None = None):
        """Encode ``(x, labels)`` to the posterior mean and decode it with the same labels."""
        arrays = self.checked_pair(x, labels, layer)
        return in_batches(lambda *inputs: self._reconstruction(inputs), arrays)
