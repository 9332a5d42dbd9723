"""Generative adversarial networks: GAN and ConditionalGAN.

A generator G turns random latent vectors z into data; a discriminator D outputs a logit, the
log-odds that its input is real. They are trained in turns on the same batch:

    discriminator loss = BCE(D(x), 1) + BCE(D(G(z)), 0)
    generator loss     = BCE(D(G(z)), 1)          ("non-saturating": make D call fakes real)
                  or   = -BCE(D(G(z)), 0)         ("saturating": the original minimax form)

Each player has its own optimizer: ``compile(d_optimizer=..., g_optimizer=...)``. That
machinery, shared by every GAN of the package, is in :mod:`course.models.adversarial`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from course import distribute, networks
from course.models.adversarial import AdversarialModel, OneHotConditioned
from course.models.validation import at_least, in_interval, one_of, require

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


def non_saturating_generator_loss(fake_logits):
    """Mean BCE for D calling generated examples real: maximize log D(G(z)), which gives strong
    gradients even while D easily spots the fakes."""
    return ops.mean(binary_crossentropy_from_logits(1.0, fake_logits))


def saturating_generator_loss(fake_logits):
    """Minus the mean BCE for D calling generated examples fake: minimize log(1 - D(G(z))), the
    original minimax game, which saturates early on."""
    return -ops.mean(binary_crossentropy_from_logits(0.0, fake_logits))


# The choices of GAN(generator_loss=...).
GENERATOR_LOSSES = {"non_saturating": non_saturating_generator_loss,
                    "saturating": saturating_generator_loss}


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
        random_latent_vectors = self.random_latent_vectors(batch_size)
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
        random_latent_vectors = self.random_latent_vectors(batch_size)
        with tf.GradientTape() as tape:
            generated_data = self._generate(random_latent_vectors, condition, training=True)
            fake_logits = self._discriminate(generated_data, condition, training=True)
            g_loss = GENERATOR_LOSSES[self.generator_loss](fake_logits)
            scaled_g_loss = distribute.scale_loss(g_loss, self.g_optimizer)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(scaled_g_loss, weights), weights)
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss)

    def test_step(self, data):
        real_data, condition = self._unpack(data)
        random_latent_vectors = self.random_latent_vectors(ops.shape(real_data)[0])
        generated_data = self._generate(random_latent_vectors, condition)
        real_logits = self._discriminate(real_data, condition)
        fake_logits = self._discriminate(generated_data, condition)
        d_loss = discriminator_loss(real_logits, fake_logits, self.label_smoothing)
        g_loss = GENERATOR_LOSSES[self.generator_loss](fake_logits)
        return self._update_trackers(d_loss=d_loss, g_loss=g_loss)


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
