"""Checks of lab 6, scaling out with MirroredStrategy (``solutions/06_scaling_out.py``).

The checks use the lab's own strategy, ``ns["strategy"]``: a process can hold only one
MirroredStrategy, and the grader's kernel (or the test session) already has it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.grading import CheckFailed, exercise
from course.grading.checks.lab04 import close, scalar

SCALING_HINT = "divide the loss by num_replicas_in_sync"


def times(replicas: int) -> str:
    return "twice" if replicas == 2 else f"{replicas} times"


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TensorFlow's "Using MirroredStrategy eagerly" notes while a check runs."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def mirrored_strategy(ns):
    """The lab's strategy, which must have at least two replicas for these checks to mean much."""
    strategy = ns["strategy"]
    if strategy.num_replicas_in_sync < 2:
        raise CheckFailed(
            "`strategy` has only one replica: keep the lab's first cell, "
            'distribute.get_strategy("mirrored", cpu_replicas=2)'
        )
    return strategy


def per_replica_values(strategy, function) -> list:
    """``function()`` run on every replica, as a list of numpy values."""
    results = strategy.run(function)
    return [np.asarray(value) for value in strategy.experimental_local_results(results)]


@exercise("6.1", points=2, title="The replica-scaled loss")
def loss_is_divided_by_the_number_of_replicas(ns):
    import tensorflow as tf

    strategy = mirrored_strategy(ns)
    replicas = strategy.num_replicas_in_sync
    scaled_mean_loss = ns["scaled_mean_loss"]
    losses = tf.constant([1.0, 2.0, 4.5, 0.5])
    mean = float(np.mean(losses))
    outside = scalar(scaled_mean_loss(losses), "scaled_mean_loss")
    with quiet_tensorflow():
        inside = [scalar(value, "scaled_mean_loss")
                  for value in per_replica_values(strategy, lambda: scaled_mean_loss(losses))]
    if close(outside, mean / replicas):
        raise CheckFailed(
            "outside any strategy (one replica) the loss should stay the plain mean, but it was "
            f"divided by {replicas}: read the number of replicas from "
            "tf.distribute.get_strategy().num_replicas_in_sync instead of writing it"
        )
    if not close(outside, mean):
        raise CheckFailed(f"outside any strategy scaled_mean_loss should be the mean of the "
                          f"per-example losses, {mean:.4f}, got {outside:.4f}")
    for value in inside:
        if close(value, mean):
            raise CheckFailed(
                f"on {replicas} replicas the loss is not scaled, so the update on {replicas} "
                f"replicas is {times(replicas)} the single-device one: {SCALING_HINT}"
            )
        if close(value, mean * replicas):
            raise CheckFailed(f"the loss was multiplied by the number of replicas; "
                              f"{SCALING_HINT} instead")
        if not close(value, mean / replicas):
            raise CheckFailed(f"on each of {replicas} replicas the scaled loss should be "
                              f"mean / {replicas} = {mean / replicas:.4f}, got {value:.4f}")


