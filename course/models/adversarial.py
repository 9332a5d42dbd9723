"""The machinery of the two-player models, kept out of the way of their math.

Every GAN of the package (:mod:`~course.models.gan`, :mod:`~course.models.wgan`, scGAN, DNA-GAN,
LandmarkGAN) has a generator and a discriminator (or critic) trained in turns, each by its own
optimizer. What they share and what a reader of a model's ``train_step`` need not read first:

- :class:`AdversarialModel`: the two optimizers (``compile(d_optimizer=..., g_optimizer=...)``,
  saved and loaded with the model), the loss trackers, input checks, one way to draw latent
  vectors, and ``generate``;
- :class:`OneHotConditioned`: what a conditional model changes: both networks also see the class
  label as a one-hot vector.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from course import distribute
from course.models.base import CheckedInputs, Configurable, TwoOptimizers
from course.models.validation import (
    assert_batch,
    finite_batch,
    input_arrays,
    requested_labels,
    require,
    split_pair,
    validate_labels,
    validate_shape,
)


def default_optimizer() -> keras.optimizers.Optimizer:
    """Adam(2e-4, beta_1=0.5): the DCGAN setting, stable for both players."""
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


class AdversarialModel(TwoOptimizers, Configurable, CheckedInputs, keras.Model):
    """Base of the two-player models: one optimizer per player, trackers, checks, latent noise.

    Subclasses create ``self.generator`` and ``self.discriminator`` (functional models) in
    ``__init__`` and then call :meth:`_finish_init`, which sets ``self.built = True``: the
    wrapper is built from its sub-models, so fit() needs no symbolic call to build it under a
    strategy, and .keras saving records the optimizer state. ``compile(d_optimizer=...,
    g_optimizer=...)`` takes an optimizer (or its name) per player, each by default
    :func:`default_optimizer`, and passes anything else to ``keras.Model.compile``.
    """

    optimizer_names = ("d_optimizer", "g_optimizer")

    def default_optimizer(self, name: str) -> keras.optimizers.Optimizer:
        return default_optimizer()

    def optimized_variables(self, name: str) -> list:
        network = self.discriminator if name == "d_optimizer" else self.generator
        return network.trainable_variables

    def _finish_init(self, seed: int, loss_names: tuple[str, ...]) -> None:
        """The random number generator and one loss tracker per name (the logged losses)."""
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in loss_names]
        self.built = True  # Built from keras.Input: see above.

    @property
    def metrics(self):
        return self.trackers

    def _update_trackers(self, **values) -> dict:
        for tracker in self.metrics:
            tracker.update_state(values[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.metrics}

    def call(self, data, training=False):
        """The discriminator's output for a batch of real data (what fit() feeds the model)."""
        real_data, condition = self._unpack(data)
        return self._discriminate(real_data, condition, training=training)

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` after refusing empty arrays (Keras would run no step, silently)."""
        for array in input_arrays(x, y):
            require(array.shape[0] > 0, "The training data is empty; pass at least one example.")
        return super().fit(x, y, *args, **kwargs)

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

    def random_latent_vectors(self, n, seed: int | None = None):
        """``n`` latent vectors z ~ N(0, I): from the model's seed generator (different on each
        replica under MirroredStrategy, where the generator's state is mirrored), or from a fixed
        ``seed`` (the same vectors each time)."""
        if isinstance(n, (int, np.integer)):  # Asked for by a user, not a batch size in a step.
            require(n >= 1, f"The number of examples must be positive, got {n}.")
        if seed is None:
            return distribute.normal((n, self.latent_dim), self.seed_generator)
        return keras.random.normal((n, self.latent_dim), seed=seed)

    def generate(self, n: int, seed: int | None = None) -> np.ndarray:
        """Generate ``n`` examples (numpy); a fixed ``seed`` gives the same examples each time."""
        generated_data = self._generate(self.random_latent_vectors(n, seed), None)
        return ops.convert_to_numpy(generated_data)


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
        latent_vectors = self.random_latent_vectors(len(labels), seed)
        return ops.convert_to_numpy(self._generate(latent_vectors, self._one_hot(labels)))
