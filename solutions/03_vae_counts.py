# %% [markdown]
# # Lab 3: a VAE for single-cell counts
#
# A single-cell RNA-seq experiment counts the transcripts of each gene in each cell. Counts
# are not Gaussian: most are 0, a few are large, and a cell that was sequenced twice as deeply
# shows about twice the counts everywhere. scVI's answer, which we rebuild here, is a VAE whose
# decoder describes the counts directly:
#
# - the decoder outputs each gene's **share** of the cell's transcripts (a softmax);
# - multiplied by the cell's **library size** (its total count) this gives the expected count
#   mu of each gene;
# - the counts follow a **negative binomial** with mean mu and a per-gene inverse dispersion
#   theta.
#
# You will write the negative binomial log-likelihood and the library-size scaling, train the
# toolkit's count VAE, compare its latent space with PCA, and use it to denoise expression.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import ops
from scipy import stats

from course import datasets, metrics, models, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # the grader and CI run a tiny version
EPOCHS = 3 if SMOKE else 150
BATCH_SIZE = 128
LATENT_DIM = 10
keras.utils.set_random_seed(0)

# %% [markdown]
# ## The counts
#
# `datasets.counts(adata)` gives the raw integer counts (as float32), `adata.X` their
# log-normalized version. Count models must see the raw counts.

# %%
adata = datasets.load_pbmc()
counts = datasets.counts(adata)
cell_types, cell_type_names = datasets.labels(adata)
library_size = counts.sum(axis=1)
print(f"{counts.shape[0]} cells x {counts.shape[1]} genes; {np.mean(counts == 0):.0%} zeros; "
      f"library sizes from {library_size.min():.0f} to {library_size.max():.0f}")

# %% [markdown]
# Why not a Poisson distribution? For a Poisson the variance equals the mean. Real genes vary
# much more than that between cells (even after dividing out the library size): they are
# **overdispersed**. The negative binomial has variance mu + mu²/theta, the Poisson's plus an
# extra term that a small theta makes large.

# %%
shares = counts / library_size[:, None] * np.median(library_size)
gene_mean, gene_variance = shares.mean(axis=0), shares.var(axis=0)
plt.figure(figsize=(5, 4))
grid = np.logspace(np.log10(gene_mean.min()), np.log10(gene_mean.max()), 100)
plt.loglog(gene_mean, gene_variance, ".", alpha=0.4, label="genes")
plt.loglog(grid, grid, label="Poisson: variance = mean")
plt.loglog(grid, grid + grid**2 / 2.0, label="NB, theta = 2")
plt.xlabel("mean count per cell")
plt.ylabel("variance")
plt.legend();

# %% [markdown]
# ## Exercise 3.1: the negative binomial log-likelihood
#
# With mean mu and inverse dispersion theta, the probability of a count x is
#
# $$\log \mathrm{NB}(x; \mu, \theta) = \log\Gamma(x + \theta) - \log\Gamma(\theta) - \log\Gamma(x + 1)
#   + \theta \log\frac{\theta}{\theta + \mu} + x \log\frac{\mu}{\theta + \mu}.$$
#
# The three log-gamma terms are the log of the binomial coefficient; `keras.ops` has no
# log-gamma, so use `tf.math.lgamma`. Return one value per entry (the shape of x; theta may
# be one value per gene and broadcasts over cells). Add a tiny `EPSILON` inside the logarithms
# so a mean of exactly 0 gives no `-inf`.

# %%
EPSILON = 1e-8


def nb_log_likelihood(x, mu, theta):
    """log NB(x; mean mu, inverse dispersion theta), element by element."""
    ### BEGIN SOLUTION 3.1: The formula above, term by term (keras.ops has no log-gamma: tf.math.lgamma).
    log_theta_mu = ops.log(theta + mu + EPSILON)
    return (
        tf.math.lgamma(x + theta)
        - tf.math.lgamma(theta)
        - tf.math.lgamma(x + 1.0)
        + theta * (ops.log(theta + EPSILON) - log_theta_mu)
        + x * (ops.log(mu + EPSILON) - log_theta_mu)
    )
    ### END SOLUTION


check("3.1")

# %% [markdown]
# The toolkit's `likelihoods.negative_binomial` computes the same thing with TensorFlow
# Probability, and so does scipy's `stats.nbinom` with n = theta and p = theta / (theta + mu).
# Same mean, different theta: a small theta piles probability on 0 *and* on large counts.

# %%
values = np.arange(30, dtype="float32")
mine = nb_log_likelihood(values, 5.0, 2.0)
reference = stats.nbinom.logpmf(values, 2.0, 2.0 / (2.0 + 5.0))
print("largest difference from scipy.stats.nbinom:",
      float(np.max(np.abs(ops.convert_to_numpy(mine) - reference))))
plt.figure(figsize=(6, 3.5))
for theta in [0.5, 2.0, 50.0]:
    plt.plot(values, np.exp(ops.convert_to_numpy(nb_log_likelihood(values, 5.0, theta))),
             "o-", markersize=3, label=f"theta = {theta}")
plt.plot(values, stats.poisson.pmf(values, 5.0), "k--", label="Poisson")
plt.xlabel("count x (mean 5)")
plt.ylabel("probability")
plt.legend();

