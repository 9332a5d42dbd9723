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
from keras import layers, ops

from course import networks
from course.models.adversarial import OneHotConditioned
from course.models.base import Configurable
from course.models.validation import (
    assert_batch,
    at_least,
    input_arrays,
    require,
    validate_count_matrix,
)
from course.models.wgan import WassersteinGAN


@keras.saving.register_keras_serializable(package="course")
class LibrarySizeNormalization(Configurable, layers.Layer):
    """scGAN's LSN output layer: ReLU, then scale each cell to ``library_size`` counts."""

    def __init__(self, library_size: float, **kwargs):
        super().__init__(**kwargs)
        self.library_size = float(library_size)

    def call(self, x):
        x = ops.relu(ops.cast(x, "float32"))
        return x / (ops.sum(x, axis=-1, keepdims=True) + 1e-8) * self.library_size


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
        **kwargs: ``n_critic`` (the paper: 5), ``gp_weight`` (the paper: 10) and ``seed`` of
            :class:`~course.models.wgan.WassersteinGAN`, whose defaults are the paper's.
    """

    def __init__(
        self,
        n_genes: int,
        latent_dim: int = 64,
        generator_units: tuple[int, ...] = (256, 512),
        critic_units: tuple[int, ...] = (512, 256),
        library_size: float = 20000.0,
        **kwargs,
    ):
        at_least("n_genes", n_genes)
        at_least("latent_dim", latent_dim)
        require(library_size > 0, f"library_size must be positive, got {library_size}.")
        self.n_genes, self.latent_dim = int(n_genes), int(latent_dim)
        self.data_shape = (self.n_genes,)
        self.generator_units, self.critic_units = tuple(generator_units), tuple(critic_units)
        self.library_size = float(library_size)
        super().__init__(**kwargs)

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

    is_count_model = True  # An AnnData is read from layers["counts"] when it has one.

    def normalize(self, counts):
        """Scale each cell (row) of ``counts`` to ``library_size`` counts."""
        counts = ops.cast(counts, "float32")
        return counts / ops.sum(counts, axis=-1, keepdims=True) * self.library_size

    def validate_batch(self, counts):
        """A batch of counts after the GAN's checks (shape, no NaN) and a check that they are
        non-negative (raw or library-size normalized counts, not log-transformed data)."""
        counts = super().validate_batch(counts)
        return assert_batch(counts, ops.greater_equal(counts, 0),
                            "The counts have negative values: the model needs raw (or library-"
                            "size normalized) counts, not log-transformed or scaled data. Pass "
                            "datasets.counts(adata).")

    def _unpack(self, data):
        """The checked counts of a batch, each cell scaled to ``library_size`` counts."""
        counts, condition = super()._unpack(data)
        return self.normalize(counts), condition

    def validate_arrays(self, *values) -> None:
        arrays = input_arrays(*values)
        if arrays:
            validate_count_matrix(arrays[0], "The counts")


@keras.saving.register_keras_serializable(package="course")
class ConditionalScGAN(OneHotConditioned, ScGAN):
    """cscGAN (Marouf et al. 2020): an scGAN that generates cells of a requested type.

    Train with ``fit((counts, cell_types))`` with integer cell types in [0, num_classes);
    ``generate(labels)`` returns one cell per requested type. The other arguments are those of
    :class:`ScGAN`.
    """

    def __init__(self, n_genes: int, num_classes: int, **kwargs):
        at_least("num_classes", num_classes, 2)
        self.num_classes = int(num_classes)  # Needed while the parent builds the networks.
        super().__init__(n_genes, **kwargs)

    def _unpack(self, data):
        """The checked counts (scaled to ``library_size``) and one-hot labels of a batch."""
        counts, one_hot_labels = super()._unpack(data)
        return self.normalize(counts), one_hot_labels
