"""Probes of lab 6 (MirroredStrategy): run the student's functions on one device and on every
replica of the lab's own strategy, ``ns["strategy"]`` (a process holds one MirroredStrategy).

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab06``.
``weight_after_one_step`` is also what the lab itself runs to compare one device with two
replicas, so the notebook and its check cannot drift apart.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.grading.probes.tools import to_numpy
from course.grading.registry import CheckFailed


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TensorFlow's "Using MirroredStrategy eagerly" notes while a probe runs."""
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
    if getattr(strategy, "num_replicas_in_sync", 1) < 2:
        raise CheckFailed(
            "`strategy` has only one replica: keep the lab's first cell, "
            'distribute.get_strategy("mirrored", cpu_replicas=2)'
        )
    return strategy


def per_replica(strategy, function, what: str) -> np.ndarray:
    """``function()`` run on every replica, stacked: one row per replica."""
    with quiet_tensorflow():
        results = strategy.run(function)
    return np.stack(
        [to_numpy(value, what) for value in strategy.experimental_local_results(results)]
    )


def weight_after_one_step(on_strategy, step_function, x, y, initial_weight, learning_rate):
    """The weight of a linear model y = x w after one SGD step of ``step_function``.

    The model (no bias) starts at ``initial_weight``; the examples ``(x, y)`` form ONE global
    batch, which ``on_strategy`` splits over its replicas, and ``step_function(model,
    optimizer, x_shard, y_shard)`` runs on each replica through ``on_strategy.run``.
    """
    import keras
    import tensorflow as tf

    x, y = np.asarray(x, "float32"), np.asarray(y, "float32")
    with on_strategy.scope():
        model = keras.Sequential(
            [keras.Input(x.shape[1:]), keras.layers.Dense(y.shape[1], use_bias=False)]
        )
        model.set_weights([np.asarray(initial_weight, "float32")])
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
        optimizer.build(model.trainable_variables)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    with quiet_tensorflow():
        for x_shard, y_shard in on_strategy.experimental_distribute_dataset(batches):
            on_strategy.run(step_function, args=(model, optimizer, x_shard, y_shard))
    return model.get_weights()[0]


def _error_hint(error: Exception, name: str) -> CheckFailed:
    """A CheckFailed with a hint for an exception raised by the student's ``name``."""
    text = " ".join(str(error).split())
    if "No gradients provided" in text:
        hint = (
            "no gradient reached the weights: compute the loss inside the `with "
            "tf.GradientTape() as tape:` block and take tape.gradient(loss, variables)"
        )
    elif "You must call `compile()`" in text:
        hint = "the GAN was never compiled: call gan.compile(...) inside the scope, before fit"
    elif "scope" in text.lower() or "mirrored" in text.lower():
        hint = (
            "a variable was created outside the strategy: build AND compile the model "
            "inside `with strategy.scope():`"
        )
    else:
        hint = f"run {name}(...) in a cell to see where"
    return CheckFailed(f"{hint} ({name} raised {type(error).__name__}: {text[:120]})")


def scaled_mean_loss(ns, inputs):
    """The student's scaled loss of random per-example losses, outside and inside the strategy."""
    import tensorflow as tf

    strategy = mirrored_strategy(ns)
    function = ns["scaled_mean_loss"]
    losses = tf.constant(inputs["losses"])
    return {
        "outside": to_numpy(function(losses), "scaled_mean_loss"),
        "inside": per_replica(strategy, lambda: function(losses), "scaled_mean_loss"),
        "replicas": strategy.num_replicas_in_sync,
    }


def train_step_on_replica(ns, inputs):
    """The weight after one step of the student's replica step, on one device and distributed."""
    import tensorflow as tf

    strategy = mirrored_strategy(ns)
    step = ns["train_step_on_replica"]
    arguments = (inputs["x"], inputs["y"], inputs["initial_weight"], float(inputs["learning_rate"]))
    outputs = {"replicas": strategy.num_replicas_in_sync}
    for name, on_strategy in (
        ("one_device", tf.distribute.get_strategy()),
        ("distributed", strategy),
    ):
        try:
            outputs[name] = weight_after_one_step(on_strategy, step, *arguments)
        except NotImplementedError:
            raise
        except Exception as error:
            raise _error_hint(error, "train_step_on_replica") from None
    return outputs


def replica_noise(ns, inputs):
    """The student's noise on every replica, and outside the strategy for two seeds, twice."""
    import keras

    strategy = mirrored_strategy(ns)
    function = ns["replica_noise"]
    shape = (int(inputs["size"]),)
    seed, other_seed = (int(value) for value in inputs["seeds"])
    with strategy.scope():
        seed_generator = keras.random.SeedGenerator(seed)
    outputs = {
        "replicas": per_replica(strategy, lambda: function(shape, seed_generator), "replica_noise"),
        "first": to_numpy(function(shape, keras.random.SeedGenerator(seed)), "replica_noise"),
        "again": to_numpy(function(shape, keras.random.SeedGenerator(seed)), "replica_noise"),
    }
    seed_generator = keras.random.SeedGenerator(other_seed)
    outputs["other_seed"] = to_numpy(function(shape, seed_generator), "replica_noise")
    outputs["next"] = to_numpy(function(shape, seed_generator), "replica_noise")
    return outputs


def _created_in_scope(strategy, variable) -> bool:
    """Whether a Keras variable was created under ``strategy`` (and is mirrored by it)."""
    return bool(strategy.extended.variable_created_in_scope(getattr(variable, "value", variable)))


def distributed_gan(ns, inputs):
    """What the student's ``train_distributed_gan`` did on random images: steps, epochs, scope."""
    from course import models

    strategy = mirrored_strategy(ns)
    epochs = int(inputs["epochs"])
    try:
        result = ns["train_distributed_gan"](
            strategy, inputs["images"], int(inputs["per_replica_batch"]), epochs
        )
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as error:
        raise _error_hint(error, "train_distributed_gan") from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            "train_distributed_gan should return (gan, history), what fit returns "
            f"as the second; it returned a {type(result).__name__}"
        )
    gan, history = result
    if not isinstance(gan, models.GAN):
        raise CheckFailed(f"the model should be a course.models.GAN, got {type(gan).__name__}")
    logs = getattr(history, "history", None)
    if not isinstance(logs, dict):
        raise CheckFailed("the second value returned should be the History that gan.fit returns")
    optimizers_built = hasattr(gan, "d_optimizer") and hasattr(gan, "g_optimizer")
    return {
        "replicas": strategy.num_replicas_in_sync,
        "weights_in_scope": _created_in_scope(strategy, gan.generator.trainable_variables[0]),
        "compiled": optimizers_built,
        "optimizer_in_scope": optimizers_built
        and _created_in_scope(strategy, gan.d_optimizer.iterations),
        "d_steps": int(gan.d_optimizer.iterations.numpy()) if optimizers_built else 0,
        "g_steps": int(gan.g_optimizer.iterations.numpy()) if optimizers_built else 0,
        "epochs_logged": len(logs.get("d_loss", [])),
        "d_loss": np.asarray(logs.get("d_loss", [np.nan]), np.float64),
    }
