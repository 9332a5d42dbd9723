"""The plumbing of every model, in one room: what is not its math.

- Configuration for saving (:class:`Configurable`). Keras saves a model subclass as
  ``get_config()`` and re-creates it with ``cls(**config)``. Keras 3.15's automatic config of
  Model subclasses records the constructor's DEFAULT values, not the ones passed
  (``Model.__new__`` drops the arguments), so a model must say what it was built with:
  every argument of ``__init__`` is stored as an attribute of the same name.
- Two optimizers (:class:`TwoOptimizers`): the compile and config of GANs and the DGD.
- Checked inputs (:class:`CheckedInputs`): ``fit``, ``evaluate`` and ``predict`` check the
  data (the checks themselves are in :mod:`course.models.validation`) and read arrays, scipy
  sparse matrices and AnnData; a sparse matrix is streamed by :func:`sparse_dataset`, dense
  one batch at a time, so that memory grows with the non-zeros, not with cells x genes.
- Batches of any size (:func:`in_batches`): the numpy verbs (``encode``, ``decode``, ...).
"""

from __future__ import annotations

import inspect
import warnings

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf
from keras import ops

from course import distribute
from course.models.validation import (
    input_arrays,
    input_errors_as_value_errors,
    require,
    validate_finite,
)


def constructor_arguments(cls) -> list[str]:
    """The named arguments of ``cls.__init__`` and of the classes it passes ``**kwargs`` on to
    (e.g. ConditionalGAN -> GAN), in order, up to Keras' own classes (whose arguments, such as
    ``name``, Keras' ``get_config`` records itself)."""
    names = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "keras":
            break
        if "__init__" not in vars(klass):
            continue
        for parameter in inspect.signature(klass.__init__).parameters.values():
            if parameter.name != "self" and parameter.kind in (
                parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY
            ) and parameter.name not in names:
                names.append(parameter.name)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(klass.__init__).parameters
                   .values()):
            break  # This constructor passes nothing on to its parents.
    return names


class Configurable:
    """``get_config`` of a model whose constructor arguments are attributes of the same name."""

    def get_config(self) -> dict:
        config = super().get_config()
        for name in constructor_arguments(type(self)):
            if not hasattr(self, name):
                raise AttributeError(
                    f"{type(self).__name__} must store its constructor argument {name!r} as "
                    f"self.{name} (course.models.base.Configurable builds the config from it)."
                )
            config[name] = getattr(self, name)
        return config


# --- Two optimizers ----------------------------------------------------------------------------


