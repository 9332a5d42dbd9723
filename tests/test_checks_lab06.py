"""The checks of lab 6 (MirroredStrategy), on the test session's two-replica strategy: each
realistic mistake loses the points with a hint that names it (that the solution passes, for
every lab: tests/test_lab_structure.py)."""

from __future__ import annotations

import numpy as np
import pytest
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    solution_namespace,
    solution_source,
    with_mistake,
)

from course.grading.registry import get_exercise, judge, make_inputs

LAB = 6


@pytest.fixture(scope="module")
def ns(strategy):
    namespace = solution_namespace(LAB)
    namespace["strategy"] = strategy
    return namespace


def mistake(ns, name: str, old: str, new: str, *dependents: str) -> dict:
    """``ns`` with ``old`` replaced by ``new`` in ``name``, and the functions that call ``name``
    defined again so that they see the mistake."""
    source = solution_source(LAB, name)
    assert old in source, f"the solution's {name} no longer contains {old!r}"
    return with_mistake(ns, source.replace(old, new) + solution_source(LAB, *dependents)
                        if dependents else source.replace(old, new))


def test_a_strategy_with_one_replica_is_named(ns):
    import tensorflow as tf

    one = dict(ns, strategy=tf.distribute.get_strategy())
    assert "only one replica" in failure_message("6.1", one)


# --- 6.1: the scaled loss ---------------------------------------------------------------------

MEAN = "ops.mean(per_example_losses) / num_replicas"

LOSS_EDITS = [
    (MEAN, "ops.mean(per_example_losses)",
     "is twice the single-device one: divide the loss by num_replicas_in_sync"),
    ("/ num_replicas", "/ 2", "instead of writing it"),
    ("/ num_replicas", "* num_replicas", "multiplied by the number of replicas"),
    (MEAN, "ops.sum(per_example_losses) / num_replicas", "not their sum"),
    (MEAN, "per_example_losses / num_replicas", "should return one number"),
    (MEAN, "ops.convert_to_tensor(1.0)", "should be the mean of the per-example losses"),
]


@pytest.mark.parametrize("old, new, words", LOSS_EDITS)
def test_scaled_loss_mistakes_lose_the_points_with_their_hint(ns, old, new, words):
    wrong = edited_namespace(LAB, "scaled_mean_loss", old, new, namespace=ns)
    assert words in failure_message("6.1", wrong)


def test_tensorflows_average_loss_passes(ns):
    assert_passes("6.1", with_mistake(ns, """
def scaled_mean_loss(per_example_losses):
    return tf.nn.compute_average_loss(per_example_losses)
"""))


# --- 6.2: one step on one device and on two replicas ----------------------------------------

STEP = "train_step_on_replica"


@pytest.mark.parametrize("name, old, new, words", [
    ("scaled_mean_loss", MEAN, "ops.mean(per_example_losses)", "twice the single-device one"),
    ("scaled_mean_loss", "/ num_replicas", "/ 2", "instead of writing 2"),
    (STEP, "loss = scaled_mean_loss(per_example_losses)", "loss = ops.mean(per_example_losses)",
     "twice the single-device one"),
    (STEP, "loss = scaled_mean_loss(per_example_losses)", "loss = ops.sum(per_example_losses)",
     "grows with the batch size"),
    (STEP, "ops.square(y - model(x))", "ops.abs(y - model(x))", "mean SQUARED error"),
    (STEP, "optimizer.apply(tape.gradient(loss, variables), variables)",
     "optimizer.apply([-g for g in tape.gradient(loss, variables)], variables)", "uphill"),
    (STEP, "optimizer.apply(tape.gradient(loss, variables), variables)", "pass",
     "the weight did not change"),
])
def test_replica_step_mistakes_lose_the_points_with_their_hint(ns, name, old, new, words):
    wrong = mistake(ns, name, old, new, *([STEP] if name != STEP else []))
    assert words in failure_message("6.2", wrong)


def test_a_loss_computed_outside_the_tape_is_named(ns):
    outside_the_tape = with_mistake(ns, """
def train_step_on_replica(model, optimizer, x, y):
    loss = scaled_mean_loss(ops.square(y - model(x))[:, 0])
    with tf.GradientTape() as tape:
        variables = model.trainable_variables
    optimizer.apply(tape.gradient(loss, variables), variables)
""")
    assert "no gradient reached the weights" in failure_message("6.2", outside_the_tape)


# --- 6.3: noise on every replica --------------------------------------------------------------

NOISE = "replica_noise"


@pytest.mark.parametrize("old, new, words", [
    ("    seed = tf.random.experimental.stateless_fold_in(seed, replica_id)\n", "",
     "all replicas drew the same noise"),
    ("stateless_fold_in(seed, replica_id)",
     "stateless_fold_in(seed, tf.distribute.get_strategy().num_replicas_in_sync)",
     "all replicas drew the same noise"),
    ("seed = tf.cast(seed_generator.next(), tf.int32)", "seed = tf.constant([0, 0])",
     "different seeds drew the same noise"),
    ("seed_generator.next()", "seed_generator.state", "call seed_generator.next() each time"),
    ("tf.random.stateless_normal(shape", "tf.random.stateless_uniform(shape", "standard normal"),
    ("return tf.random.stateless_normal(shape, seed=seed)", "return tf.random.normal(shape)",
     "the same seed gave different noise"),
])
def test_replica_noise_mistakes_lose_the_points_with_their_hint(ns, old, new, words):
    assert words in failure_message("6.3", mistake(ns, NOISE, old, new))


