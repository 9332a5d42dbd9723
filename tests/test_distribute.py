"""Distribution helpers: one strategy per process, replica scaling, distinct per-replica noise."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course import distribute


def run_on_replicas(strategy, fn):
    """Run ``fn`` on every replica inside a tf.function; return each replica's value."""
    per_replica = strategy.run(tf.function(fn))
    return [value.numpy() for value in strategy.experimental_local_results(per_replica)]


def test_strategy_splits_the_cpu_into_two_replicas(strategy):
    assert strategy.num_replicas_in_sync == 2
    assert distribute.get_strategy("mirrored", cpu_replicas=2) is strategy


def test_a_second_different_strategy_in_one_process_is_refused(strategy):
    with pytest.raises(RuntimeError, match="one strategy per process"):
        distribute.get_strategy("default")


def test_unknown_kind_and_missing_tf_config_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy kind 'tpu'"):
        distribute.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribute, "_STRATEGY", None)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.get_strategy("multiworker")


def test_latent_noise_differs_between_replicas_but_is_reproducible(strategy):
    with strategy.scope():
        seed_generator = keras.random.SeedGenerator(7)
    first = run_on_replicas(strategy, lambda: distribute.normal((4, 3), seed_generator))
    assert first[0].shape == (4, 3)
    assert not np.allclose(first[0], first[1])
    with strategy.scope():
        seed_generator = keras.random.SeedGenerator(7)
    again = run_on_replicas(strategy, lambda: distribute.normal((4, 3), seed_generator))
    np.testing.assert_array_equal(first[0], again[0])


def test_keras_random_alone_repeats_the_same_noise_on_every_replica(strategy):
    """The pitfall that distribute.normal exists for (DESIGN.md, P8)."""
    with strategy.scope():
        seed_generator = keras.random.SeedGenerator(7)
    draws = run_on_replicas(
        strategy, lambda: keras.random.normal((4, 3), seed=seed_generator)
    )
    np.testing.assert_array_equal(draws[0], draws[1])


def test_scale_loss_divides_by_the_number_of_replicas(strategy):
    values = run_on_replicas(strategy, lambda: distribute.scale_loss(tf.constant(6.0)))
    assert values == [3.0, 3.0]
    assert distribute.scale_loss(tf.constant(6.0)).numpy() == 6.0


def test_wrap_for_mixed_precision_only_under_mixed_float16():
    optimizer = keras.optimizers.SGD(0.1)
    assert distribute.wrap_for_mixed_precision(optimizer) is optimizer
    keras.config.set_dtype_policy("mixed_float16")
    wrapped = distribute.wrap_for_mixed_precision(optimizer)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert distribute.wrap_for_mixed_precision(wrapped) is wrapped



def test_fit_on_a_dataset_does_not_warn_about_shuffle():
    """Keras 3.15 warns "`shuffle=True` was passed" on every fit over a tf.data.Dataset (it is
    fit's default); importing course filters that one message so students do not chase it.
    Run in a fresh process: pytest resets warning filters inside tests."""
    import subprocess
    import sys

    script = (
        "import course, keras, numpy as np\n"
        "from course import datasets\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "model.compile(optimizer='sgd', loss='mse')\n"
        "x = np.zeros((8, 3), 'float32')\n"
        "model.fit(datasets.as_dataset(x, x[:, :1], batch_size=4), verbose=0)\n"
        "print('trained')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "trained" in result.stdout, result.stderr[-2000:]
    assert "shuffle=True" not in result.stderr


def test_the_multiworker_patch_warns_on_an_unverified_keras(monkeypatch):
    import keras
    from keras.src.backend.tensorflow import trainer

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    monkeypatch.setattr(trainer, "_course_multiworker_patch", False, raising=False)
    monkeypatch.setattr(trainer.TensorFlowTrainer, "_maybe_symbolic_build",
                        trainer.TensorFlowTrainer._maybe_symbolic_build)
    monkeypatch.setattr(trainer, "reduce_per_replica", trainer.reduce_per_replica)
    with pytest.warns(UserWarning, match="newer than the last version"):
        distribute._patch_keras_for_multiworker()


def test_the_multiworker_patch_is_skipped_when_keras_internals_changed(monkeypatch):
    from keras.src.backend.tensorflow import trainer

    monkeypatch.setattr(trainer, "_course_multiworker_patch", False, raising=False)
    monkeypatch.delattr(trainer, "reduce_per_replica")
    with pytest.warns(UserWarning, match="left unpatched"):
        distribute._patch_keras_for_multiworker()
    assert not trainer._course_multiworker_patch
