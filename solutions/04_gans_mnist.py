# %% [markdown]
# # Lab 4: Generative adversarial networks on MNIST
#
# A GAN is a game between two networks. The **generator** G turns random latent vectors z into
# images; the **discriminator** D looks at an image and outputs a *logit*, its log-odds that the
# image is real. D is trained to tell real digits from generated ones, G to fool D. Neither
# network ever sees a likelihood: the only thing G learns from is D's opinion.
#
# In this lab you write the two losses, see why the original generator loss stalls, write the
# training step that alternates the two players, and finally draw chosen digits from a
# conditional GAN.

# %%
import os
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import ops

from course import datasets, metrics, models, networks, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"
N_IMAGES = 512 if SMOKE else None  # None: all the training digits
EPOCHS = 1 if SMOKE else 30
CGAN_EPOCHS = 1 if SMOKE else 20
LATENT_DIM = 32
BATCH_SIZE = 64
keras.utils.set_random_seed(0)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", datasets.BundledDataWarning)
    x_train, y_train = datasets.load_mnist("train")
x_train, y_train = x_train[:N_IMAGES], y_train[:N_IMAGES]
print(f"{len(x_train)} training digits of shape {x_train.shape[1:]}, pixels in [0, 1]")

# %% [markdown]
# This is what the generator must learn to imitate.

# %%
plots.image_grid(x_train[:20], n_cols=10, title="Real MNIST digits");

# %% [markdown]
# ## Exercise 4.1: the discriminator loss
#
# D is a binary classifier: real images have label 1, generated images label 0. Its loss is the
# binary cross-entropy (BCE) of both halves of the batch:
#
# $$L_D = \mathrm{mean}\,\mathrm{BCE}(1, D(x)) + \mathrm{mean}\,\mathrm{BCE}(0, D(G(z)))$$
#
# D outputs logits, not probabilities, so use `from_logits=True`: it is numerically safer than a
# sigmoid followed by a logarithm.
#
# Write `discriminator_loss(real_logits, fake_logits)`. Both arguments have shape
# `(batch, 1)`; return a scalar. `ops.binary_crossentropy(targets, logits, from_logits=True)`
# gives the per-example loss, and `ops.ones_like` / `ops.zeros_like` make the labels.

# %%
def discriminator_loss(real_logits, fake_logits):
    """Mean BCE for calling real images real (1) plus mean BCE for calling fakes fake (0)."""
    ### BEGIN SOLUTION 4.1: D's loss has a term for the real images and one for the fakes, each averaged over its half of the batch.
    real_loss = ops.binary_crossentropy(ops.ones_like(real_logits), real_logits, from_logits=True)
    fake_loss = ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)
    return ops.mean(real_loss) + ops.mean(fake_loss)
    ### END SOLUTION


check("4.1")

# %% [markdown]
# ## Exercise 4.2: the non-saturating generator loss
#
# The original GAN paper writes the game as a minimax problem: G *minimizes*
# $\log(1 - D(G(z)))$, exactly the opposite of D's loss on fakes. This is the **saturating**
# loss. In practice everybody uses the **non-saturating** loss instead: G *maximizes*
# $\log D(G(z))$, i.e. it minimizes the BCE of its images against the label "real":
#
# $$L_G^{\text{non-saturating}} = \mathrm{mean}\,\mathrm{BCE}(1, D(G(z))) = -\mathrm{mean}\log D(G(z))$$
#
# $$L_G^{\text{saturating}} = \mathrm{mean}\log(1 - D(G(z))) = -\mathrm{mean}\,\mathrm{BCE}(0, D(G(z)))$$
#
# Both are minimized by the same thing, fooling D. They differ in *how hard they push*.
#
# Write the non-saturating generator loss from the logits D gives generated images.

# %%
def non_saturating_generator_loss(fake_logits):
    """-mean log D(G(z)): the BCE of the fakes against the label "real"."""
    ### BEGIN SOLUTION 4.2: Which label does G want D to give its images? Score the fake logits against it.
    return ops.mean(
        ops.binary_crossentropy(ops.ones_like(fake_logits), fake_logits, from_logits=True)
    )
    ### END SOLUTION


check("4.2")

# %% [markdown]
# ## Exercise 4.3: the saturating generator loss
#
# Now write the saturating loss, $\mathrm{mean}\log(1 - D(G(z)))$. Hint: it is minus D's own
# loss on the fakes.