def test_a_seed_generator_shared_by_the_replicas_is_named(ns):
    same_everywhere = with_mistake(ns, """
def replica_noise(shape, seed_generator):
    return keras.random.normal(shape, seed=seed_generator)
""")
    assert "all replicas drew the same noise" in failure_message("6.3", same_everywhere)


# --- 6.4: fit under the strategy (each case traces a distributed fit: slow) -----------------

GAN = "train_distributed_gan"
SCOPE = """    with strategy.scope():
        gan = models.GAN(data_shape=images.shape[1:], latent_dim=32)
        gan.compile("""


def probe_record(inputs, global_batch=None, epochs=None, drop_remainder=True,
                 replicas_used=2) -> dict:
    """What the probe of 6.4 records when fit feeds the images in order: the images each
    replica saw and its shard sizes (the solution: the defaults)."""
    n, per_replica_batch = len(inputs["images"]), int(inputs["per_replica_batch"])
    global_batch = global_batch or 2 * per_replica_batch
    epochs = int(inputs["epochs"]) if epochs is None else epochs
    seen, sizes = np.zeros((2, n)), np.zeros((2, n + 1))
    for _ in range(epochs):
        for start in range(0, n, global_batch):
            batch = np.arange(start, min(start + global_batch, n))
            if len(batch) < global_batch and drop_remainder:
                break
            for replica, shard in enumerate(np.array_split(batch, replicas_used)):
                seen[replica, shard] += 1
                sizes[replica, len(shard)] += 1
    return {"replicas": np.asarray(2), "seen": seen, "shard_sizes": sizes}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_distributed_gan_verdict_reads_what_fit_fed_each_replica(seed):
    """The verdict alone, on records of the probe (the probe's fit is slow: tested below)."""
    entry = get_exercise("6.4")
    inputs = make_inputs(entry, seed)
    n, epochs = len(inputs["images"]), int(inputs["epochs"])
    per_replica_batch = int(inputs["per_replica_batch"])
    assert judge(entry, inputs, probe_record(inputs)).passed
    untrained = dict(probe_record(inputs), seen=np.zeros((2, n)), shard_sizes=np.zeros((2, n + 1)))
    other_data = probe_record(inputs)
    other_data["seen"] = np.zeros((2, n))
    other_data["seen"][:, 0] = other_data["shard_sizes"].sum(axis=1) * per_replica_batch
    mistakes = [
        (probe_record(inputs, replicas_used=1), "created outside the strategy"),
        (untrained, "has not been trained"),
        (probe_record(inputs, epochs=epochs + 1), "train for the `epochs`"),
        (probe_record(inputs, drop_remainder=False), "drop_remainder=True"),
        (probe_record(inputs, global_batch=per_replica_batch), "GLOBAL batch size"),
        (other_data, "the `images` the function is given"),
    ]
    for outputs, words in mistakes:
        result = judge(entry, inputs, outputs)
        assert not result.passed and words in result.message, (words, result.message)


def test_flags_the_kernel_reports_about_itself_earn_nothing():
    """The attack of issue 17: the old probe's yes/no flags and step counts, forged by a kernel
    whose train_distributed_gan still raises NotImplementedError, gave 3/3."""
    entry = get_exercise("6.4")
    inputs = make_inputs(entry, 0)
    n, epochs = len(inputs["images"]), int(inputs["epochs"])
    steps = epochs * (n // (2 * int(inputs["per_replica_batch"])))
    forged = {"replicas": 2, "weights_in_scope": 1, "compiled": 1, "optimizer_in_scope": 1,
              "d_steps": steps, "g_steps": steps, "epochs_logged": epochs,
              "d_loss": np.full(epochs, 1.3)}
    assert not judge(entry, inputs, {k: np.asarray(v) for k, v in forged.items()}).passed


@pytest.mark.slow
@pytest.mark.parametrize("old, new, words", [
    (SCOPE, """    gan = models.GAN(data_shape=images.shape[1:], latent_dim=32)
    with strategy.scope():
        gan.compile(""", "created outside the strategy"),
    (SCOPE, """    with strategy.scope():
        gan = models.GAN(data_shape=images.shape[1:], latent_dim=32)
    if True:
        gan.compile(""", "outside the strategy"),
    ("batch_size=global_batch_size", "batch_size=per_replica_batch", "GLOBAL batch size"),
    ("drop_remainder=True", "drop_remainder=False", "drop_remainder=True"),
    ("history = gan.fit(digits, epochs=epochs, verbose=2)", "history = gan.fit(digits, epochs=3)",
     "train for the `epochs`"),
    ("return gan, history", "return gan", "should return (gan, history)"),
])
def test_distributed_gan_mistakes_lose_the_points_with_their_hint(ns, old, new, words):
    assert words in failure_message("6.4", mistake(ns, GAN, old, new))