class TwoOptimizers:
    """``compile`` with two optimizers, and its saving: a GAN trains each player with its own,
    the DGD its network and its per-cell representations.

    A subclass names its two ``compile`` arguments in ``optimizer_names`` and says, for each
    name, what that optimizer trains (:meth:`optimized_variables`) and which optimizer an
    argument left out gets (:meth:`default_optimizer`). ``compile`` builds both optimizers at
    once, inside the caller's strategy scope: Keras 3.15 fails to create a second optimizer's
    variables lazily inside a MirroredStrategy step. ``get_compile_config`` saves both, and
    ``compile_from_config`` re-creates them when a ``.keras`` file is loaded (Keras 3.15 skips
    its own for any model that overrides ``compile``); their state is restored afterwards.
    """

    optimizer_names: tuple[str, str] = ("d_optimizer", "g_optimizer")

    def default_optimizer(self, name: str):
        """The optimizer that the ``compile`` argument ``name`` gets when it is left out."""
        raise NotImplementedError(f"{type(self).__name__} must define default_optimizer.")

    def optimized_variables(self, name: str) -> list:
        """The variables that the optimizer passed as ``name`` trains."""
        raise NotImplementedError(f"{type(self).__name__} must define optimized_variables.")

    def compile(self, **kwargs) -> None:
        """Configure training with the two optimizers named in ``optimizer_names`` (each an
        optimizer or its name; left out: :meth:`default_optimizer`); every other argument goes
        to ``keras.Model.compile`` (e.g. ``run_eagerly``, ``jit_compile``)."""
        if "optimizer" in kwargs and "optimizer" not in self.optimizer_names:
            raise ValueError(
                f"{type(self).__name__} trains with two optimizers: pass "
                f"{' and '.join(self.optimizer_names)} instead of optimizer."
            )
        optimizers = {}
        for name in self.optimizer_names:
            given = kwargs.pop(name, None)
            optimizers[name] = keras.optimizers.get(given) if given else \
                self.default_optimizer(name)
        first, second = optimizers.values()
        if first is second:
            raise ValueError(
                f"{' and '.join(self.optimizer_names)} are the same object; create one optimizer "
                "for each (their moment estimates must not be shared)."
            )
        # optimizer=None: a plain compile() would create an unused RMSprop.
        super().compile(optimizer=None, **kwargs)
        for name, optimizer in optimizers.items():
            optimizer = distribute.wrap_for_mixed_precision(optimizer)
            setattr(self, name, optimizer)
            if not optimizer.built:
                optimizer.build(self.optimized_variables(name))

    def get_compile_config(self) -> dict:
        """The compile arguments, with both optimizers serialized (for ``.keras`` saving)."""
        config = super().get_compile_config()
        if not self.compiled:  # Nothing to save (a model is saved before compile()).
            return config
        config.pop("optimizer", None)
        for name in self.optimizer_names:
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        return config

    def compile_from_config(self, config: dict) -> None:
        """Compile a loaded model with both optimizers re-created from the saved config."""
        config = dict(config)
        for name in self.optimizer_names:
            config[name] = keras.saving.deserialize_keras_object(config.pop(name))
        self.compile(**config)


# --- Checked inputs: fit, evaluate and predict -------------------------------------------------