def weight_after_one_step(on_strategy, step_function) -> float:
    """w after one SGD(0.1) step of ``step_function`` on 12 examples of y = 2x, from w = 1."""
    import keras
    import tensorflow as tf

    x = np.linspace(0.0, 1.0, 12, dtype="float32")[:, None]
    with on_strategy.scope():
        model = keras.Sequential(
            [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")]
        )
        optimizer = keras.optimizers.SGD(learning_rate=0.1)
        optimizer.build(model.trainable_variables)
    batches = tf.data.Dataset.from_tensor_slices((x, 2 * x)).batch(12)
    for x_shard, y_shard in on_strategy.experimental_distribute_dataset(batches):
        on_strategy.run(step_function, args=(model, optimizer, x_shard, y_shard))
    return float(np.asarray(model.trainable_variables[0]).ravel()[0])


def expected_weight_after_one_step() -> float:
    """The exact single-device answer: w = 1 + 0.1 * 2 * mean(x^2), since y - w x = x at w = 1."""
    x = np.linspace(0.0, 1.0, 12)
    return 1.0 + 0.1 * 2 * np.mean(x**2)


@exercise("6.2", points=3, title="One SGD step: one device equals two replicas")
def step_on_two_replicas_equals_one_device(ns):
    import tensorflow as tf

    strategy = mirrored_strategy(ns)
    replicas = strategy.num_replicas_in_sync
    step = ns["train_step_on_replica"]
    expected = expected_weight_after_one_step()
    with quiet_tensorflow():
        one_device = weight_after_one_step(tf.distribute.get_strategy(), step)
        distributed = weight_after_one_step(strategy, step)
    if close(one_device, 1.0) and close(distributed, 1.0):
        raise CheckFailed("the weight did not change: compute the loss inside the GradientTape "
                          "and apply the gradients with optimizer.apply(gradients, variables)")
    if not close(one_device, expected):
        raise CheckFailed(
            f"on one device, one SGD(0.1) step from w = 1 should give w = {expected:.5f} "
            f"(mean squared error), got {one_device:.5f}"
        )
    if close(distributed - 1.0, replicas * (expected - 1.0)):
        raise CheckFailed(
            f"the update on {replicas} replicas is {times(replicas)} the single-device one: "
            f"{SCALING_HINT} (use your scaled_mean_loss)"
        )
    if not close(distributed, expected):
        raise CheckFailed(f"on {replicas} replicas the step gives w = {distributed:.5f}, on one "
                          f"device w = {one_device:.5f}; they should be equal")


@exercise("6.3", points=2, title="Different noise on every replica")
def noise_differs_between_replicas(ns):
    import keras

    strategy = mirrored_strategy(ns)
    replica_noise = ns["replica_noise"]
    with strategy.scope():
        seed_generator = keras.random.SeedGenerator(7)
    with quiet_tensorflow():
        draws = per_replica_values(strategy, lambda: replica_noise((256,), seed_generator))
    if draws[0].shape != (256,):
        raise CheckFailed(f"replica_noise((256,), ...) should have shape (256,), got "
                          f"{draws[0].shape}")
    if any(np.allclose(draws[0], other) for other in draws[1:]):
        raise CheckFailed(
            "all replicas drew the same noise: fold the replica id "
            "(tf.distribute.get_replica_context().replica_id_in_sync_group) into the seed with "
            "tf.random.experimental.stateless_fold_in"
        )
    first = np.asarray(replica_noise((2000,), keras.random.SeedGenerator(11)))
    again = np.asarray(replica_noise((2000,), keras.random.SeedGenerator(11)))
    if not np.allclose(first, again):
        raise CheckFailed(
            "the same seed gave different noise: take the seed from seed_generator.next() and "
            "draw with tf.random.stateless_normal, so that runs are reproducible"
        )
    generator = keras.random.SeedGenerator(11)
    if np.allclose(replica_noise((8,), generator), replica_noise((8,), generator)):
        raise CheckFailed("two calls with the same seed generator drew the same noise: call "
                          "seed_generator.next() each time, which advances its state")
    if abs(first.mean()) > 0.15 or not 0.85 < first.std() < 1.15:
        raise CheckFailed(f"the noise should be standard normal; it has mean {first.mean():.2f} "
                          f"and standard deviation {first.std():.2f}")


def created_in_scope(strategy, variable) -> bool:
    """Whether a Keras variable was created under ``strategy`` (and is mirrored by it)."""
    return strategy.extended.variable_created_in_scope(getattr(variable, "value", variable))


@exercise("6.4", points=3, title="Training a course model under the strategy")
def gan_is_trained_under_the_strategy(ns):
    from course import models

    strategy = ns["strategy"]
    gan = ns["distributed_gan"]
    if not isinstance(gan, models.GAN):
        raise CheckFailed(f"distributed_gan should be a course.models.GAN, got "
                          f"{type(gan).__name__}")
    expected_batch = ns["PER_REPLICA_BATCH"] * strategy.num_replicas_in_sync
    if ns["global_batch_size"] != expected_batch:
        raise CheckFailed(
            f"global_batch_size is {ns['global_batch_size']}; it should be the per-replica batch "
            f"times the number of replicas, PER_REPLICA_BATCH * "
            f"strategy.num_replicas_in_sync = {expected_batch}"
        )
    batch_dimension = ns["digits"].element_spec.shape[0]
    if batch_dimension is None:
        raise CheckFailed("the data set's last batch may be smaller than the others: pass "
                          "drop_remainder=True so every replica gets an equal shard")
    if batch_dimension != expected_batch:
        raise CheckFailed(f"the data set's batches hold {batch_dimension} images; batch it with "
                          f"the global batch size, {expected_batch}")
    if not created_in_scope(strategy, gan.generator.trainable_variables[0]):
        raise CheckFailed("distributed_gan's weights were created outside the strategy: build "
                          "and compile the model inside `with strategy.scope():`")
    if not hasattr(gan, "d_optimizer"):
        raise CheckFailed("distributed_gan was never compiled: call compile(d_optimizer=..., "
                          "g_optimizer=...) inside the scope")
    if not created_in_scope(strategy, gan.d_optimizer.iterations):
        raise CheckFailed("the optimizers were built outside the strategy: call "
                          "distributed_gan.compile(...) inside `with strategy.scope():` too")
    if int(np.asarray(gan.d_optimizer.iterations.numpy())) == 0:
        raise CheckFailed("distributed_gan has not been trained: call distributed_gan.fit(digits, "
                          "epochs=EPOCHS)")
    history = ns["distributed_history"]
    logs = getattr(history, "history", {})
    if "d_loss" not in logs:
        raise CheckFailed("distributed_history should be what distributed_gan.fit(...) returns")