# %%
def saturating_generator_loss(fake_logits):
    """mean log(1 - D(G(z))): the original minimax generator loss."""
    ### BEGIN SOLUTION 4.3: log(1 - D(G(z))) is related to D's own loss on the fakes: mind the sign.
    return -ops.mean(
        ops.binary_crossentropy(ops.zeros_like(fake_logits), fake_logits, from_logits=True)
    )
    ### END SOLUTION


check("4.3")

# %% [markdown]
# Let us plot both losses, and the size of the gradient that reaches the generator, as functions
# of $D(G(z))$. At the start of training the fakes are bad, D easily spots them, and
# $D(G(z))$ is close to 0: that is the left edge of the plots.

# %%
def loss_and_gradient(loss_function, logit):
    """The generator loss of one fake image with logit ``logit``, and its derivative."""
    logit = tf.constant([[logit]], dtype="float32")
    with tf.GradientTape() as tape:
        tape.watch(logit)
        loss = loss_function(logit)
    return float(loss), float(tape.gradient(loss, logit)[0, 0])


probabilities = np.linspace(0.005, 0.995, 100)
figure, (loss_axis, gradient_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
for name, loss_function in [("non-saturating", non_saturating_generator_loss),
                            ("saturating", saturating_generator_loss)]:
    values = [loss_and_gradient(loss_function, np.log(p / (1 - p))) for p in probabilities]
    losses, gradients = np.array(values).T
    loss_axis.plot(probabilities, losses, label=name)
    gradient_axis.plot(probabilities, np.abs(gradients), label=name)
loss_axis.set(xlabel="D(G(z))", ylabel="generator loss", title="Loss")
gradient_axis.set(xlabel="D(G(z))", ylabel="|d loss / d logit|", title="Gradient to the generator")
gradient_axis.legend()
figure.tight_layout()

# %% [markdown]
# Where the generator is bad ($D(G(z)) \approx 0$), the saturating loss is flat: its gradient
# vanishes and G learns nothing, exactly when it most needs to learn. The non-saturating loss
# has its steepest gradient there. Same fixed point, much better training dynamics.
#
# ## Exercise 4.4: the two-player training step
#
# Each step plays one round of the game on a batch of real images:
# 1. **Discriminator update.** Generate fakes from fresh noise, compute `discriminator_loss` on
#    real and fake logits, and apply its gradient to the discriminator's weights only.
# 2. **Generator update.** Generate fakes from new noise and label them "real" (the
#    *misleading labels*): the BCE against these labels is the non-saturating loss. Apply its
#    gradient to the **generator's weights only**: D must not learn to be fooled.
#
# The class below is complete except for `train_step`. Each player has its own optimizer.
# Write `train_step`. Draw noise with
# `keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)`, use a
# `tf.GradientTape` per player, and finish with
# `return self.update_trackers(d_loss=d_loss, g_loss=g_loss)`.

# %%
class SmallGAN(keras.Model):
    """A small dense GAN with one optimizer per player."""

    def __init__(self, data_shape, latent_dim=32, hidden_units=(256,), seed=0, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        latent = keras.Input((latent_dim,))
        hidden = networks.dense_stack(latent, hidden_units, activation="leaky_relu")
        images = networks.output_layer(hidden, data_shape, activation="sigmoid")
        self.generator = keras.Model(latent, images, name="generator")
        data = keras.Input(data_shape)
        hidden = keras.layers.Flatten()(data)
        hidden = networks.dense_stack(hidden, hidden_units[::-1], activation="leaky_relu")
        self.discriminator = keras.Model(data, keras.layers.Dense(1)(hidden), name="discriminator")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, images):
        return self.discriminator(images)

    def compile(self, d_optimizer, g_optimizer):
        super().compile(optimizer=None)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def update_trackers(self, d_loss, g_loss):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        ### BEGIN SOLUTION 4.4: Two rounds, D then G, each with fresh noise, its own tape, its own loss and its own optimizer applied to its own network's weights.
        # Train the discriminator on real images and on fakes from fresh noise.
        random_latent_vectors = keras.random.normal(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )
        generated_images = self.generator(random_latent_vectors)
        with tf.GradientTape() as tape:
            d_loss = discriminator_loss(
                self.discriminator(real_images), self.discriminator(generated_images)
            )
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)

        # Train the generator (note that we should *not* update the discriminator's weights!):
        # it wins when D labels its images "real".
        random_latent_vectors = keras.random.normal(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )
        misleading_labels = ops.ones((batch_size, 1))
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(random_latent_vectors))
            g_loss = ops.mean(
                ops.binary_crossentropy(misleading_labels, fake_logits, from_logits=True)
            )
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)
        return self.update_trackers(d_loss=d_loss, g_loss=g_loss)
        ### END SOLUTION


