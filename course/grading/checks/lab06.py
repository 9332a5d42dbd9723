"""Checks of lab 6, scaling out with MirroredStrategy (``solutions/06_scaling_out.py``).

The probes run the student's functions on one device and on every replica of the lab's own
strategy; the verdicts here compute what one device computes on the whole batch (the mean
loss, one exact SGD step of a linear model) and, from what a distributed ``fit`` fed each
replica, its steps, shards and epochs; they name the known mistakes: a loss not divided by the
number of replicas, the number written as 2, a sum for a mean, the same noise on every
replica, a model built outside the scope. No verdict rests on a yes/no the kernel reports.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from course.grading.checks.tools import (
    close,
    expect_finite,
    expect_keys,
    expect_shape,
    scalar,
)
from course.grading.probes import lab06 as probes
from course.grading.registry import CheckFailed, exercise

SCALING_HINT = "divide the loss by num_replicas_in_sync"


def times(replicas: int) -> str:
    return "twice" if replicas == 2 else f"{replicas} times"


def _replicas(outputs) -> int:
    replicas = int(outputs["replicas"])
    if replicas < 2:
        raise CheckFailed("`strategy` has only one replica: keep the lab's first cell")
    return replicas


def losses_inputs(rng: np.random.Generator) -> dict:
    """Random positive per-example losses of a random batch size."""
    return {
        "losses": rng.gamma(2.0, rng.uniform(0.2, 2.0), int(rng.integers(5, 40))).astype("float32")
    }


@exercise("6.1", points=2, title="The replica-scaled loss", probe=probes.scaled_mean_loss,
          inputs=losses_inputs)
def scaled_mean_loss_verdict(inputs, outputs):
    expect_keys(outputs, ["outside", "inside", "replicas"])
    replicas = _replicas(outputs)
    losses = np.float64(inputs["losses"])
    mean, total = losses.mean(), losses.sum()
    outside = scalar(outputs["outside"], "scaled_mean_loss")
    inside = np.asarray(outputs["inside"], np.float64)
    expect_shape(
        inside, (replicas,), "the loss on each replica", "scaled_mean_loss should return one number"
    )
    if close(outside, mean / replicas):
        raise CheckFailed(
            "outside any strategy (one replica) the loss should stay the plain mean, but it was "
            f"divided by {replicas}: read the number of replicas from "
            "tf.distribute.get_strategy().num_replicas_in_sync instead of writing it"
        )
    if close(outside, total) or close(outside, total / replicas):
        raise CheckFailed(
            "the loss grows with the batch size: take the MEAN of the "
            "per-example losses, not their sum"
        )
    if not close(outside, mean):
        raise CheckFailed(
            f"outside any strategy scaled_mean_loss should be the mean of the "
            f"per-example losses, {mean:.4f}, got {outside:.4f}"
        )
    for value in inside:
        if close(value, mean):
            raise CheckFailed(
                f"on {replicas} replicas the loss is not scaled, so the update on {replicas} "
                f"replicas is {times(replicas)} the single-device one: {SCALING_HINT}"
            )
        if close(value, mean * replicas):
            raise CheckFailed(
                f"the loss was multiplied by the number of replicas; {SCALING_HINT} instead"
            )
        if not close(value, mean / replicas):
            raise CheckFailed(
                f"on each of {replicas} replicas the scaled loss should be "
                f"mean / {replicas} = {mean / replicas:.4f}, got {value:.4f}"
            )


def step_inputs(rng: np.random.Generator) -> dict:
    """A random linear regression batch (its size a multiple of 12, so that 1, 2, 3, 4 or 6
    replicas get equal shards), a random initial weight and learning rate."""
    n, features = 12 * int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.normal(0.0, 1.0, (n, features))
    y = x @ rng.normal(0.0, 2.0, (features, 1)) + rng.normal(0.0, 0.3, (n, 1))
    return {
        "x": x.astype("float32"),
        "y": y.astype("float32"),
        "initial_weight": rng.normal(0.0, 1.0, (features, 1)).astype("float32"),
        "learning_rate": np.float32(rng.uniform(0.02, 0.1)),
    }


def _step(inputs, gradient_of_residuals) -> np.ndarray:
    """The update of one SGD step whose loss gradient is -x^T g(y - x w) (float64)."""
    x, y = np.float64(inputs["x"]), np.float64(inputs["y"])
    weight = np.float64(inputs["initial_weight"])
    gradient = -x.T @ gradient_of_residuals(y - x @ weight)
    return -float(inputs["learning_rate"]) * gradient


@exercise("6.2", points=3, title="One SGD step: one device equals two replicas",
          probe=probes.train_step_on_replica, inputs=step_inputs)
def replica_step_verdict(inputs, outputs):
    expect_keys(outputs, ["one_device", "distributed", "replicas"])
    replicas = _replicas(outputs)
    n = len(inputs["x"])
    weight = np.float64(inputs["initial_weight"])
    steps = {}
    for key in ("one_device", "distributed"):
        after = np.asarray(outputs[key], np.float64)
        expect_shape(after, weight.shape, "the model's weight after one step")
        expect_finite(after, "the weight after one step")
        steps[key] = after - weight
    expected = _step(inputs, lambda residuals: 2 * residuals / n)
    scale = np.abs(expected).max()

    def same(step, reference) -> bool:
        return bool(np.abs(step - reference).max() <= 2e-3 * scale + 1e-7)

    if all(same(step, 0 * expected) for step in steps.values()):
        raise CheckFailed(
            "the weight did not change: compute the loss inside the GradientTape "
            "and apply the gradients with optimizer.apply(gradients, variables)"
        )
    one_device = steps["one_device"]
    if not same(one_device, expected):
        mistakes = [
            (
                expected / 2,
                "on one device the step is half the gradient step: outside a "
                "strategy there is one replica, so read the number from "
                "num_replicas_in_sync (in your scaled_mean_loss) instead of writing 2",
            ),
            (
                n * expected,
                "the step grows with the batch size: average the squared errors "
                "(ops.mean in scaled_mean_loss), do not sum them",
            ),
            (
                -expected,
                "the step went uphill: minimize the squared error, apply the gradients "
                "of the loss itself",
            ),
            (
                _step(inputs, lambda residuals: np.sign(residuals) / n),
                "the loss should be the mean SQUARED error, ops.square(y - model(x))",
            ),
        ]
        for reference, message in mistakes:
            if same(one_device, reference):
                raise CheckFailed(message)
        raise CheckFailed(
            "on one device the step is not one SGD step down the mean squared "
            "error: differentiate scaled_mean_loss of the squared errors"
        )
    distributed = steps["distributed"]
    if same(distributed, replicas * expected):
        raise CheckFailed(
            f"the update on {replicas} replicas is {times(replicas)} the single-device one: "
            f"{SCALING_HINT} (use your scaled_mean_loss)"
        )
    if not same(distributed, expected):
        raise CheckFailed(
            f"on {replicas} replicas the step differs from the single-device "
            "step; they should be equal: scale each replica's mean loss by "
            "1 / num_replicas_in_sync"
        )


def noise_inputs(rng: np.random.Generator) -> dict:
    """Two different random seeds and a random number of draws."""
    seeds = rng.choice(2**30, size=2, replace=False)
    return {"seeds": seeds.astype("int64"), "size": np.int64(rng.integers(500, 2000))}


@exercise("6.3", points=2, title="Different noise on every replica", probe=probes.replica_noise,
          inputs=noise_inputs)
def replica_noise_verdict(inputs, outputs):
    keys = ["replicas", "first", "again", "other_seed", "next"]
    expect_keys(outputs, keys)
    size = int(inputs["size"])
    draws = {key: np.asarray(outputs[key], np.float64) for key in keys}
    replicas = draws.pop("replicas")
    if replicas.ndim != 2 or len(replicas) < 2:
        raise CheckFailed(
            "the probe did not get noise from two replicas: keep the lab's "
            "first cell, which makes a strategy with two"
        )
    for draw in [replicas[0], *draws.values()]:
        expect_shape(
            draw,
            (size,),
            f"replica_noise(({size},), seed_generator)",
            "the noise must have the requested shape",
        )
        expect_finite(draw, "the noise")
    if any(np.allclose(replicas[0], other) for other in replicas[1:]):
        raise CheckFailed(
            "all replicas drew the same noise: fold the replica id "
            "(tf.distribute.get_replica_context().replica_id_in_sync_group) into the seed with "
            "tf.random.experimental.stateless_fold_in"
        )
    if not np.allclose(draws["first"], draws["again"]):
        raise CheckFailed(
            "the same seed gave different noise: take the seed from seed_generator.next() and "
            "draw with tf.random.stateless_normal, so that runs are reproducible"
        )
    if np.allclose(draws["first"], draws["other_seed"]):
        raise CheckFailed(
            "seed generators with different seeds drew the same noise: take the "
            "seed from seed_generator.next(), not a fixed number"
        )
    if np.allclose(draws["other_seed"], draws["next"]):
        raise CheckFailed(
            "two calls with the same seed generator drew the same noise: call "
            "seed_generator.next() each time, which advances its state"
        )
    pooled = np.concatenate([replicas.ravel(), *draws.values()])
    if stats.kstest(pooled, "norm").pvalue < 1e-6:
        raise CheckFailed(
            f"the noise should be standard normal; it has mean {pooled.mean():.2f} "
            f"and standard deviation {pooled.std():.2f}: use stateless_normal"
        )


def gan_inputs(rng: np.random.Generator) -> dict:
    """Random 'digits', a per-replica batch and a number of epochs; the number of images
    leaves an incomplete last batch on two replicas. Each image's first pixel is its tag,
    ``(index + 0.5) / n``, by which the probe's stand-in GAN records what each replica saw."""
    per_replica_batch = int(rng.integers(3, 7))
    global_batch = 2 * per_replica_batch
    n = global_batch * int(rng.integers(2, 4)) + int(rng.integers(2, global_batch))
    images = rng.uniform(0.0, 1.0, (n, 28, 28, 1))
    images[:, 0, 0, 0] = (np.arange(n) + 0.5) / n
    return {
        "images": images.astype("float32"),
        "per_replica_batch": np.int64(per_replica_batch),
        "epochs": np.int64(rng.integers(1, 3)),
    }


