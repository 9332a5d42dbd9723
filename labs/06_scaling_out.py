# %% [markdown]
# **Your copy of lab 6.** Fill in each exercise (the code that raises `NotImplementedError`)
# and run the `check("6.1")` cell below it for instant feedback; `check_all()` at the end
# scores the whole lab. Save often: your answers are kept in this file.
#
# *Working from the course's repository? Run `course labs start 06` first: it copies this
# lab into `my-labs/`, a folder of your own.*
#
# *Instructors: edit `solutions/06_scaling_out.py` instead and run `course labs build`, which
# never replaces a lab that has been edited.*
# <!-- generated from solutions/06_scaling_out.py by `course labs build`; fingerprint 1479171c9b31442d -->

# %%
# TensorFlow prints start-up lines (CUDA, oneDNN) that are no concern of this lab: start it
# quietly, before anything else imports it.
from course import import_tensorflow_quietly

import_tensorflow_quietly()

# %% [markdown]
# # Lab 6: Scaling out with MirroredStrategy
#
# One GPU is rarely the end of the story: single-cell atlases have millions of cells. The
# simplest way to use several devices is **data parallelism**: copy the model onto every device
# (a *replica*), give each replica a slice of every batch, and add up their gradients before
# one shared update. TensorFlow calls this `MirroredStrategy`.
#
# We have no GPUs here, so we split the CPU into two *logical* devices. That must happen before
# TensorFlow touches any device, which is why it is the very first thing this lab does.

# %%
from course import distribute

strategy = distribute.get_strategy("mirrored", cpu_replicas=2)
print(f"{strategy.num_replicas_in_sync} replicas on", strategy.extended.worker_devices)

# %%
import os
import time
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from keras import ops

from course import datasets, models, plots
from course.grading import check, check_all
from course.grading.probes.lab06 import weight_after_one_step

SMOKE = os.environ.get("COURSE_SMOKE") == "1"
N_IMAGES = 1024 if SMOKE else None  # None: all the training digits
EPOCHS = 1 if SMOKE else 10
TIMED_STEPS = 10 if SMOKE else 60
PER_REPLICA_BATCH = 64
keras.utils.set_random_seed(0)
tf.get_logger().setLevel("ERROR")  # Hide "Using MirroredStrategy eagerly" performance notes.

# %% [markdown]
# ## What MirroredStrategy does with a batch
#
# The batch size of the data set is the **global** batch. The strategy cuts every global batch
# into one shard per replica, and `strategy.run(function)` calls the function once per replica,
# each on its own shard. Here is a global batch of 8 numbers:

# %%
numbers = tf.data.Dataset.range(8).batch(8)
global_batch = next(iter(strategy.experimental_distribute_dataset(numbers)))
for device, shard in zip(strategy.extended.worker_devices,
                         strategy.experimental_local_results(global_batch)):
    print(f"{device}: {shard.numpy()}")

# %% [markdown]
# ## Exercise 6.1: the replica-scaled loss
#
# Each replica computes the loss *of its own shard* and its gradient. The optimizer then
# **sums** the replicas' gradients (an all-reduce) and applies the same update everywhere, so
# the copies stay identical.
#
# Summing is the catch. If each replica's loss is the mean over its shard, the sum of two
# replicas' gradients is *twice* the gradient of the mean over the global batch: every step is
# as large as with a doubled learning rate. The fix is to divide each replica's mean loss by the
# number of replicas; then the sum of the gradients is exactly the gradient of the global mean.
#
# $$\sum_{r=1}^{R} \nabla \frac{1}{R}\,\mathrm{mean}_{i \in \text{shard}_r}\,\ell_i
#   = \nabla\,\mathrm{mean}_{i \in \text{batch}}\,\ell_i \quad\text{(equal shards)}$$
#
# Write `scaled_mean_loss(per_example_losses)`: the mean over this replica's examples, divided
# by `tf.distribute.get_strategy().num_replicas_in_sync`. Read the number of replicas from the
# strategy rather than writing 2: outside any strategy it is 1, and the loss must stay the mean.

# %%
def scaled_mean_loss(per_example_losses):
    """This replica's mean loss divided by the number of replicas in sync."""
    raise NotImplementedError("Exercise 6.1: Average this replica's losses, then account for the replicas whose gradients will be added to yours (ask the current strategy how many).")


