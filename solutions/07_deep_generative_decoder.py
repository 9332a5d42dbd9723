# %% [markdown]
# # Lab 7: the Deep Generative Decoder
#
# A VAE needs two networks: a decoder that turns a code z into counts, and an encoder that
# guesses z from the counts. The **Deep Generative Decoder** (DGD; Schuster & Krogh,
# Bioinformatics 2023) drops the encoder. Each cell i simply *owns* a representation z_i, a
# vector of trainable numbers, and training finds the most probable values of everything at
# once (a maximum a posteriori, MAP, estimate):
#
# $$\min \sum_i \Big[-\log \mathrm{NB}\big(x_i;\ \ell_i\,\mathrm{decoder}(z_i),\ \theta\big) - \log p(z_i)\Big],
# \qquad p(z) = \sum_k w_k\, \mathcal{N}(z;\ \mu_k,\ \mathrm{diag}(\sigma_k^2)).$$
#
# The prior p(z) is a **Gaussian mixture** whose means, variances and weights are learned too:
# its components become clusters of cells. A new cell gets its representation by the same
# optimization, with the decoder and prior frozen.
#
# You will write the representation table, the mixture's log-density, the MAP training step
# and inference for new cells, and compare the representations with the NB VAE of lab 3.

# %%
import math
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from course import datasets, differential, likelihoods, metrics, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # the grader and CI run a tiny version
N_CELLS = 200 if SMOKE else None  # None: all the cells
EPOCHS = 2 if SMOKE else 150
INFERENCE_STEPS = 10 if SMOKE else 200
BATCH_SIZE = 64
LATENT_DIM = 10
keras.utils.set_random_seed(0)

# %% [markdown]
# ## The cells
#
# Raw counts of the bundled PBMC cells and their annotated cell types. We hold out 10% of the
# cells: they play the "new cells" that arrive after training.

