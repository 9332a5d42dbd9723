"""Building blocks for the functional sub-models (encoders, decoders, generators, discriminators).

Each function takes a Keras tensor and returns a Keras tensor, so a model builds its sub-models
from ``keras.Input`` in a few readable lines, and ``get_config`` / ``.keras`` saving need no
custom code.
"""

from __future__ import annotations

import math

from keras import layers


def dense_stack(
    x,
    hidden_units: tuple[int, ...],
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    name: str = "dense",
):
    """A stack of Dense layers (optionally with batch normalization and dropout).

    Batch statistics are synchronized over replicas, so that a MirroredStrategy step computes
    what one device computes on the whole global batch (local statistics would differ).
    """
    for index, units in enumerate(hidden_units):
        x = layers.Dense(units, name=f"{name}_{index}")(x)
        if batch_norm:
            x = layers.BatchNormalization(synchronized=True, name=f"{name}_bn_{index}")(x)
        x = layers.Activation(activation, name=f"{name}_act_{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout_{index}")(x)
    return x


def conv_downsample(
    x, filters: tuple[int, ...] = (32, 64), activation: str = "relu", name: str = "conv"
):
    """Strided 3x3 convolutions that halve the image size at each step, then flatten."""
    for index, n_filters in enumerate(filters):
        x = layers.Conv2D(
            n_filters, 3, strides=2, padding="same", name=f"{name}_{index}"
        )(x)
        x = layers.Activation(activation, name=f"{name}_act_{index}")(x)
    return layers.Flatten(name=f"{name}_flatten")(x)


def conv_upsample(
    x,
    image_shape: tuple[int, int, int],
    filters: tuple[int, ...] = (64, 32),
    activation: str = "relu",
    output_activation: str | None = None,
    name: str = "deconv",
):
    """Project a vector to a small feature map and double it with transposed convolutions
    until it has ``image_shape`` (height and width must be divisible by 2**len(filters))."""
    height, width, channels = image_shape
    factor = 2 ** len(filters)
    if height % factor or width % factor:
        raise ValueError(
            f"Image size {height}x{width} is not divisible by {factor}; choose fewer conv "
            "filters or pad the images."
        )
    start = (height // factor, width // factor, filters[0])
    x = layers.Dense(math.prod(start), name=f"{name}_project")(x)
    x = layers.Activation(activation, name=f"{name}_project_act")(x)
    x = layers.Reshape(start, name=f"{name}_reshape")(x)
    for index, n_filters in enumerate(filters):
        x = layers.Conv2DTranspose(
            n_filters, 3, strides=2, padding="same", name=f"{name}_{index}"
        )(x)
        x = layers.Activation(activation, name=f"{name}_act_{index}")(x)
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_out")(x)
    if output_activation:
        x = layers.Activation(output_activation, dtype="float32", name=f"{name}_out_act")(x)
    return x


def output_layer(x, shape: tuple[int, ...], activation: str | None = None, name: str = "output"):
    """A Dense layer reshaped to ``shape``; computed in float32 (safe under mixed precision)."""
    x = layers.Dense(math.prod(shape), activation=activation, dtype="float32", name=name)(x)
    if len(shape) > 1:
        x = layers.Reshape(shape, name=f"{name}_reshape")(x)
    return x

