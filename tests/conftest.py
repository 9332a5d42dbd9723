"""Test-session set-up: two logical CPU devices (configured before TensorFlow initializes), one
MirroredStrategy shared by every distributed test, and a fixed seed for each test."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import pytest  # noqa: E402

from course import distribute  # noqa: E402

N_CPU_REPLICAS = 2
distribute.configure_cpu_replicas(N_CPU_REPLICAS)


@pytest.fixture(scope="session")
def strategy():
    """A MirroredStrategy over two logical CPUs, created once per test session."""
    return distribute.get_strategy("mirrored", cpu_replicas=N_CPU_REPLICAS)


@pytest.fixture(autouse=True)
def _seed_and_precision():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