check("6.1")
per_replica = strategy.run(lambda: scaled_mean_loss(tf.constant([1.0, 2.0, 3.0])))
print("outside the strategy:", float(scaled_mean_loss(tf.constant([1.0, 2.0, 3.0]))))
print("on each replica:     ", [float(v) for v in strategy.experimental_local_results(per_replica)])

# %% [markdown]
# ## Exercise 6.2: one SGD step on one device and on two replicas
#
# Take the smallest possible model, one weight $w$ with $\hat y = w x$, start it at $w = 1$, and
# take one SGD step on the same 12 examples, once on a single device and once split over our
# two replicas. Plain SGD shows any error in the gradient's size directly.
#
# Write `train_step_on_replica(model, optimizer, x, y)`, one SGD step on a replica's shard: in a
# `tf.GradientTape`, compute the per-example squared errors `ops.square(y - model(x))[:, 0]` and
# your `scaled_mean_loss` of them; then take the gradient with respect to
# `model.trainable_variables` and apply it with `optimizer.apply(gradients, variables)`.

# %%
def train_step_on_replica(model, optimizer, x, y):
    """One step on this replica's shard, correct for any number of replicas."""
    raise NotImplementedError("Exercise 6.2: The usual custom step (tape, loss, gradients, apply), with the loss reduced by your scaled_mean_loss.")


check("6.2")

# %% [markdown]
# `weight_after_one_step(on_strategy, step_function, x, y, initial_weight, learning_rate)`
# builds the model and its optimizer inside `on_strategy.scope()`, splits the batch with
# `on_strategy.experimental_distribute_dataset` and runs your step on every replica with
# `on_strategy.run`, which is all that `fit` does for you under a strategy. (It lives in
# `course/grading/probes/lab06.py`: the check of exercise 6.2 runs it too, on random data.)

# %%
examples = np.linspace(0.0, 1.0, 12, dtype="float32")[:, None]


def w_after_one_step(on_strategy, step_function):
    """w after one SGD(0.1) step on the 12 examples of y = 2x, from w = 1."""
    weight = weight_after_one_step(on_strategy, step_function, examples, 2 * examples, [[1.0]],
                                   0.1)
    return float(weight[0, 0])


one_device = w_after_one_step(tf.distribute.get_strategy(), train_step_on_replica)
two_replicas = w_after_one_step(strategy, train_step_on_replica)
print(f"w after one step: one device {one_device:.5f}, two replicas {two_replicas:.5f}")

# %% [markdown]
# What if we forget the scaling? The same step with the plain mean moves $w$ twice as far on
# two replicas:

# %%
def unscaled_step(model, optimizer, x, y):
    with tf.GradientTape() as tape:
        loss = ops.mean(ops.square(y - model(x)))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)


steps = {
    "one device": w_after_one_step(tf.distribute.get_strategy(), train_step_on_replica),
    "2 replicas,\nscaled": w_after_one_step(strategy, train_step_on_replica),
    "2 replicas,\nunscaled": w_after_one_step(strategy, unscaled_step),
}
plt.figure(figsize=(5, 3))
plt.bar(list(steps), [w - 1.0 for w in steps.values()], color=["gray", "tab:green", "tab:red"])
plt.ylabel("change of w in one SGD step")
plt.title("Summed gradients need a scaled loss")
plt.tight_layout();

# %% [markdown]
# Adam divides each gradient by its own running size, so it is nearly blind to this factor and
# a model trained with the bug may look fine; SGD, momentum, gradient clipping and any loss made
# of several terms are not. Every model in `course.models` divides its losses with
# `distribute.scale_loss`, and Keras' own `compile(loss=...)` losses do it for you.
#
# ## Exercise 6.3: different noise on every replica
#
# GANs and VAEs draw noise inside `train_step`. With a Keras `SeedGenerator`, each replica
# holds a mirrored copy of the generator's state, and the copies advance in lock-step, so
# every replica draws **the same** numbers:

# %%
with strategy.scope():
    seed_generator = keras.random.SeedGenerator(42)
same_noise = strategy.run(lambda: keras.random.normal((4,), seed=seed_generator))
for device, noise in zip(strategy.extended.worker_devices,
                         strategy.experimental_local_results(same_noise)):
    print(device, np.round(noise.numpy(), 3))

