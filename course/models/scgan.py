"""scGAN and cscGAN: Wasserstein GANs that generate single-cell expression profiles.

Marouf et al. (2020), "Realistic in silico generation and augmentation of single-cell RNA-seq
data using generative adversarial networks", Nature Communications 11:166. Two ideas on top of
WGAN-GP (:mod:`course.models.wgan`):

- Library-size normalization (LSN): real cells are scaled to one library size L (the paper uses
  20,000 counts), and the generator's output layer does the same to its ReLU outputs, so every
  generated cell is a non-negative profile of L counts with exact zeros where a gene is off.
- cscGAN, the conditional variant, asks for a cell type: the generator sees it next to the
  latent vector, and the critic uses a projection (Miyato & Koyama 2018): its score is
  ``w . h(x) + embedding(label) . h(x)`` for the critic's last hidden features ``h(x)``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from course import networks
from course.models.validation import (
    check_counts,
    check_labels,
    check_shape,
    input_arrays,
    requested_labels,
    split_pair,
)
from course.models.wgan import WassersteinGAN


@keras.saving.register_keras_serializable(package="course")
class LibrarySizeNormalization(layers.Layer):
    """scGAN's LSN output layer: ReLU, then scale each cell to ``library_size`` counts."""

    def __init__(self, library_size: float, **kwargs):
        super().__init__(**kwargs)
        self.library_size = float(library_size)

    def call(self, x):
        x = ops.relu(ops.cast(x, "float32"))
        return x / (ops.sum(x, axis=-1, keepdims=True) + 1e-8) * self.library_size

    def get_config(self) -> dict:
        return {**super().get_config(), "library_size": self.library_size}


@keras.saving.register_keras_serializable(package="course")
class ScGAN(WassersteinGAN):
    """scGAN (Marouf et al. 2020): a WGAN-GP with a library-size-normalized generator.

    Train on raw counts, ``fit(counts)`` (cells x genes); the model scales every cell to
    ``library_size`` counts itself. ``generate(n)`` returns cells on that scale. The critic
    looks at log1p of the normalized counts (counts span four orders of magnitude).

    Args:
        n_genes: number of genes per cell.
        latent_dim: size of the latent vector z (the paper: 128).
        generator_units: hidden widths of the generator (the paper: 256, 512, 1024).
        critic_units: hidden widths of the critic (the paper: 1024, 512, 256).
        library_size: counts per cell, real and generated (the paper: 20,000).
        n_critic: critic steps per generator step (the paper: 5).
        gp_weight: weight lambda of the gradient penalty (the paper: 10).
        seed: seed of the model's random number generator.
    """

    def __init__(
        self,
        n_genes: int,
        latent_dim: int = 64,
        generator_units: tuple[int, ...] = (256, 512),
        critic_units: tuple[int, ...] = (512, 256),
        library_size: float = 20000.0,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        seed: int = 1337,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("n_genes", n_genes), ("latent_dim", latent_dim)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}.")
        if library_size <= 0:
            raise ValueError(f"library_size must be positive, got {library_size}.")
        self.n_genes, self.latent_dim = int(n_genes), int(latent_dim)
        self.data_shape = (self.n_genes,)
        self.generator_units, self.critic_units = tuple(generator_units), tuple(critic_units)
        self.library_size = float(library_size)
        self.generator = self._build_generator()
        self.discriminator = self._build_critic()
        self._finish_init(n_critic, gp_weight, seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_genes": self.n_genes, "latent_dim": self.latent_dim,
                "generator_units": self.generator_units, "critic_units": self.critic_units,
                "library_size": self.library_size}

    def _condition_inputs(self) -> list:
        """Extra inputs of both networks: none here, the one-hot cell type in a cscGAN."""
        return []

    def _build_generator(self) -> keras.Model:
        latent = keras.Input((self.latent_dim,), name="latent")
        conditions = self._condition_inputs()
        x = layers.Concatenate(name="latent_and_label")([latent, *conditions]) if conditions \
            else latent
        x = networks.dense_stack(x, self.generator_units, activation="relu", name="hidden")
        x = layers.Dense(self.n_genes, name="gene_scores")(x)
        cells = LibrarySizeNormalization(self.library_size, dtype="float32", name="lsn")(x)
        return keras.Model([latent, *conditions] if conditions else latent, cells,
                           name="generator")

    def _build_critic(self) -> keras.Model:
        cells = keras.Input((self.n_genes,), name="cells")
        conditions = self._condition_inputs()
        # No dropout and no batch normalization: the gradient penalty needs each example's
        # score to depend on that example only.
        x = networks.dense_stack(ops.log1p(cells), self.critic_units, activation="relu",
                                 name="hidden")
        score = layers.Dense(1, dtype="float32", name="score")(x)
        if conditions:
            # Projection: add <embedding(label), h(x)>, the label's say in the score.
            embedding = layers.Dense(self.critic_units[-1], use_bias=False, name="label_embedding")
            projection = layers.Dot(axes=1, name="projection")([embedding(conditions[0]), x])
            score = layers.Add(dtype="float32", name="score_plus_projection")([score, projection])
        return keras.Model([cells, *conditions] if conditions else cells, score, name="critic")

    def normalize(self, counts):
        """Scale each cell (row) of ``counts`` to ``library_size`` counts."""
        counts = ops.cast(counts, "float32")
        return counts / ops.sum(counts, axis=-1, keepdims=True) * self.library_size

    def call(self, counts, training=False):
        """The critic's scores for a batch of raw counts (what fit() feeds the model)."""
        return self.discriminator(self.normalize(counts), training=training)

    def _unpack(self, data, what: str):
        counts, condition = super()._unpack(data, what)
        return self.normalize(counts), condition

    def check_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            check_counts(arrays[0], "The counts")

    def generate(self, n: int, seed: int | None = None) -> np.ndarray:
        """Generate ``n`` cells (numpy, each summing to ``library_size``); a fixed ``seed`` gives
        the same cells each time."""
        return ops.convert_to_numpy(self._generate(self._sample_latent(n, seed), None))