check("4.4")

# %% [markdown]
# Train it. The two losses do not fall together as in supervised learning: they balance. If
# `d_loss` goes to 0, D has won and G gets no useful signal.

# %%
gan = SmallGAN(data_shape=(28, 28, 1), latent_dim=LATENT_DIM)
gan.compile(
    d_optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
    g_optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
)
gan_history = gan.fit(x_train, epochs=EPOCHS, batch_size=BATCH_SIZE, verbose=2)
plots.loss_curves(gan_history, title="SmallGAN");

# %%
random_latent_vectors = keras.random.normal((20, LATENT_DIM), seed=1)
plots.image_grid(gan.generator.predict(random_latent_vectors, verbose=0), n_cols=10,
                 title=f"SmallGAN samples after {EPOCHS} epochs");

# %% [markdown]
# ## Choosing the digit: a conditional GAN
#
# A plain GAN draws digits of random classes. A **conditional GAN** gives both players the
# label too: G(z, y) must draw a convincing *y*, and D judges (image, label) pairs, so a nice
# "3" labelled "7" counts as fake. `course.models.ConditionalGAN` is the same two-step game as
# your `train_step`, with the label given to both networks. Conditioning is learned late: a
# cGAN first learns to draw digits at all, and only then which digit. A dense network like
# `SmallGAN` learns it very slowly, so this one uses small convolutional networks
# (`network="conv"`), which learn both in 20 epochs (about 3 minutes on two CPU cores). It is
# trained exactly as the `cgan-conv` model of `benchmarks/gan.py`.

# %%
cgan = models.ConditionalGAN(data_shape=(28, 28, 1), num_classes=10, network="conv", seed=0)
cgan.compile(
    d_optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
    g_optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5),
)
digit_batches = datasets.as_dataset((x_train, y_train), batch_size=BATCH_SIZE, drop_remainder=True)
# While your notebook is graded, the toolkit's GAN step is not available (it answers exercise
# 4.4): the cGAN stays untrained there, and only the pictures below would differ.
if os.environ.get("COURSE_GRADING") != "1":
    cgan.fit(digit_batches, epochs=CGAN_EPOCHS, verbose=2)

# %% [markdown]
# ## Exercise 4.5: one row per class
#
# Write `grid_of_classes(cgan, n_per_class)`, which returns `(grid_labels, grid_images)`:
# `grid_labels` holds the integer labels of a grid with **one row per class**, `n_per_class`
# images of class 0, then `n_per_class` of class 1, and so on for all `cgan.num_classes`
# classes; `grid_images` holds the cGAN's image of each label, drawn with `seed=0` so that the
# grid can be drawn again.

# %%
N_PER_CLASS = 8


def grid_of_classes(cgan, n_per_class):
    """Labels 0, ..., 0, 1, ..., 1, ... (n_per_class of each class) and their images."""
    ### BEGIN SOLUTION 4.5: Which numpy function repeats each element of a range? Then ask the cGAN for those labels with seed=0.
    grid_labels = np.repeat(np.arange(cgan.num_classes), n_per_class)
    return grid_labels, cgan.generate(grid_labels, seed=0)
    ### END SOLUTION


check("4.5")
grid_labels, grid_images = grid_of_classes(cgan, N_PER_CLASS)

# %%
plots.image_grid(grid_images, n_cols=N_PER_CLASS, row_titles=range(10),
                 title="Conditional GAN: one row per class");

# %% [markdown]
# Each row should show one digit in several styles: the label fixes *what*, the noise *how*.
# Do the generated digits really belong to the rows they were asked for? Ask a small digit
# classifier trained on the real images (chance is 10%). What to expect: after 20 epochs on the
# 4,000 bundled digits, this model drew the requested digit for 88% of 1,000 digits, all ten
# classes present (`benchmarks/gan.py`, `cgan-conv`); your grid of 80 will land near that.
# After the single epoch of a quick run (`COURSE_SMOKE=1`) it is near chance: the cGAN has
# not yet learned which digit to draw.

# %%
classifier = metrics.digit_classifier(x_train, y_train, epochs=1 if SMOKE else 5)
scores = metrics.digit_scores(classifier, grid_images, requested_labels=grid_labels)
print(f"The classifier agrees with the requested label for "
      f"{scores['conditional_accuracy']:.0%} of the grid; it sees "
      f"{scores['classes_present']} of the 10 classes.")

# %%
check_all(lab=4)