@exercise("6.4", points=3, title="Training a course model under the strategy",
          probe=probes.distributed_gan, inputs=gan_inputs)
def distributed_gan_verdict(inputs, outputs):
    """Judged on what fit fed each replica (which images, in shards of which size), counted by
    the probe's stand-in GAN: the verdict computes the steps, shards and epochs from them."""
    expect_keys(outputs, ["replicas", "seen", "shard_sizes"])
    replicas = _replicas(outputs)
    epochs, n = int(inputs["epochs"]), len(inputs["images"])
    per_replica_batch = int(inputs["per_replica_batch"])
    global_batch = per_replica_batch * replicas
    seen = np.asarray(outputs["seen"], np.float64)
    shard_sizes = np.asarray(outputs["shard_sizes"], np.float64)
    expect_shape(seen, (replicas, n), "the record of the images each replica saw")
    expect_shape(shard_sizes, (replicas, n + 1), "the record of each replica's shard sizes")
    expect_finite(seen, "the record of the images each replica saw")
    expect_finite(shard_sizes, "the record of each replica's shard sizes")
    if not seen.any():
        raise CheckFailed("the GAN has not been trained: call gan.fit(dataset, epochs=epochs)")
    if not seen[1:].any():
        raise CheckFailed(
            "fit ran on one device only: the GAN's weights were created outside the strategy; "
            "build and compile the model inside `with strategy.scope():`"
        )
    steps = shard_sizes.sum(axis=1)
    sizes = np.flatnonzero(shard_sizes.sum(axis=0))
    expected = epochs * (n // global_batch)
    if sizes.tolist() == [per_replica_batch] and np.all(steps == steps[0]):
        if steps[0] == expected:
            if seen.max() > epochs or seen.sum() != expected * global_batch:
                raise CheckFailed(
                    "fit did not train on the `images` the function is given: make the data "
                    "set from them"
                )
            return
        if steps[0] % (n // global_batch) == 0:
            raise CheckFailed(
                f"fit ran {int(steps[0]) // (n // global_batch)} epochs; train for the "
                f"`epochs` the function is given ({epochs} here)"
            )
    if steps.max() == epochs * -(-n // global_batch) and sizes.min() < per_replica_batch:
        raise CheckFailed(
            "the last batch is smaller than the others: pass drop_remainder=True "
            "so that every replica gets an equal shard"
        )
    if steps.max() in (epochs * (n // per_replica_batch), epochs * -(-n // per_replica_batch)):
        raise CheckFailed(
            "the data set's batches hold the per-replica batch; batch it with the GLOBAL batch "
            "size, the per-replica batch times strategy.num_replicas_in_sync"
        )
    raise CheckFailed(
        f"fit took {int(steps.max())} steps with shards of {', '.join(map(str, sizes))} images; "
        f"with {n} images, global batches of {global_batch} and {epochs} epochs it should take "
        f"{expected} steps of {per_replica_batch} images on each of {replicas} replicas"
    )
