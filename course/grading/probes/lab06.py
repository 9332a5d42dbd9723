"""Probes of lab 6 (MirroredStrategy): run the student's functions on one device and on every
replica of the lab's own strategy, ``ns["strategy"]`` (a process holds one MirroredStrategy).

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab06``.
Every probe returns numbers the verdict recomputes or derives its judgement from, never a yes/no
of its own: exercise 6.4's probe hands the student's function a recording stand-in for
``models.GAN`` and returns what ``fit`` fed each replica.
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


def recording_gan_class(replicas: int, n_images: int):
    """A stand-in for ``models.GAN`` that trains nothing and records what ``fit`` fed it.

    It takes the GAN's arguments, ``compile(d_optimizer=..., g_optimizer=...)`` (building both
    optimizers at once, as the course GAN does) and ``fit``. Each training step adds, on the
    replica that runs it, one count per image of its shard (an image is known by its first
    pixel, which the grader set to ``(index + 0.5) / n_images``) to ``seen[replica]`` and one
    count of its shard's size to ``shard_sizes[replica]``. The counts are summed over the
    replicas by a plain SGD step, the way gradients are, so a model built outside the
    strategy's scope records everything on replica 0.
    """
    import keras
    import tensorflow as tf

    from course import distribute

    class RecordingGAN(keras.Model):
        def __init__(self, data_shape=None, latent_dim=None, **kwargs):
            super().__init__()
            self.seen = self.add_weight(shape=(replicas, n_images), initializer="zeros",
                                        name="seen")
            self.shard_sizes = self.add_weight(shape=(replicas, n_images + 1),
                                               initializer="zeros", name="shard_sizes")
            self.players = [self.add_weight(shape=(1,), initializer="zeros", name=name)
                            for name in ("discriminator", "generator")]
            self.recorder = keras.optimizers.SGD(learning_rate=1.0)
            self.recorder.build([self.seen, self.shard_sizes])
            self.built = True

        def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
            super().compile()
            self.d_optimizer = d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
            self.g_optimizer = g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
            for optimizer, weight in zip((self.d_optimizer, self.g_optimizer), self.players):
                optimizer.build([weight])

        def train_step(self, data):
            images = data[0] if isinstance(data, (tuple, list)) else data
            tags = tf.reshape(tf.cast(images, "float32"), (tf.shape(images)[0], -1))[:, 0]
            index = tf.clip_by_value(tf.cast(tf.floor(tags * n_images), "int32"), 0,
                                     n_images - 1)
            counts = tf.math.bincount(index, minlength=n_images, maxlength=n_images,
                                      dtype="float32")
            size = tf.minimum(tf.shape(images)[0], n_images)
            row = tf.one_hot(distribute.replica_id(), replicas)[:, None]
            self.recorder.apply(
                [-row * counts[None, :], -row * tf.one_hot(size, n_images + 1)[None, :]],
                [self.seen, self.shard_sizes],
            )
            for optimizer, weight in zip((self.d_optimizer, self.g_optimizer), self.players):
                optimizer.apply([tf.zeros((1,))], [weight])
            return {"d_loss": tf.constant(0.0), "g_loss": tf.constant(0.0)}

    return RecordingGAN


@contextlib.contextmanager
def _gan_replaced(function, stand_in):
    """``course.models.GAN``, and every global of ``function`` bound to it, replaced by
    ``stand_in`` while the block runs."""
    from course import models

    real = models.GAN
    namespace = getattr(function, "__globals__", {})
    names = [name for name, value in namespace.items() if value is real]
    models.GAN = stand_in
    namespace.update(dict.fromkeys(names, stand_in))
    try:
        yield
    finally:
        models.GAN = real
        namespace.update(dict.fromkeys(names, real))


def distributed_gan(ns, inputs):
    """What ``fit`` fed each replica when the student's ``train_distributed_gan`` trained a
    ``models.GAN`` (a recording stand-in, see ``recording_gan_class``) on the grader's images."""
    strategy = mirrored_strategy(ns)
    replicas = strategy.num_replicas_in_sync
    function = ns["train_distributed_gan"]
    stand_in = recording_gan_class(replicas, len(inputs["images"]))
    try:
        with _gan_replaced(function, stand_in), quiet_tensorflow():
            result = function(
                strategy, inputs["images"], int(inputs["per_replica_batch"]), int(inputs["epochs"])
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
    if not isinstance(gan, stand_in):
        raise CheckFailed(
            "train_distributed_gan should return the GAN it trained, made with "
            f"models.GAN(data_shape=..., latent_dim=32); it returned a {type(gan).__name__}"
        )
    if not isinstance(getattr(history, "history", None), dict):
        raise CheckFailed("the second value returned should be the History that gan.fit returns")
    return {
        "replicas": replicas,
        "seen": gan.seen.numpy(),
        "shard_sizes": gan.shard_sizes.numpy(),
    }
