# %% [markdown]
# **Your copy of lab 1.** Fill in each exercise (the code that raises `NotImplementedError`)
# and run the `check("1.1")` cell below it for instant feedback; `check_all()` at the end
# scores the whole lab. Save often: your answers are kept in this file.
#
# *Working from the course's repository? Run `course labs start 01` first: it copies this
# lab into `my-labs/`, a folder of your own.*
#
# *Instructors: edit `solutions/01_keras_basics.py` instead and run `course labs build`, which
# never replaces a lab that has been edited.*
# <!-- generated from solutions/01_keras_basics.py by `course labs build`; fingerprint bde116b442768236 -->

# %%
# TensorFlow prints start-up lines (CUDA, oneDNN) that are no concern of this lab: start it
# quietly, before anything else imports it.
from course import import_tensorflow_quietly

import_tensorflow_quietly()

# %% [markdown]
# # Lab 1: Keras and TensorFlow for expression data
#
# A single-cell experiment gives a matrix: one row per cell, one column per gene. Deep
# generative models are neural networks trained on such matrices, so this lab walks through
# the Keras tools you will use in every later lab, on real blood cells:
#
# 1. tensors and `keras.ops`, by standardizing genes;
# 2. a dense autoencoder built with the functional API, trained with `fit`;
# 3. the same training written out by hand in a `train_step`, as every generative model in
#    this course does it.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import datasets, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # the grader and CI run a tiny version
EPOCHS = 2 if SMOKE else 60
BATCH_SIZE = 64
keras.utils.set_random_seed(0)

# %% [markdown]
# ## The data: peripheral blood mononuclear cells
#
# `load_pbmc` returns an AnnData: `X` holds log-normalized expression (each cell scaled to
# 10,000 counts, then log1p), `obs["cell_type"]` the annotated cell types. Without network
# access it uses the 700 cells that ship with scanpy.

# %%
adata = datasets.load_pbmc()
expression = np.asarray(adata.X, dtype="float32")
cell_types, cell_type_names = datasets.labels(adata)
n_cells, n_genes = expression.shape
print(f"{n_cells} cells x {n_genes} genes, {len(cell_type_names)} cell types")

# %% [markdown]
# ## Tensors and `keras.ops`
#
# `keras.ops` is NumPy's vocabulary (`ops.mean`, `ops.sum`, `ops.exp`, ...) for tensors that
# can live on a GPU and that TensorFlow can differentiate. Reductions take an `axis`: axis 0
# runs over cells, axis 1 (or -1) over genes.

# %%
tensor = ops.convert_to_tensor(expression)
gene_means = ops.mean(tensor, axis=0)
cell_totals = ops.sum(tensor, axis=1)
print("tensor:", tensor.shape, tensor.dtype)
print("one mean per gene:", gene_means.shape, " one total per cell:", cell_totals.shape)

figure, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].hist(ops.convert_to_numpy(gene_means), bins=50)
axes[0].set_xlabel("mean log-expression of a gene")
axes[1].imshow(expression[:60, :60], aspect="auto", cmap="viridis")
axes[1].set_xlabel("gene")
axes[1].set_ylabel("cell")
figure.tight_layout();

# %% [markdown]
# ## Exercise 1.1: standardize each gene
#
# Genes differ a lot in their average level and spread. Before feeding them to a network we
# give every gene mean 0 and standard deviation 1 over the cells:
#
# $$x'_{cg} = \frac{x_{cg} - \text{mean}_c(x_{cg})}{\text{std}_c(x_{cg}) + \epsilon}.$$
#
# Use `keras.ops` with the right `axis` and `keepdims=True` so the per-gene statistics
# broadcast over the cells. The small epsilon (1e-6) keeps genes that never change from
# dividing by zero.

# %%
def standardize(expression):
    """Each gene (column) centred to mean 0 and scaled to standard deviation 1 over cells."""
    raise NotImplementedError("Exercise 1.1: Centre each gene on its mean over the cells and divide by its standard deviation (+ epsilon).")


check("1.1")

# %%
standardized = ops.convert_to_numpy(standardize(expression))
figure, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
axes[0].hist(expression[:, :5], bins=30, histtype="step")
axes[0].set_title("five genes, log-normalized")
axes[1].hist(standardized[:, :5], bins=30, histtype="step")
axes[1].set_title("the same genes, standardized")
figure.tight_layout();

# %% [markdown]
# ## Exercise 1.2: an encoder with the functional API
#
# The functional API connects layers like functions, starting from a `keras.Input`:
#
# ```python
# inputs = keras.Input((n_genes,))
# hidden = layers.Dense(128, activation="relu")(inputs)
# ```
#
# Build the encoder of an autoencoder: from `n_genes` inputs, a hidden `Dense` layer of 128
# units with a ReLU, then a `Dense` layer of `latent_dim` units *without* activation (the
# code may be any real number). Return `keras.Model(inputs, outputs, name="encoder")`.