class CheckedInputs:
    """Mixin of every model: ``fit``, ``evaluate`` and ``predict`` check their inputs, and take
    scipy sparse matrices and AnnData as well as arrays.

    In-memory data are checked up front by :meth:`validate_arrays` (NaN and infinite values
    here; a model overrides it to check more, e.g. raw counts). A ``tf.data`` input is checked
    batch by batch inside the step, and a failed check comes back as the same ValueError.
    An AnnData is read as the matrix of ``layer=`` (:func:`anndata_matrix`); a sparse matrix is
    streamed in batches that are made dense one at a time (:func:`sparse_dataset`).

    ``compile`` defaults to ``jit_compile=False``: Keras' "auto" compiles the step with XLA on
    a single GPU, and XLA silently drops the in-step checks (``check_numerics``, ``Assert``).
    """

    def compile(self, *args, jit_compile=False, **kwargs) -> None:
        if jit_compile == "auto":  # What a saved model's compile config holds.
            jit_compile = False
        if jit_compile:
            warnings.warn(
                "jit_compile: XLA drops the in-step checks, so a NaN or invalid value in a "
                "tf.data batch is no longer reported; check the data before training.",
                stacklevel=2,
            )
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config: dict) -> None:
        """Compile a loaded model as it was saved (Keras skips this for any model whose
        ``compile`` is overridden, and ours is, for its default)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)  # Its saved state is loaded next.

    def validate_arrays(self, *values) -> None:
        for array in input_arrays(*values):
            validate_finite(array)

    def model_data(self, data, layer: str | None = None):
        """``data`` with every AnnData in it replaced by the matrix the model reads: its
        ``layers[layer]``, by default ``layers["counts"]`` for a count model when present,
        else ``X``."""
        counts = bool(getattr(self, "is_count_model", False))
        if isinstance(data, (tuple, list)):
            return type(data)(self.model_data(part, layer) for part in data)
        return anndata_matrix(data, layer, counts) if is_anndata(data) else data

    def fit(self, x=None, y=None, *args, validation_data=None, layer=None, **kwargs):
        x, y = self.model_data((x, y), layer)
        self.validate_arrays(x, y)
        seed = getattr(self, "seed", None)
        if validation_data is not None:
            validation_data = self.model_data(validation_data, layer)
            self.validate_arrays(validation_data)
            validation_data = streamed(validation_data, None, kwargs.get("validation_batch_size")
                                       or kwargs.get("batch_size"), shuffle=False)[0]
        x, y = streamed(x, y, kwargs.get("batch_size"), kwargs.get("shuffle", True), seed)
        if isinstance(x, tf.data.Dataset):
            require(not kwargs.get("validation_split"),
                    "validation_split needs arrays: for sparse data or an AnnData pass "
                    "validation_data=(held-out rows) instead.")
            kwargs.pop("batch_size", None), kwargs.pop("shuffle", None)
        with input_errors_as_value_errors():
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, layer=None, **kwargs):
        x, y = self.model_data((x, y), layer)
        self.validate_arrays(x, y)
        x, y = streamed(x, y, kwargs.get("batch_size"), shuffle=False)
        if isinstance(x, tf.data.Dataset):
            kwargs.pop("batch_size", None)
        with input_errors_as_value_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, layer=None, **kwargs):
        x = self.model_data(x, layer)
        self.validate_arrays(x)
        x, _ = streamed(x, None, kwargs.get("batch_size"), shuffle=False)
        if isinstance(x, tf.data.Dataset):
            kwargs.pop("batch_size", None)
        with input_errors_as_value_errors():
            return super().predict(x, *args, **kwargs)


# --- Data in: AnnData and scipy sparse matrices, one dense batch at a time --------------------

# Keras' default batch size for arrays; a sparse matrix is batched the same way.
DEFAULT_BATCH_SIZE = 32


def is_anndata(value) -> bool:
    """True for an AnnData (recognized by its attributes: no import of anndata needed)."""
    return all(hasattr(value, name) for name in ("X", "obs", "var", "layers", "obsm"))


def anndata_matrix(adata, layer: str | None = None, counts: bool = False):
    """The cells x genes matrix of an AnnData that a model reads (sparse stays sparse).

    Args:
        layer: the name of a layer; None: ``layers["counts"]`` when ``counts`` (a count model)
            and the layer exists, else ``X``.
    """
    require(not getattr(adata, "isbacked", False),
            "This AnnData is opened in backed mode (on disk); load it into memory first, e.g. "
            "anndata.read_h5ad(path) without backed=, or course.datasets.read(path).")
    if layer is None and counts and "counts" in adata.layers:
        layer = "counts"
    if layer is None:
        require(adata.X is not None, "This AnnData has no X; pass layer= naming the counts.")
        return adata.X
    require(layer in adata.layers,
            f"This AnnData has no layers[{layer!r}] (its layers: "
            f"{', '.join(map(repr, adata.layers.keys())) or 'none'}). Pass one of them as "
            "layer=, or layer=None for adata.X.")
    return adata.layers[layer]


def as_matrix(data):
    """A scipy sparse matrix as it is, anything else as a numpy array."""
    return data if scipy.sparse.issparse(data) else np.asarray(data)


def row_count(matrix) -> int:
    """The number of rows of an array or a sparse matrix (``len`` fails on the latter)."""
    return int(matrix.shape[0])


def row_sums(matrix) -> np.ndarray:
    """The sum of each row (each cell's library size), as a 1-D array."""
    return np.asarray(matrix.sum(axis=-1)).reshape(-1)


def dense_rows(matrix, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of an array or a sparse matrix, as a dense numpy array."""
    rows = matrix[start:stop]
    return rows.toarray() if scipy.sparse.issparse(rows) else np.asarray(rows)


def _row_gatherer(matrix):
    """A function of a batch of row indices that returns those rows as a dense tensor.

    The rows are gathered by numpy (by scipy for a sparse matrix: the batch's CSR rows, made
    dense, the only dense copy), so the pipeline reads the caller's matrix in place. A
    TensorFlow constant of it would hold about two more copies of the matrix, and a third,
    briefly, when the pipeline's graph is rewritten as an iterator is made.
    """
    if scipy.sparse.issparse(matrix):
        matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float32)  # A copy only if needed.
    else:
        matrix = np.asarray(matrix)
        # Float64 becomes float32, as Keras does for arrays.
        matrix = matrix.astype(np.float32) if matrix.dtype == np.float64 else matrix

    def rows_of(rows):
        batch = matrix[rows]
        # toarray() sums the duplicate entries of a non-canonical CSR matrix.
        return batch.toarray() if scipy.sparse.issparse(batch) else batch

    def gather(rows):
        batch = tf.numpy_function(rows_of, [rows], tf.as_dtype(matrix.dtype), stateful=False)
        return tf.ensure_shape(batch, (None, *matrix.shape[1:]))

    return gather


def sparse_dataset(data, batch_size: int | None = None, shuffle: bool = True,
                   seed: int | None = None) -> tf.data.Dataset:
    """A ``tf.data`` pipeline over the rows of ``data``: one matrix or a tuple of them (sparse
    matrices and arrays with one row per example), in batches made dense one at a time.

    Shuffles the row order on every epoch (seeded: the same ``seed`` gives the same order; None
    follows TensorFlow's global seed, which ``keras.utils.set_random_seed`` sets).
    """
    parts = tf.nest.flatten(data)
    n = row_count(parts[0])
    require(n > 0, "The data is empty; pass at least one example.")
    require(all(row_count(part) == n for part in parts),
            f"All inputs need one row per example, got {[row_count(p) for p in parts]} rows.")
    gatherers = [_row_gatherer(part) for part in parts]
    rows = tf.data.Dataset.range(n)
    if shuffle:
        rows = rows.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    batches = rows.batch(batch_size or DEFAULT_BATCH_SIZE).map(
        lambda batch: tf.nest.pack_sequence_as(data, [gather(batch) for gather in gatherers]),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def streamed(x, y=None, batch_size: int | None = None, shuffle: bool = True,
             seed: int | None = None):
    """``(x, y)`` unchanged, or ``(dataset, None)`` when they hold a sparse matrix: then a
    :func:`sparse_dataset` of ``x`` (or of ``(x, y)``)."""
    data = x if y is None else (x, y)
    if not any(scipy.sparse.issparse(part) for part in tf.nest.flatten(data)):
        return x, y
    return sparse_dataset(_tuples(data), batch_size, shuffle, seed), None


def _tuples(data):
    """Lists of inputs as tuples (the batches of a pipeline are tuples, as Keras expects)."""
    return tuple(_tuples(part) for part in data) if isinstance(data, (tuple, list)) else data


# --- Batches of any size: numpy in, numpy out -------------------------------------------------

PREDICT_BATCH_SIZE = 512


def in_batches(function, arrays, batch_size: int = PREDICT_BATCH_SIZE):
    """Apply ``function`` to slices of ``arrays`` (arrays or sparse matrices, made dense one
    slice at a time) and concatenate the (tuple of) numpy results."""
    results = []
    for start in range(0, row_count(arrays[0]), batch_size):
        batch = [ops.convert_to_tensor(dense_rows(array, start, start + batch_size))
                 for array in arrays]
        output = function(*batch)
        results.append(tuple(ops.convert_to_numpy(o) for o in keras.tree.flatten(output)))
    columns = tuple(np.concatenate(column) for column in zip(*results))
    return columns if len(columns) > 1 else columns[0]


def first_batch(x):
    """What ``fit()`` statistics are computed on: a sparse matrix whole (its row sums are
    cheap), else the first in-memory array (of the first batch, for a ``tf.data.Dataset``),
    or None for other inputs (a generator, a PyDataset)."""
    if scipy.sparse.issparse(x):
        return x
    if isinstance(x, tf.data.Dataset):
        x = next(iter(x))
    arrays = input_arrays(x)
    return arrays[0] if arrays else None
