"""Arrays into a ``tf.data`` pipeline: checked, shuffled with a seed, batched, prefetched."""

from __future__ import annotations

import numpy as np


def validate_finite(array, name: str = "x") -> np.ndarray:
    """Return ``array`` as a numpy array, raising a clear error if it is empty or has NaNs."""
    array = np.asarray(array)
    if array.size == 0 or len(array) == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); there is nothing to train on.")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite values; remove or impute them before "
            "training."
        )
    return array


def as_dataset(
    x,
    y=None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
):
    """A ``tf.data`` pipeline over arrays: shuffle (seeded), batch, prefetch.

    Args:
        x: an array, or a tuple of arrays with the same number of rows (e.g. images and labels).
        y: optional second element of each batch, as for supervised models.
        batch_size: the GLOBAL batch size (split over replicas under a distribution strategy).
        drop_remainder: drop the last incomplete batch, so every replica gets an equal shard.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if isinstance(x, (tuple, list)):
        features = tuple(validate_finite(a, f"x[{i}]") for i, a in enumerate(x))
    else:
        features = validate_finite(x, "x")
    elements = features if y is None else (features, validate_finite(y, "y"))
    lengths = {len(a) for a in tf.nest.flatten(elements)}
    if len(lengths) != 1:
        raise ValueError(f"All arrays must have the same number of rows, got {sorted(lengths)}.")
    n = lengths.pop()
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"Only {n} examples for a batch size of {batch_size} with drop_remainder=True: no "
            "batch would remain. Use a smaller batch size."
        )
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
