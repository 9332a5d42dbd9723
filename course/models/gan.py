"""Generative adversarial networks: GAN and ConditionalGAN.

A generator G turns random latent vectors z into data; a discriminator D outputs a logit, the
log-odds that its input is real. They are trained in turns on the same batch:

    discriminator loss = BCE(D(x), 1) + BCE(D(G(z)), 0)
    generator loss     = BCE(D(G(z)), 1)          ("non-saturating": make D call fakes real)
                  or   = -BCE(D(G(z)), 0)         ("saturating": the original minimax form)

Each player has its own optimizer, so these models override ``compile`` (see
:class:`AdversarialModel`, which :mod:`course.models.landmark` reuses).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import distribute, networks
from course.models.base import Configurable
from course.models.validation import (
    CheckedInputs,
    assert_batch,
    at_least,
    finite_batch,
    in_interval,
    input_arrays,
    one_of,
    requested_labels,
    require,
    split_pair,
    validate_labels,
    validate_shape,
)

GENERATOR_LOSSES = ("non_saturating", "saturating")
NETWORKS = ("dense", "conv")


def binary_crossentropy_from_logits(targets, logits):
    """Per-example binary cross-entropy of logits of shape (batch, 1), in float32."""
    logits = ops.cast(logits, "float32")
    targets = ops.cast(ops.broadcast_to(targets, ops.shape(logits)), "float32")
    return ops.binary_crossentropy(targets, logits, from_logits=True)[:, 0]


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0):
    """Mean BCE for calling real examples real and generated ones fake.

    One-sided label smoothing aims the real examples at ``1 - label_smoothing`` (never the
    fakes at more than 0), which keeps D from becoming over-confident.
    """
    real_loss = binary_crossentropy_from_logits(1.0 - label_smoothing, real_logits)
    fake_loss = binary_crossentropy_from_logits(0.0, fake_logits)
    return ops.mean(real_loss) + ops.mean(fake_loss)


def generator_loss(fake_logits, kind: str = "non_saturating"):
    """Mean generator loss on the discriminator's logits for generated examples."""
    if kind == "non_saturating":
        # Maximize log D(G(z)): strong gradients even while D easily spots the fakes.
        return ops.mean(binary_crossentropy_from_logits(1.0, fake_logits))
    # Minimize log(1 - D(G(z))): the original minimax game, which saturates early on.
    return -ops.mean(binary_crossentropy_from_logits(0.0, fake_logits))


def default_optimizer() -> keras.optimizers.Optimizer:
    """Adam(2e-4, beta_1=0.5): the DCGAN setting, stable for both players."""
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


