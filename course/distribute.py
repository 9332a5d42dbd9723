"""Distribution helpers: one strategy per process, replica-aware loss scaling, per-replica noise.

Under ``tf.distribute.MirroredStrategy`` every replica runs ``train_step`` on its share of the
global batch and the optimizer SUMS the gradients over replicas. A loss averaged with
``ops.mean`` over the local batch must therefore be divided by the number of replicas before
differentiation, or each step is N times too large. Every model in ``course.models`` feeds
:func:`scale_loss` to its tape and logs the unscaled loss.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import tensorflow as tf

_STRATEGY = None
_STRATEGY_KEY = None
KINDS = ("auto", "mirrored", "multiworker", "default")
# The newest Keras (major, minor) on which the multi-worker workaround was verified.
VERIFIED_MULTIWORKER_KERAS = (3, 15)


def configure_cpu_replicas(n: int) -> None:
    """Split the physical CPU into ``n`` logical devices (must run before TF initializes them)."""
    if n < 1:
        raise ValueError(f"cpu_replicas must be a positive integer, got {n}.")
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        raise RuntimeError(
            f"Cannot split the CPU into {n} logical devices: TensorFlow has already initialized "
            f"{have}. Call get_strategy(cpu_replicas={n}) (or set COURSE_CPU_REPLICAS={n}) at "
            "the start of the program, before any TensorFlow computation."
        ) from error


def get_strategy(kind: str = "auto", cpu_replicas: int | None = None) -> tf.distribute.Strategy:
    """Return the process-wide distribution strategy.

    Args:
        kind: "auto" mirrors over all visible GPUs (or over ``cpu_replicas`` logical CPUs when
            requested) and otherwise uses the default strategy; "mirrored" always uses
            ``MirroredStrategy``; "multiworker" uses ``MultiWorkerMirroredStrategy`` configured
            from the ``TF_CONFIG`` environment variable; "default" is no distribution.
        cpu_replicas: split the CPU into this many logical devices (default: the
            ``COURSE_CPU_REPLICAS`` environment variable), so multi-device training can be
            taught and tested on a laptop.

    The strategy is created once per process and reused: a second ``MirroredStrategy`` in the
    same process can fail with "Shape mismatch in the collective instance".
    """
    global _STRATEGY, _STRATEGY_KEY
    if kind not in KINDS:
        raise ValueError(f"Unknown strategy kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if cpu_replicas is None and os.environ.get("COURSE_CPU_REPLICAS"):
        cpu_replicas = int(os.environ["COURSE_CPU_REPLICAS"])
    key = (kind, cpu_replicas)
    if _STRATEGY is not None:
        if key != _STRATEGY_KEY:
            raise RuntimeError(
                f"A {_STRATEGY_KEY[0]!r} strategy already exists in this process; TensorFlow "
                "cannot safely create a second one. Use one strategy per process."
            )
        return _STRATEGY
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "The multiworker strategy reads the cluster from the TF_CONFIG environment "
                "variable, which is not set. See the README's two-process recipe."
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON ({error}).") from error
        if cpu_replicas:
            configure_cpu_replicas(cpu_replicas)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _patch_keras_for_multiworker()
    else:
        if cpu_replicas:
            configure_cpu_replicas(cpu_replicas)
        gpus = tf.config.list_logical_devices("GPU")
        if kind == "default" or (kind == "auto" and not gpus and not cpu_replicas):
            strategy = tf.distribute.get_strategy()
        elif gpus:
            strategy = tf.distribute.MirroredStrategy([d.name for d in gpus])
        else:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
    _STRATEGY, _STRATEGY_KEY = strategy, key
    return strategy


def _patch_keras_for_multiworker() -> None:
    """Make ``fit`` work under MultiWorkerMirroredStrategy on Keras 3.15 (keras#20585, open).

    Two bugs stop ANY model, even a ``Sequential`` one, on TF 2.21 / Keras 3.15.1:
    1. ``fit`` reduces a distributed data batch with ``strategy.reduce`` only to read its shapes
       for a symbolic build; the multi-worker strategy cannot reduce a tuple ``(x, y)`` and
       fails with "Attempt to convert a value (PerReplica...)". The local batch has the shapes.
    2. The step's scalar logs are averaged over workers with ``axis=0``, which is invalid for a
       scalar ("Invalid reduction dimension 0 for input with 0 dimensions"). Use ``axis=None``.
    Both fixes touch only the multi-worker strategy; test_multiworker.py guards them. They
    patch private Keras code, so they are applied as verified only on Keras 3.10-3.15; a newer
    Keras gets them with a warning (run tests/test_multiworker.py to see whether it still needs
    them), and a Keras whose private trainer has changed shape gets a warning and no patch.
    """
    import keras
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_course_multiworker_patch", False):
        return
    version = tuple(int(part) for part in re.findall(r"\d+", keras.__version__)[:2])
    if not hasattr(trainer, "reduce_per_replica") or not hasattr(
        trainer.TensorFlowTrainer, "_maybe_symbolic_build"
    ):
        warnings.warn(
            f"Keras {keras.__version__} changed the private trainer code that course patches "
            "for MultiWorkerMirroredStrategy (keras#20585); fit is left unpatched and may fail "
            "under the multi-worker strategy.",
            stacklevel=3,
        )
        return
    if version > VERIFIED_MULTIWORKER_KERAS:
        warnings.warn(
            f"Keras {keras.__version__} is newer than the last version on which course's "
            "multi-worker workaround (keras#20585) was verified "
            f"({'.'.join(map(str, VERIFIED_MULTIWORKER_KERAS))}); it is applied anyway. Run "
            "tests/test_multiworker.py to check that it is still needed and still right.",
            stacklevel=3,
        )
    build = trainer.TensorFlowTrainer._maybe_symbolic_build
    reduce_per_replica = trainer.reduce_per_replica

    def multiworker(strategy) -> bool:
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and multiworker(self.distribute_strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                    next(batches),
                )
                break
            iterator = None
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_logs(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean") or not multiworker(strategy):
            return reduce_per_replica(values, strategy, reduction)

        def mean(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            axis = 0 if value.values[0].shape.rank else None
            return strategy.reduce("MEAN", value, axis=axis)

        return tf.nest.map_structure(mean, values)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_logs
    trainer._course_multiworker_patch = True


def num_replicas() -> int:
    """Number of replicas that the current step is split over (1 outside any strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_id() -> tf.Tensor:
    """The id of the replica running this code, as an int32 tensor (0 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def scale_loss(loss, optimizer=None):
    """The loss to differentiate: divided by the number of replicas, and loss-scaled for
    mixed precision when ``optimizer`` is a ``LossScaleOptimizer``.

    Call it inside the ``GradientTape``; log the unscaled ``loss``.
    """
    loss = loss / tf.cast(num_replicas(), loss.dtype)
    if optimizer is not None:
        loss = optimizer.scale_loss(loss)
    return loss


def normal(shape, seed_generator, dtype="float32") -> tf.Tensor:
    """Standard normal noise that differs between replicas.

    ``keras.random.normal(seed=seed_generator)`` draws bit-identical noise on every replica
    under MirroredStrategy (its state is mirrored), so we fold the replica id into the seed.
    """
    seed = tf.cast(seed_generator.next(), tf.int32)
    seed = tf.random.experimental.stateless_fold_in(seed, replica_id())
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype)


def wrap_for_mixed_precision(optimizer):
    """Wrap ``optimizer`` in ``LossScaleOptimizer`` when the global policy is mixed_float16.

    ``compile()`` does this only for the optimizer passed as ``optimizer=``; models with their
    own optimizers (GANs) call this for each of them.
    """
    import keras

    if keras.config.dtype_policy().name != "mixed_float16":
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)