# %% [markdown]
# A GAN on two replicas would then see only half as many different latent vectors per step as
# it should. The cure: take a seed from the generator, *fold in* the replica's id (0, 1, ...)
# to get a different seed on each replica, and draw with TensorFlow's stateless sampler.
#
# Write `replica_noise(shape, seed_generator)`. Use
# `seed = tf.cast(seed_generator.next(), tf.int32)`, the replica id
# `tf.distribute.get_replica_context().replica_id_in_sync_group` (the context is `None`
# outside `strategy.run`: use 0 there), `tf.random.experimental.stateless_fold_in(seed, id)`
# and `tf.random.stateless_normal(shape, seed=...)`.

# %%
def replica_noise(shape, seed_generator):
    """Standard normal noise that differs between replicas and is reproducible from the seed."""
    raise NotImplementedError("Exercise 6.3: One seed per call from the generator, made different on each replica, then a stateless draw.")


check("6.3")
different_noise = strategy.run(lambda: replica_noise((4,), seed_generator))
for device, noise in zip(strategy.extended.worker_devices,
                         strategy.experimental_local_results(different_noise)):
    print(device, np.round(noise.numpy(), 3))

# %% [markdown]
# `course.distribute.normal` is this function; the course GANs draw their latent vectors with it.
#
# ## Exercise 6.4: training a course model under the strategy
#
# Three rules make `fit` distributed:
# 1. create **and compile** the model inside `with strategy.scope():`, so its weights and the
#    optimizers' slots are mirrored on every replica;
# 2. batch the data with the **global** batch size, the per-replica batch times the number of
#    replicas, and drop the last incomplete batch so every replica gets an equal shard;
# 3. call `fit` as usual: it runs `train_step` on every replica through `strategy.run`.
#
# Write `train_distributed_gan(strategy, images, per_replica_batch, epochs)`, which trains a
# `models.GAN(data_shape=images.shape[1:], latent_dim=32)` under `strategy` with two
# `keras.optimizers.Adam(2e-4, beta_1=0.5)` and returns the GAN and the History of its `fit`.
# Make the data set with `datasets.as_dataset(images, batch_size=..., drop_remainder=...)`.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore", datasets.BundledDataWarning)
    x_train, _ = datasets.load_mnist("train")
x_train = x_train[:N_IMAGES]


def train_distributed_gan(strategy, images, per_replica_batch, epochs):
    """A models.GAN trained on ``images`` on every replica of ``strategy``: (gan, history)."""
    raise NotImplementedError("Exercise 6.4: Follow the three rules above: which batch size does the data set need, and what must happen inside the scope?")


check("6.4")
distributed_gan, distributed_history = train_distributed_gan(strategy, x_train,
                                                             PER_REPLICA_BATCH, EPOCHS)

# %%
plots.image_grid(distributed_gan.generate(20, seed=0), n_cols=10,
                 title=f"A GAN trained on {strategy.num_replicas_in_sync} replicas");

# %% [markdown]
# ## Does it go faster?
#
# Time the same number of training steps of the same GAN with the same *per-replica* batch, on
# one device and on two replicas. Two replicas process twice as many examples per step.

# %%
def examples_per_second(on_strategy, steps=TIMED_STEPS):
    """Training throughput of models.GAN under ``on_strategy``, after one warm-up epoch."""
    batch_size = PER_REPLICA_BATCH * on_strategy.num_replicas_in_sync
    data = datasets.as_dataset(x_train, batch_size=batch_size, drop_remainder=True).repeat()
    with on_strategy.scope():
        gan = models.GAN(data_shape=(28, 28, 1), latent_dim=32)
        gan.compile()
    gan.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # Build and trace.
    start = time.perf_counter()
    gan.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


throughput = {
    "1 device": examples_per_second(tf.distribute.get_strategy()),
    f"{strategy.num_replicas_in_sync} replicas": examples_per_second(strategy),
}
plt.figure(figsize=(4, 3))
plt.bar(list(throughput), list(throughput.values()), color=["gray", "tab:blue"])
plt.ylabel("training examples per second")
plt.title(f"{os.cpu_count()} CPU cores");

# %% [markdown]
# Our two "devices" are slices of the same physical cores, so whatever difference you see is
# not new hardware at work. A single device with a small batch may leave cores idle, and two
# replicas can fill them (a bigger batch would do the same); or the cost of splitting batches
# and summing gradients may win and make two replicas slower. Run the cell twice: CPU timings
# are noisy. On real GPUs each replica brings its own compute, and the throughput grows nearly
# in proportion to the number of devices. What you learned here (global batches, scaled losses,
# per-replica noise, building in the scope) is exactly what makes that speed-up correct.

# %%
check_all(lab=6)