class AdversarialModel(Configurable, CheckedInputs, keras.Model):
    """Base of the two-player models: a ``compile`` that takes one optimizer per player.

    Subclasses create ``self.generator`` and ``self.discriminator`` (functional models) in
    ``__init__`` and then call :meth:`_finish_init`, which sets ``self.built = True``: the
    wrapper is built from its sub-models, so fit() needs no symbolic call to build it under a
    strategy, and .keras saving records the optimizer state.
    """

    def _finish_init(self, seed: int, loss_names: tuple[str, ...]) -> None:
        """The random number generator and one loss tracker per name (the logged losses)."""
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in loss_names]
        self.built = True  # Built from keras.Input: see above.

    @property
    def metrics(self):
        return self.trackers

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs) -> None:
        """Configure training with one optimizer per player (default Adam 2e-4, beta_1 0.5).

        Args:
            d_optimizer: optimizer (or its name) for the discriminator.
            g_optimizer: optimizer (or its name) for the generator; must be another object.
            **kwargs: passed to ``keras.Model.compile`` (e.g. ``run_eagerly``, ``jit_compile``).
        """
        # optimizer=None: a plain super().compile() would create an unused RMSprop.
        super().compile(optimizer=None, **kwargs)
        d_optimizer = keras.optimizers.get(d_optimizer) if d_optimizer else default_optimizer()
        g_optimizer = keras.optimizers.get(g_optimizer) if g_optimizer else default_optimizer()
        if d_optimizer is g_optimizer:
            raise ValueError(
                "d_optimizer and g_optimizer are the same object; create one optimizer per "
                "player (their moment estimates must not be shared)."
            )
        self.d_optimizer = distribute.wrap_for_mixed_precision(d_optimizer)
        self.g_optimizer = distribute.wrap_for_mixed_precision(g_optimizer)
        # Build the optimizers now, inside the caller's strategy scope: Keras 3.15 fails to
        # create a second optimizer's variables lazily inside a MirroredStrategy step.
        for optimizer, network in (
            (self.d_optimizer, self.discriminator),
            (self.g_optimizer, self.generator),
        ):
            if not optimizer.built:
                optimizer.build(network.trainable_variables)

    def get_compile_config(self) -> dict:
        """The compile arguments, with both optimizers serialized (for ``.keras`` saving)."""
        config = super().get_compile_config()
        if not self.compiled:  # Nothing to save (a model is saved before compile()).
            return config
        config.pop("optimizer", None)
        config["d_optimizer"] = keras.saving.serialize_keras_object(self.d_optimizer)
        config["g_optimizer"] = keras.saving.serialize_keras_object(self.g_optimizer)
        return config

    def compile_from_config(self, config: dict) -> None:
        """Re-create both optimizers when loading; their state is restored afterwards."""
        config = dict(config)
        d_optimizer = keras.saving.deserialize_keras_object(config.pop("d_optimizer"))
        g_optimizer = keras.saving.deserialize_keras_object(config.pop("g_optimizer"))
        self.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **config)

    def _update_trackers(self, **values) -> dict:
        for tracker in self.metrics:
            tracker.update_state(values[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.metrics}

    def call(self, data, training=False):
        """The discriminator's output for a batch of real data (what fit() feeds the model)."""
        real_data, condition = self._unpack(data)
        return self._discriminate(real_data, condition, training=training)

    def validate_batch(self, real_data):
        """A batch of real data after checking its shape and that it holds no NaN (in the step,
        so that every batch of a tf.data pipeline is checked)."""
        real_data = ops.convert_to_tensor(real_data)
        return finite_batch(validate_shape(real_data, self.data_shape, "The data"))

    # The hooks below are all that a conditional model changes: it passes the label.
    def _condition_inputs(self) -> list:
        """Extra inputs that both networks see: none here, the one-hot label in a conditional
        model."""
        return []

    def _unpack(self, data):
        """The checked real data of a batch, and its condition (None: unconditional model)."""
        real_data = data[0] if isinstance(data, (tuple, list)) else data
        return self.validate_batch(real_data), None

    def _generate(self, latent_vectors, condition, training=False):
        return self.generator(latent_vectors, training=training)

    def _discriminate(self, data, condition, training=False):
        return self.discriminator(data, training=training)

    def _random_latent_vectors(self, batch_size):
        # Per-replica noise: under MirroredStrategy each replica must draw different vectors.
        return distribute.normal((batch_size, self.latent_dim), self.seed_generator)

    def _sample_latent(self, n: int, seed: int | None):
        """Latent vectors for generate(): from the model's seed generator, or a fixed seed."""
        require(n >= 1, f"The number of examples must be positive, got {n}.")
        seed = self.seed_generator if seed is None else seed
        return keras.random.normal((n, self.latent_dim), seed=seed)

    def generate(self, n: int, seed: int | None = None) -> np.ndarray:
        """Generate ``n`` examples (numpy); a fixed ``seed`` gives the same examples each time."""
        generated_data = self._generate(self._sample_latent(n, seed), None)
        return ops.convert_to_numpy(generated_data)


@keras.saving.register_keras_serializable(package="course")
class GAN(AdversarialModel):
    """A GAN for images (28x28x1 in [0, 1]) or expression vectors (n_genes,).

    Args:
        data_shape: shape of one example: (height, width, channels) or (n_features,).
        latent_dim: size of the latent vector z.
        network: "dense" (MLPs) or "conv" (strided convolutions; images only).
        hidden_units: Dense widths for "dense", conv filters for "conv" (None: a default).
            On the 4,000 bundled digits the dense GAN with equal learning rates collapses
            onto one digit within 20 epochs; a 5x faster generator (Adam 1e-3) keeps seven,
            the conv GAN nine or ten (see benchmarks/gan.py).
        generator_loss: "non_saturating" (recommended) or "saturating" (original minimax).
        label_smoothing: one-sided smoothing of the real labels, in [0, 1).
        output_activation: "auto" is a sigmoid for images and linear for vectors.
        seed: seed of the model's random number generator.
    """

    def __init__(
        self,
        data_shape: tuple[int, ...],
        latent_dim: int = 64,
        network: str = "dense",
        hidden_units: tuple[int, ...] | None = None,
        generator_loss: str = "non_saturating",
        label_smoothing: float = 0.0,
        output_activation: str | None = "auto",
        seed: int = 1337,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.data_shape = tuple(int(size) for size in data_shape)
        require(len(self.data_shape) in (1, 3) and min(self.data_shape) >= 1,
                f"data_shape must be (n_features,) or (height, width, channels), got {data_shape}.")
        one_of("network", network, NETWORKS)
        require(network == "dense" or len(self.data_shape) == 3,
                "network='conv' needs an image data_shape (height, width, channels).")
        one_of("generator_loss", generator_loss, GENERATOR_LOSSES)
        in_interval("label_smoothing", label_smoothing, 0.0, 1.0)
        at_least("latent_dim", latent_dim)
        if hidden_units is None:
            hidden_units = (64, 128) if network == "conv" else (256, 512)
        self.latent_dim = latent_dim
        self.network = network
        self.hidden_units = tuple(hidden_units)
        self.generator_loss = generator_loss
        self.label_smoothing = label_smoothing
        self.output_activation = output_activation
        self.seed = seed
        if output_activation == "auto":
            output_activation = "sigmoid" if len(self.data_shape) == 3 else None
        self.generator = self._build_generator(output_activation)
        self.discriminator = self._build_discriminator()
        self._finish_init(seed, ("d_loss", "g_loss"))

    def _build_generator(self, output_activation) -> keras.Model:
        latent = keras.Input((self.latent_dim,), name="latent")
        conditions = self._condition_inputs()
        x = latent
        if conditions:
            x = layers.Concatenate(name="latent_and_label")([latent, *conditions])
        if self.network == "conv":
            x = networks.conv_upsample(
                x, self.data_shape, filters=tuple(reversed(self.hidden_units)),
                activation="leaky_relu", output_activation=output_activation,
            )
        else:
            x = networks.dense_stack(x, self.hidden_units, activation="leaky_relu", name="hidden")
            x = networks.output_layer(x, self.data_shape, activation=output_activation)
        inputs = [latent, *conditions] if conditions else latent
        return keras.Model(inputs, x, name="generator")

    def _build_discriminator(self) -> keras.Model:
        data = keras.Input(self.data_shape, name="data")
        conditions = self._condition_inputs()
        x = data
        if self.network == "conv":
            if conditions:
                # Paint the one-hot label as constant feature maps next to the image channels.
                height, width, _ = self.data_shape
                label_maps = layers.Reshape((1, 1, self.num_classes))(conditions[0])
                label_maps = layers.UpSampling2D((height, width), name="label_maps")(label_maps)
                x = layers.Concatenate(name="image_and_label")([x, label_maps])
            x = networks.conv_downsample(x, self.hidden_units, activation="leaky_relu")
        else:
            x = layers.Flatten(name="flatten")(x) if len(self.data_shape) > 1 else x
            if conditions:
                x = layers.Concatenate(name="data_and_label")([x, *conditions])
            x = networks.dense_stack(x, tuple(reversed(self.hidden_units)), activation="leaky_relu")
        # No dropout: Keras draws the same dropout mask on every replica under MirroredStrategy,
        # so a distributed step would differ from the single-device one.
        logits = layers.Dense(1, dtype="float32", name="logit")(x)
        inputs = [data, *conditions] if conditions else data
        return keras.Model(inputs, logits, name="discriminator")

    def train_step(self, data):
        real_data, condition = self._unpack(data)
        batch_size = ops.shape(real_data)[0]

        # Train the discriminator: real data is labelled 1, generated data 0. (The generator
        # runs in training mode, as in its own update below.)
        random_latent_vectors = self._random_latent_vectors(batch_size)
        generated_data = self._generate(random_latent_vectors, condition, training=True)
        with tf.GradientTape() as tape:
            real_logits = self._discriminate(real_data, condition, training=True)
            fake_logits = self._discriminate(generated_data, condition, training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.label_smoothing)
            scaled_d_loss = distribute.scale_loss(d_loss, self.d_optimizer)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(scaled_d_loss, weights), weights)

        # Train the generator with fresh latent vectors; it wins when D calls its output
        # real. Note that we should *not* update the weights of the discriminator here.
        random_latent_vectors = self._random_latent_vectors(batch_size)
        with tf.GradientTape() as tape:
            generated_data = self._generate(random_latent_vectors, condition, training=True)
            fake_logits = self._discriminate(generated_data, condition, training=True)
            g_loss = generator_loss(fake_logits, self.generator_loss)
            scaled_g_loss = distribute.scale_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss)

    def test_step(self, data):
        real_data, condition = self._unpack(data)
        random_latent_vectors = self._random_latent_vectors(ops.shape(real_data)[0])
        generated_data = self._generate(random_latent_vectors, condition)
        real_logits = self._discriminate(real_data, condition)
        fake_logits = self._discriminate(generated_data, condition)
        d_loss = discriminator_loss(real_logits, fake_logits, self.label_smoothing)
        g_loss = generator_loss(fake_logits, self.generator_loss)
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss)