# %% [markdown]
# ## Exercise 3.2: scale the decoder by the library size
#
# The decoder's last layer gives one number per gene, `gene_logits`. A softmax over the genes
# turns them into shares that sum to 1, and the cell's library size (its counts summed over
# genes) turns shares into expected counts:
#
# $$\mu_{cg} = \ell_c \cdot \mathrm{softmax}(\text{gene\_logits}_c)_g, \qquad \ell_c = \sum_g x_{cg}.$$
#
# This way the network only learns *what* a cell expresses; *how deeply* it was sequenced
# comes from the data. Keep the library size as a column (`keepdims=True`) so it broadcasts.

# %%
def expected_counts(gene_logits, counts):
    """mu: each cell's library size times the softmax (over genes) of its gene logits."""
    ### BEGIN SOLUTION 3.2: Each cell's gene shares from its logits, scaled by the cell's library size.
    library = ops.sum(counts, axis=-1, keepdims=True)
    return library * ops.softmax(gene_logits, axis=-1)
    ### END SOLUTION


check("3.2")

# %% [markdown]
# ## Training the count VAE
#
# `models.VAE(likelihood="nb")` puts both of your pieces inside a VAE (its `log_likelihood`
# in `course/models/vae.py` is worth reading): the encoder sees log1p(counts), the decoder ends
# in the softmax, and theta is one trainable number per gene. Fit it on the **raw counts**;
# it refuses normalized data.

# %%
vae = models.VAE(data_shape=(counts.shape[1],), latent_dim=LATENT_DIM, likelihood="nb",
                 hidden_units=(128, 64), seed=0)
vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
history = vae.fit(counts, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=2 if SMOKE else 0)
plots.history(history, title="Count VAE: negative ELBO and its terms");

# %% [markdown]
# Your two functions give the model's reconstruction term. Decode a few cells' codes with a
# library size of 1, which gives the gene shares; their log serves as gene logits (the softmax
# of log-shares gives the shares back). Compare with the model's own `log_likelihood`.

# %%
some_cells = counts[:50]
z = vae.encode(some_cells)
gene_logits = np.log(vae.decode(z, library_size=1.0))
theta = ops.exp(vae.log_theta)
yours = ops.sum(nb_log_likelihood(some_cells, expected_counts(gene_logits, some_cells), theta),
                axis=-1)
toolkit = vae.log_likelihood(some_cells, z)
print("log p(x|z) of the first cells, yours:  ", np.round(ops.convert_to_numpy(yours)[:4], 1))
print("log p(x|z) of the first cells, toolkit:", np.round(ops.convert_to_numpy(toolkit)[:4], 1))

# %% [markdown]
# ## The latent space against PCA
#
# A good representation puts cells of the same type close together. Score it with the
# accuracy of a k-nearest-neighbour classifier of the cell types (cross-validated), for the
# 10-D VAE codes and for the first 10 principal components of the log-normalized data.

# %%
codes = vae.encode(counts)
principal_components = metrics.pca_embedding(adata.X, n_components=LATENT_DIM)
print(f"kNN accuracy of the cell types: VAE {metrics.latent_knn_accuracy(codes, cell_types):.2f}, "
      f"PCA {metrics.latent_knn_accuracy(principal_components, cell_types):.2f}")

# %%
figure = plots.latent_scatter(metrics.pca_embedding(codes, n_components=2), cell_types,
                              cell_type_names, title="VAE codes (first 2 principal components)")
figure.axes[0].set_xlabel("PC 1 of the VAE codes")
figure.axes[0].set_ylabel("PC 2 of the VAE codes");

# %% [markdown]
# ## Exercise 3.3: denoised expression
#
# `vae.reconstruct(counts)` encodes each cell and decodes its expected counts: the model's
# estimate of the expression without the sampling noise. To compare it with `adata.X`, put it
# on the same scale: divide each cell by its total, multiply by 10,000, and take log1p.
# Return a numpy array of shape (cells, genes).

# %%
def denoised_expression(vae, counts):
    """log1p of the reconstructed counts, each cell scaled to 10,000 in total."""
    ### BEGIN SOLUTION 3.3: The model's reconstruction on adata.X's scale: 10,000 counts per cell, then log1p.
    expected = vae.reconstruct(counts)
    return np.log1p(expected / expected.sum(axis=1, keepdims=True) * 1e4)
    ### END SOLUTION


check("3.3")

# %% [markdown]
# Two marker genes, before and after: the denoised values separate the cell types more
# clearly, and the zeros that were only sampling noise are filled in.

# %%
denoised = denoised_expression(vae, counts)
gene_pair = [name for name in ["CST3", "NKG7"] if name in adata.var_names]
columns = [adata.var_names.get_loc(name) for name in gene_pair] or [0, 1]
figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for axis, values, title in [(axes[0], np.asarray(adata.X), "log-normalized counts"),
                            (axes[1], denoised, "denoised by the VAE")]:
    for code, name in enumerate(cell_type_names):
        chosen = cell_types == code
        axis.scatter(values[chosen, columns[0]], values[chosen, columns[1]], s=5, label=name)
    axis.set_title(title)
    axis.set_xlabel(gene_pair[0] if gene_pair else "gene 0")
axes[0].set_ylabel(gene_pair[1] if gene_pair else "gene 1")
axes[1].legend(fontsize=7, markerscale=2, bbox_to_anchor=(1.02, 1), loc="upper left")
figure.tight_layout();

# %% [markdown]
# ## Summary
#
# - Counts need a count likelihood; the negative binomial handles overdispersion.
# - The decoder learns shares; the observed library size scales them to counts.
# - The VAE's codes separate cell types at least as well as PCA, and its reconstructions
#   are denoised expression.

# %%
check_all(lab=3)