# %%
adata = datasets.load_pbmc()
counts = datasets.counts(adata)[:N_CELLS]
cell_types, cell_type_names = datasets.labels(adata)
cell_types = cell_types[:N_CELLS]
order = np.random.default_rng(0).permutation(len(counts))
new_cells, train_cells = order[: len(counts) // 10], order[len(counts) // 10:]
train_counts, new_counts = counts[train_cells], counts[new_cells]
print(f"{len(train_cells)} training cells, {len(new_cells)} new cells, {counts.shape[1]} genes, "
      f"{len(cell_type_names)} cell types")

# %% [markdown]
# ## Exercise 7.1: representations as parameters
#
# A Keras layer can own weights that are not connected to any input. Here the layer holds a
# table with one row per cell; calling it with a batch of **cell indices** looks up their rows
# (`ops.take`, given below). Create the table in `__init__` with `self.add_weight`: shape
# `(n_cells, latent_dim)`, trainable, and started near the origin, where the prior has its mass
# (e.g. `keras.initializers.RandomNormal(stddev=0.01)`). Store it as `self.table`.
#
# Because the lookup is a gather, the gradient of a batch's loss reaches only the rows of the
# batch's cells: TensorFlow hands it over as `tf.IndexedSlices`, a sparse list of rows.

# %%
class Representations(keras.layers.Layer):
    """One trainable vector per cell, looked up by cell index."""

    def __init__(self, n_cells, latent_dim, **kwargs):
        super().__init__(**kwargs)
        ### BEGIN SOLUTION 7.1: self.table = self.add_weight(shape=..., initializer=..., name="table").
        self.table = self.add_weight(
            shape=(n_cells, latent_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            trainable=True,
            name="table",
        )
        ### END SOLUTION

    def call(self, cell_indices):
        return ops.take(self.table, cell_indices, axis=0)


check("7.1")

# %% [markdown]
# ## Exercise 7.2: the Gaussian-mixture prior
#
# Component k has weight w_k = softmax(weight_logits)_k, mean mu_k and a diagonal variance
# exp(log_variances_k). The log-density of one z sums over the components *inside* the log:
#
# $$\log p(z) = \log \sum_k \exp\Big(\log w_k + \sum_d \log \mathcal{N}(z_d;\ \mu_{kd},\ \sigma_{kd}^2)\Big),
# \qquad \log \mathcal{N}(z; \mu, \sigma^2) = -\tfrac12\Big(\log 2\pi + \log\sigma^2 + \frac{(z - \mu)^2}{\sigma^2}\Big).$$
#
# Far from every component each term underflows to exp(-1000) = 0 in float32, so compute the
# outer log-sum-exp with `ops.logsumexp`, and the log weights with `ops.log_softmax`. Return one
# value per row of z. (Broadcast z of shape (n, d) against the means (K, d) as z[:, None, :].
# Write constants as Python floats, `math.log(2 * math.pi)`: a numpy scalar in front of a Keras
# variable breaks inside `fit`, where the step runs as a graph.)

# %%
def gmm_log_density(z, means, log_variances, weight_logits):
    """log p(z) for each row of z under the Gaussian mixture."""
    ### BEGIN SOLUTION 7.2: per component: log w_k + sum over d of log N(z_d; mu_kd, sigma_kd^2); then logsumexp over k.
    difference = z[:, None, :] - means
    log_normal = -0.5 * (math.log(2.0 * math.pi) + log_variances
                         + ops.square(difference) / ops.exp(log_variances))
    log_joint = ops.sum(log_normal, axis=-1) + ops.log_softmax(weight_logits)
    return ops.logsumexp(log_joint, axis=-1)
    ### END SOLUTION


check("7.2")

# %% [markdown]
# ## Exercise 7.3: the MAP training step
#
# The model below holds a decoder (z -> each gene's share of the cell's transcripts), the
# representation table, the mixture's parameters and the negative binomial's inverse
# dispersions. Each batch is `(counts, cell_indices)`. Write the step:
#
# 1. under a `tf.GradientTape`, look up the batch's representations with
#    `self.representations(cell_indices)`;
# 2. compute the per-cell `reconstruction_loss` and `prior_loss` with the two helpers, and
#    their sum averaged over the batch, `loss`;
# 3. take the gradient of the loss with respect to `self.network_weights` (decoder, dispersion
#    and prior) **and** the representation table `self.representations.table`;
# 4. apply the first with `self.optimizer` and the table's with `self.representation_optimizer`.
#
# Why two optimizers? Adam keeps a momentum for every row of the table and would move the
# representations of *all* cells on every step; Adagrad (our representation optimizer) updates
# only the rows that received a gradient, the batch's cells.

# %%
def build_decoder(latent_dim, n_genes, hidden_units=64):
    z = keras.Input((latent_dim,))
    hidden = keras.layers.Dense(hidden_units, activation="relu")(z)
    return keras.Model(z, keras.layers.Dense(n_genes, activation="softmax")(hidden))


class LabDGD(keras.Model):
    """A small Deep Generative Decoder: representations, a mixture prior and a decoder."""

    def __init__(self, decoder, n_cells, n_components, **kwargs):
        super().__init__(**kwargs)
        latent_dim, n_genes = decoder.input_shape[-1], decoder.output_shape[-1]
        self.decoder = decoder
        self.representations = Representations(n_cells, latent_dim)
        self.means = self.add_weight(shape=(n_components, latent_dim), name="means",
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.log_variances = self.add_weight(shape=(n_components, latent_dim), name="log_var",
                                             initializer=keras.initializers.Constant(-1.0))
        self.weight_logits = self.add_weight(shape=(n_components,), initializer="zeros",
                                             name="weight_logits")
        self.log_theta = self.add_weight(shape=(n_genes,), initializer="zeros", name="log_theta")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.prior_loss_tracker = keras.metrics.Mean(name="prior_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_loss_tracker, self.prior_loss_tracker]

    @property
    def network_weights(self):
        return [*self.decoder.trainable_weights, self.log_theta, self.means, self.log_variances,
                self.weight_logits]

    def compile(self, optimizer, representation_optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        self.representation_optimizer = representation_optimizer

    def reconstruction_loss(self, counts, z):
        """-log p(x|z) of each cell: NB with mean library size * decoder(z)."""
        library = ops.sum(counts, axis=-1, keepdims=True)
        mu = library * self.decoder(z)
        return -ops.sum(likelihoods.negative_binomial(counts, mu, ops.exp(self.log_theta)),
                        axis=-1)

    def prior_loss(self, z):
        """-log p(z) of each representation under the mixture prior."""
        return -gmm_log_density(z, self.means, self.log_variances, self.weight_logits)

    def train_step(self, data):
        counts, cell_indices = data
        ### BEGIN SOLUTION 7.3: Steps 1-4 above; tape.gradient(loss, [*self.network_weights, table]).
        with tf.GradientTape() as tape:
            z = self.representations(cell_indices)
            reconstruction_loss = self.reconstruction_loss(counts, z)
            prior_loss = self.prior_loss(z)
            loss = ops.mean(reconstruction_loss + prior_loss)
        table = self.representations.table
        gradients = tape.gradient(loss, [*self.network_weights, table])
        self.optimizer.apply(gradients[:-1], self.network_weights)
        self.representation_optimizer.apply(gradients[-1:], [table])
        ### END SOLUTION
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.prior_loss_tracker.update_state(ops.mean(prior_loss))
        return {metric.name: metric.result() for metric in self.metrics}


check("7.3")

# %% [markdown]
# ## Training
#
# The batches carry the cells' indices (positions in the table) next to their counts. One
# mixture component per cell type.

# %%
dgd = LabDGD(build_decoder(LATENT_DIM, counts.shape[1]), n_cells=len(train_cells),
             n_components=len(cell_type_names))
dgd.compile(optimizer=keras.optimizers.Adam(1e-3),
            representation_optimizer=keras.optimizers.Adagrad(0.1))
batches = datasets.as_dataset((train_counts, np.arange(len(train_cells))), batch_size=BATCH_SIZE)
history = dgd.fit(batches, epochs=EPOCHS, verbose=2 if SMOKE else 0)
plots.history(history, title="DGD: the negative log posterior and its two terms",
              units="nats per cell");

# %% [markdown]
# The representations, projected on their first two principal components and coloured by the
# annotated cell type (which the DGD never saw):

# %%
train_z = ops.convert_to_numpy(dgd.representations.table)
print(f"kNN cell-type accuracy of the representations: "
      f"{metrics.latent_knn_accuracy(train_z, cell_types[train_cells], cv=3):.2f}")
plots.latent_scatter(metrics.pca_embedding(train_z, n_components=2), cell_types[train_cells],
                     cell_type_names, title="DGD representations (first 2 principal components)",
                     axis_labels=("PC 1", "PC 2"));

# %% [markdown]
# ## Exercise 7.4: representations for new cells
#
# A new cell has no row in the table. Its representation is found like the others, by
# minimizing its negative log posterior, but now **only z moves**: the decoder and the prior
# stay as trained. Write `infer_representations`:
#
# - a `keras.Variable` z that starts at `initial_z`, and a `keras.optimizers.Adam(learning_rate)`;
# - `steps` times: under a `tf.GradientTape`, the summed loss
#   `model.reconstruction_loss(counts, z) + model.prior_loss(z)`, its gradient with respect to
#   z alone, and `optimizer.apply`;
# - return z as a numpy array.

# %%
def infer_representations(model, counts, initial_z, steps, learning_rate=0.05):
    """MAP representations of new cells, with the model frozen."""
    ### BEGIN SOLUTION 7.4: gradients with respect to [z] only; optimizer.apply(gradients, [z]).
    z = keras.Variable(initial_z)
    optimizer = keras.optimizers.Adam(learning_rate)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = ops.sum(model.reconstruction_loss(counts, z) + model.prior_loss(z))
        gradients = tape.gradient(loss, [z])
        optimizer.apply(gradients, [z])
    return ops.convert_to_numpy(z)
    ### END SOLUTION


check("7.4")

# %% [markdown]
# Start every new cell at the mean of the component that explains it best, optimize, and ask
# a kNN classifier trained on the training cells' representations for the new cells' types.

# %%
def best_component_means(model, counts):
    """For each cell, the mixture component mean that is the most probable representation:
    the smallest -log p(x|z) - log p(z), where ``DGD.infer`` starts too."""
    means = ops.convert_to_numpy(model.means)
    losses = []
    for mean in means:
        z = np.repeat(mean[None], len(counts), axis=0)
        losses.append(model.reconstruction_loss(counts, z) + model.prior_loss(z))
    return means[np.argmin(np.stack(losses, axis=1), axis=1)]


start = best_component_means(dgd, new_counts)
new_z = infer_representations(dgd, new_counts, start, steps=INFERENCE_STEPS)
accuracy = metrics.latent_knn_accuracy(train_z, cell_types[train_cells], z_test=new_z,
                                       labels_test=cell_types[new_cells])
print(f"cell types of the new cells predicted from their inferred representations: {accuracy:.2f}")

# %% [markdown]
# ## The toolkit's DGD
#
# `course.models.DGD` is the same model with everything a real run needs: a hyperprior that
# keeps the mixture's variances sensible, input checks, two-replica training, saving and
# `infer(counts)`. `course run dgd-pbmc` trains it on all cells next to the NB VAE of lab 3 and
# PCA; `benchmarks/gallery_dgd.py` measures the comparison over three seeds.

# %% [markdown]
# ## Differential expression without controls
#
# A trained DGD also knows what a *reference* cell looks like. Prada-Luengo et al. (Genome
# Biology 2023) use that for differential expression of a single sample: infer its
# representation, decode it at its library size, and test every gene against that
# negative-binomial "closest reference". The two-sided p-value of an observed count is the
# probability of all counts no more likely than it. Genes with tiny p-values are the ones this
# one sample expresses differently: no control samples needed.
#
# Here, one new cell against the lab's DGD (trained on all cell types, so the closest reference
# is a similar cell): the genes it expresses most above its closest reference.

# %%
theta = np.exp(ops.convert_to_numpy(dgd.log_theta))
expected = new_counts.sum(axis=1, keepdims=True) * ops.convert_to_numpy(dgd.decoder(new_z))
p_values = differential.nb_two_sided_p_values(new_counts[:1], expected[:1], theta)[0]
above = np.where(new_counts[0] > expected[0], p_values, 1.0)
print(f"a new {cell_type_names[cell_types[new_cells[0]]]} cell, genes most above its closest "
      "reference:")
for gene in np.argsort(above)[:8]:
    print(f"  {adata.var_names[gene]:>10}: observed {new_counts[0, gene]:.0f}, "
          f"expected {expected[0, gene]:.1f}, p = {p_values[gene]:.1e}")

# %% [markdown]
# `course run dgd-de-pbmc` makes this a test: the DGD is trained **without the B cells**, every
# B cell is tested against its closest reference, and the genes are ranked by their mean signed
# -log10 p-value. Do the B cells' known markers (MS4A1, CD79A, CD79B, BANK1) come out on top?
# The demo scores that ranking against a t-test that *has* controls (B cells against all other
# cells). Measured over three seeds (`benchmarks/gallery_dgd_de.py`): marker AUROC 0.96 +- 0.01
# for the DGD without controls, 0.99 for the t-test with them; for held-out NK cells 0.91 +-
# 0.03 against 0.99. The t-test wins, and the DGD still finds B-cell genes without a single
# control cell. Markers that the NK cells share with a reference type (GNLY, NKG7 with the
# cytotoxic T cells) are not "different" from the closest reference: that is the question the
# DGD answers.

# %% [markdown]
# ## Summary
#
# - The DGD has no encoder: each cell's representation is a parameter, found by MAP.
# - Gathering a batch's rows gives sparse gradients; a per-row optimizer moves only those cells.
# - A Gaussian-mixture prior clusters the representations; its log-density needs logsumexp.
# - New cells are fitted by the same optimization, with the decoder and prior frozen.
# - Decoded at a new sample's library size, the DGD is a control for testing its genes one by
#   one: differential expression without control samples.

# %%
check_all(lab=7)