class OneHotConditioned:
    """Mixin of the conditional adversarial models (ConditionalGAN, ConditionalScGAN): both
    networks see the class label as a one-hot vector. List it before the unconditional model,
    which must set ``self.num_classes`` before it builds its networks."""

    def _condition_inputs(self) -> list:
        return [keras.Input((self.num_classes,), name="one_hot_label")]

    def validate_arrays(self, *values) -> None:
        super().validate_arrays(*values)
        arrays = input_arrays(*values)
        if len(arrays) == 2:
            validate_labels(arrays[1], self.num_classes)

    def validate_batch(self, real_data, labels):
        """A batch ``(data, labels)`` after the unconditional model's checks of the data and a
        check that the labels are class indices in [0, num_classes)."""
        labels = ops.reshape(labels, (-1,))
        if not labels.dtype.is_integer:
            labels = assert_batch(labels, ops.equal(labels, ops.round(labels)),
                                  "The labels must be integer class indices; convert them, e.g. "
                                  "with np.unique(names, return_inverse=True)[1].")
        in_range = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, self.num_classes))
        labels = assert_batch(
            labels, in_range,
            f"The labels must be in [0, {self.num_classes}) for num_classes={self.num_classes}. "
            "Relabel the data or build the model with more classes.")
        return super().validate_batch(real_data), labels

    def _unpack(self, data):
        real_data, labels = self.validate_batch(*split_pair(data))
        return real_data, self._one_hot(labels)

    def _one_hot(self, labels):
        return ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.num_classes)

    def _generate(self, latent_vectors, one_hot_labels, training=False):
        return self.generator([latent_vectors, one_hot_labels], training=training)

    def _discriminate(self, data, one_hot_labels, training=False):
        return self.discriminator([data, one_hot_labels], training=training)

    def generate(self, labels, seed: int | None = None) -> np.ndarray:
        """Generate one example per requested label (numpy); a fixed ``seed`` repeats them."""
        labels = requested_labels(labels, self.num_classes)
        latent_vectors = self._sample_latent(len(labels), seed)
        return ops.convert_to_numpy(self._generate(latent_vectors, self._one_hot(labels)))


@keras.saving.register_keras_serializable(package="course")
class ConditionalGAN(OneHotConditioned, GAN):
    """A GAN whose generator and discriminator both see a class label (as a one-hot vector).

    Train with ``fit((data, labels))`` or a dataset of ``(data, labels)`` batches, with integer
    labels in [0, num_classes); draw chosen classes with ``generate(labels)``. The other
    arguments are those of :class:`GAN`.
    """

    def __init__(
        self, data_shape: tuple[int, ...], num_classes: int, latent_dim: int = 64, **kwargs
    ):
        at_least("num_classes", num_classes, 2)
        self.num_classes = num_classes  # Needed while the parent builds the networks.
        super().__init__(data_shape, latent_dim=latent_dim, **kwargs)