# %%
def build_encoder(n_genes, latent_dim):
    """A dense encoder: n_genes -> 128 (ReLU) -> latent_dim."""
    raise NotImplementedError("Exercise 1.2: From a keras.Input, a hidden Dense layer with a ReLU, then a code layer without activation.")


check("1.2")

# %% [markdown]
# The decoder mirrors it. Chaining the two gives the autoencoder, itself a functional model.
# With a 2-D code we can look at the cells directly.

# %%
LATENT_DIM = 2


def build_decoder(latent_dim, n_genes):
    """A dense decoder: latent_dim -> 128 (ReLU) -> n_genes."""
    code = keras.Input((latent_dim,), name="code")
    hidden = layers.Dense(128, activation="relu")(code)
    reconstruction = layers.Dense(n_genes, name="reconstruction")(hidden)
    return keras.Model(code, reconstruction, name="decoder")


encoder = build_encoder(n_genes, LATENT_DIM)
decoder = build_decoder(LATENT_DIM, n_genes)
inputs = keras.Input((n_genes,))
autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
autoencoder.summary()

# %% [markdown]
# ## Exercise 1.3: the reconstruction loss
#
# How far is the reconstruction from the cell? Use the squared error, **summed over genes**
# (the error of a whole cell) and **averaged over cells** (so the batch size does not matter):
#
# $$L = \frac{1}{n} \sum_{c=1}^{n} \sum_{g} (x_{cg} - \hat x_{cg})^2.$$
#
# Return a single number (a scalar tensor). This is the convention of every loss in the
# course: per-example losses are sums over features, averaged over the batch.

# %%
def reconstruction_loss(expression, reconstruction):
    """The squared error of each cell, summed over genes, averaged over cells."""
    raise NotImplementedError("Exercise 1.3: Each cell's squared error summed over its genes, then averaged over the cells.")


check("1.3")

# %% [markdown]
# ## Training with `fit`
#
# `compile` attaches an optimizer and a loss (Keras accepts our function as a loss), and `fit`
# runs mini-batch gradient descent. The autoencoder learns to rebuild the standardized cells
# from two numbers each.

# %%
autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=reconstruction_loss)
history = autoencoder.fit(standardized, standardized, epochs=EPOCHS, batch_size=BATCH_SIZE,
                          verbose=2 if SMOKE else 0)
plots.history(history, title="Autoencoder trained with fit");

# %% [markdown]
# ## Exercise 1.4: the training step, by hand
#
# `fit` calls the model's `train_step` once per batch. Generative models need their own step
# (two losses, two networks, sampling), so we write it ourselves. Subclass `keras.Model`, keep
# a `keras.metrics.Mean` tracker for the loss, and in `train_step`:
#
# 1. inside `with tf.GradientTape() as tape:` reconstruct the batch with `self(expression,
#    training=True)` and compute `loss` with your `reconstruction_loss`;
# 2. `gradients = tape.gradient(loss, self.trainable_weights)`;
# 3. `self.optimizer.apply(gradients, self.trainable_weights)`.
#
# The tracker update and the returned logs are written for you.

# %%
class Autoencoder(keras.Model):
    """An encoder and a decoder trained to reconstruct their input, with a hand-written step."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, expression, training=False):
        return self.decoder(self.encoder(expression, training=training), training=training)

    def train_step(self, data):
        expression, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        raise NotImplementedError("Exercise 1.4: Steps 1-3 above: forward pass and loss under the tape, then the gradients and the update.")
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


check("1.4")

# %% [markdown]
# Train it from scratch and compare with `fit`'s built-in step: the two curves should look
# alike, because the two steps compute the same thing.

# %%
custom = Autoencoder(build_encoder(n_genes, LATENT_DIM), build_decoder(LATENT_DIM, n_genes))
custom.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
custom_history = custom.fit(standardized, epochs=EPOCHS, batch_size=BATCH_SIZE,
                            verbose=2 if SMOKE else 0)
plt.figure(figsize=(5, 3))
plt.plot(history.history["loss"], label="built-in train_step")
plt.plot(custom_history.history["loss"], label="your train_step")
plt.xlabel("epoch")
plt.ylabel("reconstruction loss")
plt.legend();

# %% [markdown]
# ## The cells in the 2-D code
#
# Nobody told the autoencoder about cell types, yet cells of the same type land close
# together: the code keeps what matters most for rebuilding the expression profile.

# %%
codes = custom.encoder.predict(standardized, verbose=0)
plots.latent_scatter(codes, cell_types, cell_type_names, title="Cells in the autoencoder's code");

# %% [markdown]
# ## Summary
#
# - `keras.ops` reductions take an `axis`: 0 over cells, -1 over genes.
# - The functional API builds models from `keras.Input`; models can be chained like layers.
# - A `train_step` is: forward pass and loss under a `GradientTape`, gradients, `apply`.
#   Lab 2 adds sampling and a second loss term to exactly this step.

# %%
check_all(lab=1)
