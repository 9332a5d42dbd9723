"""VEGA: a VAE whose latent variables are the activities of known gene modules.

Seninge, Anastopoulos, Ding & Stuart, "VEGA is an interpretable generative model for inferring
biological network activity in single-cell transcriptomics", Nature Communications 12, 5684
(2021); code: github.com/LucasESBS/vega.

The encoder is the VAE's. The decoder is ONE linear layer from z to the genes whose weight
matrix W (latent x genes) is multiplied by a fixed mask M: M[k, g] = 1 when gene g belongs to
module k. So latent variable k can only move the genes of module k, and its value in a cell
reads as that module's activity. Extra "unannotated" latent variables have an all-ones mask
row: they soak up what the modules do not explain. As in VEGA's default
(``positive_decoder=True``) the weights are kept non-negative, so a higher activity means more
of the module's genes.

For counts we follow VEGA's count variant (VegaSCVI) and the NB VAE of this package:

    share(z) = softmax(z @ (W * M) + b),   x | z ~ NB(library * share(z), theta)

and the objective is the VAE's negative ELBO, trained by :meth:`VAE.train_step` in
``vae.py`` unchanged: only the decoder differs.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from course.models.vae import VAE
from course.models.validation import at_least, one_of, require

LIKELIHOODS = ("nb", "poisson", "gaussian")


@keras.saving.register_keras_serializable(package="course")
class MaskedDense(layers.Layer):
    """A Dense layer whose kernel is multiplied by a fixed 0/1 ``mask`` (inputs x units).

    A masked weight neither acts in the forward pass nor receives a gradient. With
    ``non_negative=True`` the kernel is clipped at 0 after every optimizer step.
    """

    def __init__(self, mask, non_negative: bool = True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.mask = np.asarray(mask, dtype="float32")
        self.non_negative = bool(non_negative)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        n_inputs, units = self.mask.shape
        require(input_shape[-1] == n_inputs,
                f"MaskedDense expects {n_inputs} inputs (its mask's rows), got {input_shape[-1]}.")
        self.kernel = self.add_weight(
            shape=(n_inputs, units), name="kernel",
            # Small positive weights: a module starts by raising its genes a little.
            initializer=keras.initializers.RandomUniform(0.0, 0.1) if self.non_negative
            else "glorot_uniform",
            constraint=keras.constraints.NonNeg() if self.non_negative else None,
        )
        self.bias = self.add_weight(shape=(units,), initializer="zeros", name="bias")

    def masked_kernel(self):
        """The weights in use: the kernel times the mask."""
        return self.kernel * ops.convert_to_tensor(self.mask, dtype=self.kernel.dtype)

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.masked_kernel()) + self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "mask": self.mask.tolist(),
                "non_negative": self.non_negative,
                "activation": keras.activations.serialize(self.activation)}


def module_mask(gene_names, gene_modules: dict, n_unannotated: int) -> np.ndarray:
    """The decoder mask (modules + unannotated nodes) x genes; a module with no gene of
    ``gene_names`` is a ValueError."""
    index = {str(gene): position for position, gene in enumerate(gene_names)}
    require(len(index) == len(gene_names), "gene_names has duplicates; make them unique.")
    mask = np.zeros((len(gene_modules) + n_unannotated, len(gene_names)), "float32")
    for row, (name, genes) in enumerate(gene_modules.items()):
        columns = [index[str(gene)] for gene in genes if str(gene) in index]
        require(columns, f"Module {name!r} has none of its genes ({', '.join(map(str, genes))}) "
                         "among gene_names: drop the module or check the gene names (symbols "
                         "vs Ensembl ids, letter case).")
        mask[row, columns] = 1.0
    mask[len(gene_modules):] = 1.0  # Unannotated nodes reach every gene.
    return mask


@keras.saving.register_keras_serializable(package="course")
class VEGA(VAE):
    """VEGA of Seninge et al. (2021): latent variables = gene-module activities.

    Fit it on raw counts of the genes ``gene_names`` (columns in that order), then
    ``encode(counts)`` gives one column per module (in ``module_names`` order, the unannotated
    nodes last) and :meth:`module_weights` the non-negative gene weights of each module.

    Args:
        gene_names: the genes (columns of the data), e.g. ``list(adata.var_names)``.
        gene_modules: module name -> its genes (genes not in ``gene_names`` are ignored), e.g.
            ``course.datasets.markers.PBMC_MARKERS``.
        n_unannotated: fully connected latent variables added after the modules (VEGA's
            ``add_nodes``, default 1).
        hidden_units: widths of the encoder's Dense layers (default: the NB VAE's (128,)).
        likelihood: "nb" (default, raw counts), "poisson", or "gaussian" (log-normalized data,
            VEGA's original MSE objective up to a constant).
        beta: weight of the KL term, as in :class:`VAE`.
        batch_norm, seed: as in :class:`VAE`.
    """

    def __init__(self, gene_names, gene_modules: dict, n_unannotated: int = 1,
                 hidden_units: tuple[int, ...] | None = None, likelihood: str = "nb",
                 beta: float = 1.0, batch_norm: bool = False, seed: int | None = None, **kwargs):
        one_of("likelihood", likelihood, LIKELIHOODS)
        at_least("n_unannotated", n_unannotated, 0)
        require(isinstance(gene_modules, dict) and len(gene_modules) > 0,
                "gene_modules must be a dict of module name -> list of genes, with at least "
                "one module.")
        self.gene_names = [str(gene) for gene in gene_names]
        self.gene_modules = {str(name): [str(gene) for gene in genes]
                             for name, genes in gene_modules.items()}
        self.n_unannotated = int(n_unannotated)
        self.mask = module_mask(self.gene_names, self.gene_modules, self.n_unannotated)
        super().__init__(data_shape=(len(self.gene_names),), latent_dim=len(self.mask),
                         hidden_units=hidden_units, likelihood=likelihood, beta=beta,
                         linear_decoder=True, batch_norm=batch_norm, seed=seed, **kwargs)

    @property
    def module_names(self) -> list[str]:
        """The name of each latent variable: the modules, then ``unannotated_0`` ...."""
        return [*self.gene_modules, *(f"unannotated_{i}" for i in range(self.n_unannotated))]

    def _build_decoder(self) -> keras.Model:
        z = keras.Input((self.latent_dim,), name="z")
        # Each gene's share of the cell's transcripts (counts), or its mean (gaussian); module
        # k reaches only its own genes.
        activation = "softmax" if self.is_count_model else None
        outputs = MaskedDense(self.mask, activation=activation, dtype="float32",
                              name="modules")(z)
        return keras.Model(z, outputs, name="decoder")

    def module_weights(self) -> np.ndarray:
        """Gene weights of each latent variable, shape (n_genes, latent_dim): zero outside its
        module; the largest are the module's drivers in the trained model."""
        return ops.convert_to_numpy(self.decoder.get_layer("modules").masked_kernel()).T.copy()

    def loadings(self) -> np.ndarray:
        """As :meth:`module_weights` (the LDVAE name)."""
        return self.module_weights()

    def get_config(self) -> dict:
        config = super().get_config()
        # Derived from gene_names and gene_modules, not arguments of VEGA's constructor.
        for derived in ("data_shape", "latent_dim", "network", "linear_decoder"):
            config.pop(derived, None)
        return config
