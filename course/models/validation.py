"""What the models check about their arguments and inputs, in one place.

Bad input gets a ValueError that names the problem and the fix, never NaN weights or a graph
error deep inside TensorFlow:

- constructor arguments: :func:`one_of`, :func:`at_least`, :func:`in_interval`, :func:`require`;
- batches: :func:`split_pair` (unpack a pair) and :func:`validate_shape` (per-example shape);
- in-memory arrays, before ``fit``, ``evaluate`` and ``predict``: :func:`validate_finite`,
  :func:`validate_labels`, :func:`requested_labels`, :func:`validate_count_matrix`,
  :func:`validate_one_hot`;
- a ``tf.data`` pipeline, batch by batch inside the training step: :func:`finite_batch` and
  :func:`assert_batch`. They fail with a graph error, which
  :func:`input_errors_as_value_errors` (used by :class:`course.models.base.CheckedInputs`)
  turns back into the same ValueError for the user.

Sparse matrices (scipy) are checked on their stored values (``.data``), never made dense.
"""

from __future__ import annotations

import contextlib
import re

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf

from course import likelihoods

# Constructor arguments -------------------------------------------------------------------------


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def one_of(name: str, value, choices) -> None:
    """Refuse a ``value`` of argument ``name`` that is not among ``choices``."""
    require(value in choices,
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")


def at_least(name: str, value, minimum=1) -> None:
    """Refuse a number (or any entry of a tuple of numbers) below ``minimum``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    require(len(values) > 0 and min(values) >= minimum,
            f"{name} must be at least {minimum}, got {value!r}.")


def in_interval(name: str, value: float, low: float, high: float) -> None:
    """Refuse a ``value`` outside the half-open interval [low, high)."""
    require(low <= value < high, f"{name} must be in [{low:g}, {high:g}), got {value!r}.")


# Batches ---------------------------------------------------------------------------------------


def split_pair(data, missing: str = ""):
    """(first, second) from a batch given as ``(a, b)``, ``((a, b),)`` or ``x=a, y=b``.

    Args:
        missing: the error message when the batch holds one thing only (a default otherwise).
    """
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if y is None and isinstance(x, (tuple, list)) and len(x) == 2:
        x, y = x
    if y is None:
        raise ValueError(
            missing
            or "This model trains on pairs: pass fit((first, second)), fit(first, second) or a "
            "dataset of (first, second) batches."
        )
    return x, y


def validate_shape(tensor, expected: tuple[int, ...], what: str):
    """Return ``tensor`` after checking that its per-example shape is ``expected``.

    The check reads the static shape when ``fit`` traces its step. A model retraced for new
    data sees relaxed shapes such as (64, None), which pass; TensorFlow then reports the
    mismatch itself (a graph-side assertion does not help: even behind a control dependency,
    TF 2.21 reports the matmul's shape error instead of the failed assertion).
    """
    got = tuple(tensor.shape[1:])
    if len(got) != len(expected) or any(g is not None and g != e for g, e in zip(got, expected)):
        raise ValueError(
            f"{what} must have shape (batch, {', '.join(map(str, expected))}) to match the "
            f"model, got (batch, {', '.join(map(str, got))}). Reshape the data or build the "
            "model with the data's shape."
        )
    return tensor


# In-memory arrays ------------------------------------------------------------------------------


def input_arrays(*values) -> list:
    """The in-memory arrays among ``values`` (arrays, tensors, scipy sparse matrices, lists,
    nested tuples or dicts); a ``tf.data`` pipeline or a generator is skipped (the step checks
    its batches). Sparse matrices are returned as they are."""
    arrays = []
    for value in values:
        if scipy.sparse.issparse(value):
            arrays.append(value)
        elif isinstance(value, (np.ndarray, tf.Tensor)):
            arrays.append(np.asarray(value))
        elif isinstance(value, (tuple, dict)) or (
            isinstance(value, list) and all(isinstance(v, (np.ndarray, tf.Tensor)) for v in value)
        ):
            arrays.extend(input_arrays(*keras.tree.flatten(value)))
        elif isinstance(value, list):  # A list of numbers is one array.
            arrays.append(np.asarray(value))
    return arrays


def stored_values(matrix) -> np.ndarray:
    """The values to check of an array or a sparse matrix: its stored entries (``.data``) for
    a sparse matrix (the implicit zeros are valid counts), else the array itself."""
    return matrix.data if scipy.sparse.issparse(matrix) else np.asarray(matrix)


def validate_finite(array, what: str = "The data") -> None:
    """Refuse an array (or sparse matrix) with NaN or infinite values (they would train every
    weight to NaN)."""
    array = stored_values(array)
    if np.issubdtype(array.dtype, np.number) and not np.all(np.isfinite(array)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{what} contains {bad} NaN or infinite values; remove or impute them first."
        )


def validate_labels(labels, num_classes: int) -> None:
    """Refuse class labels that are not integers in [0, num_classes)."""
    labels = np.asarray(labels)
    require(labels.size > 0, "The labels are empty.")
    require(
        np.issubdtype(labels.dtype, np.number) and bool(np.all(np.isfinite(labels)))
        and bool(np.all(labels == np.round(labels))),
        "The labels must be integer class indices; convert them, e.g. with "
        "datasets.labels(adata) or np.unique(names, return_inverse=True)[1].",
    )
    require(
        labels.min() >= 0 and labels.max() < num_classes,
        f"The labels must be in [0, {num_classes}) for num_classes={num_classes}, got values "
        f"from {labels.min():g} to {labels.max():g}. Relabel the data or build the model with "
        "more classes.",
    )


def requested_labels(labels, num_classes: int) -> np.ndarray:
    """The labels asked of generate(): a non-empty sequence of integers in [0, num_classes)."""
    labels = np.asarray(labels).reshape(-1)
    require(
        labels.size == 0 or np.issubdtype(labels.dtype, np.integer),
        f"generate needs integers as labels, got dtype {labels.dtype}; pass e.g. np.arange(3) "
        "or labels.astype(int).",
    )
    validate_labels(labels, num_classes)
    return labels


def validate_count_matrix(counts, what: str = "counts") -> None:
    """Refuse a (cells, genes) matrix (dense or sparse) with NaN, infinite or negative values,
    or empty cells.

    Library-size normalized counts pass (non-integers are allowed); raw-count likelihoods check
    more with :func:`validated_raw_counts`.
    """
    if not scipy.sparse.issparse(counts):
        counts = np.asarray(counts, dtype=np.float64)
    require(counts.ndim == 2,
            f"{what} must be a (cells, genes) matrix, got shape {counts.shape}.")
    values = stored_values(counts)
    require(bool(np.all(np.isfinite(values))),
            f"{what} contains NaN or infinite values; remove or impute them first.")
    require(
        values.size == 0 or values.min() >= 0,
        f"{what} has negative values: the model needs raw (or library-size normalized) counts, "
        "not log-transformed or scaled data. Pass datasets.counts(adata).",
    )
    require(not np.any(np.asarray(counts.sum(axis=1)) == 0),
            f"{what} has cells without any counts; filter them out first.")


def validated_raw_counts(counts, what: str = "counts"):
    """``counts`` as float32 (a CSR matrix stays sparse) after checking that they are raw
    counts: finite, non-negative integers (:func:`course.likelihoods.validate_counts`), on the
    stored values of a sparse matrix."""
    if not scipy.sparse.issparse(counts):
        return likelihoods.validate_counts(counts, what).astype(np.float32)
    require(counts.shape[0] > 0, f"{what} is empty (shape {counts.shape}); pass at least one "
                                 "cell.")
    if counts.nnz:
        likelihoods.validate_counts(counts.data, what)
    return scipy.sparse.csr_matrix(counts, dtype=np.float32)


def validate_one_hot(sequences, what: str = "The sequences") -> None:
    """Refuse arrays that are not one-hot DNA of shape (n, length, 4) (rows summing to 1)."""
    sequences = np.asarray(sequences, dtype=np.float64)
    require(
        sequences.ndim == 3 and sequences.shape[-1] == 4,
        f"{what} must be one-hot DNA of shape (n, length, 4), got {sequences.shape}. Encode "
        "them as in datasets.synthetic_sequences (columns A, C, G, T).",
    )
    require(
        bool(np.all(np.isfinite(sequences))) and sequences.min() >= 0
        and bool(np.allclose(sequences.sum(axis=-1), 1.0)),
        f"{what} are not one-hot (or base probabilities): every position needs non-negative "
        "values over A, C, G, T that sum to 1.",
    )


# tf.data batches, inside the step --------------------------------------------------------------

# A failed in-graph check carries its message between these marks; CheckedInputs finds it in the
# graph error and raises it as a ValueError.
_OPEN, _CLOSE = "<<course: ", " >>"
_MESSAGE = re.compile(re.escape(_OPEN) + "(.*?)" + re.escape(_CLOSE), re.DOTALL)


def finite_batch(tensor, what: str = "The data"):
    """``tensor`` after an in-graph check that it holds no NaN or infinite value.

    Costs one pass over the batch (negligible next to a training step; benchmarks/checks.py
    measures it). Integer tensors pass unchanged: they cannot hold NaN.
    """
    tensor = tf.convert_to_tensor(tensor)
    if not tensor.dtype.is_floating:
        return tensor
    return tf.debugging.check_numerics(
        tensor, f"{_OPEN}{what} contains NaN or infinite values; remove or impute them "
        f"first.{_CLOSE}"
    )


def assert_batch(tensor, condition, message: str):
    """``tensor``, once an in-graph check has found the boolean tensor ``condition`` all true
    (e.g. counts that are non-negative integers, pixels in [0, 1]); else fail with ``message``.

    The step must use the returned tensor: it depends on the check, so nothing computed from
    it (a gather, a weight update) runs before the check has passed.
    """
    check = tf.debugging.Assert(tf.reduce_all(condition), [f"{_OPEN}{message}{_CLOSE}"])
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def raw_count_batch(counts, n_genes: int, empty_cells: bool = True, what: str = "The counts"):
    """``counts`` after in-graph checks that they are raw counts of ``n_genes`` genes: finite,
    non-negative integers (what the count likelihoods need), each cell with some counts unless
    ``empty_cells``."""
    counts = finite_batch(validate_shape(tf.convert_to_tensor(counts), (n_genes,), what), what)
    values = tf.cast(counts, tf.float32)
    counts = assert_batch(
        counts, (values >= 0) & (values == tf.round(values)),
        f"{what} have negative or non-integer values: count likelihoods need raw integer "
        "counts, e.g. course.datasets.counts(adata), not log-normalized X.",
    )
    if empty_cells:
        return counts
    return assert_batch(counts, tf.reduce_sum(values, axis=-1) > 0,
                        "Some cells have no counts at all; remove them first.")


@contextlib.contextmanager
def input_errors_as_value_errors():
    """Re-raise a failed :func:`finite_batch` / :func:`assert_batch` check as a ValueError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = _MESSAGE.search(error.message)
        if found is None:
            raise
        raise ValueError(found.group(1)) from None