@keras.saving.register_keras_serializable(package="course")
class ConditionalScGAN(ScGAN):
    """cscGAN (Marouf et al. 2020): an scGAN that generates cells of a requested type.

    Train with ``fit((counts, cell_types))`` with integer cell types in [0, num_classes);
    ``generate(labels)`` returns one cell per requested type. The other arguments are those of
    :class:`ScGAN`.
    """

    def __init__(self, n_genes: int, num_classes: int, **kwargs):
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
        self.num_classes = int(num_classes)  # Needed while the parent builds the networks.
        super().__init__(n_genes, **kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}

    def _condition_inputs(self) -> list:
        return [keras.Input((self.num_classes,), name="one_hot_label")]

    def call(self, inputs, training=False):
        """The critic's scores for a batch ``(counts, labels)``."""
        counts, labels = inputs
        return self.discriminator([self.normalize(counts), self._one_hot(labels)],
                                  training=training)

    def check_arrays(self, *values) -> None:
        super().check_arrays(*values)
        arrays = input_arrays(*values)
        if len(arrays) == 2:
            check_labels(arrays[1], self.num_classes)

    def _one_hot(self, labels):
        return ops.one_hot(ops.reshape(ops.cast(labels, "int32"), (-1,)), self.num_classes)

    def _unpack(self, data, what: str):
        counts, labels = split_pair(data)
        counts = check_shape(counts, self.data_shape, what)
        return self.normalize(counts), self._one_hot(labels)

    def _generate(self, latent_vectors, one_hot_labels, training=False):
        return self.generator([latent_vectors, one_hot_labels], training=training)

    def _discriminate(self, cells, one_hot_labels, training=False):
        return self.discriminator([cells, one_hot_labels], training=training)

    def generate(self, labels, seed: int | None = None) -> np.ndarray:
        """Generate one cell per requested cell type (numpy); a fixed ``seed`` repeats them."""
        labels = requested_labels(labels, self.num_classes)
        latent_vectors = self._sample_latent(len(labels), seed)
        return ops.convert_to_numpy(self._generate(latent_vectors, self._one_hot(labels)))
