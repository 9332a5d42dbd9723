"""The shared checks of course.models.validation and course.models.base."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from course import models
from course.models import base, validation


def test_a_failed_in_step_check_reaches_the_user_as_a_short_value_error():
    @tf.function
    def step(x):
        x = validation.finite_batch(x, "The counts")
        return validation.assert_batch(x, x >= 0, "The counts contain negative values.")

    with pytest.raises(ValueError) as error, validation.input_errors_as_value_errors():
        step(tf.constant([1.0, np.nan]))
    assert str(error.value) == (
        "The counts contains NaN or infinite values; remove or impute them first."
    )
    with pytest.raises(ValueError, match=r"^The counts contain negative values\.$"), \
            validation.input_errors_as_value_errors():
        step(tf.constant([1.0, -2.0]))


def test_nothing_computed_from_a_checked_batch_runs_before_its_check_passes():
    table = tf.Variable(tf.zeros((4, 2)))

    @tf.function
    def step(indices):
        indices = validation.assert_batch(indices, (indices >= 0) & (indices < 4),
                                          "Indices must be in 0 .. 3.")
        # Without the gate the gather could run first and fail with TensorFlow's own error.
        return tf.gather(table, indices)

    with pytest.raises(ValueError, match=r"^Indices must be in 0 \.\. 3\.$"), \
            validation.input_errors_as_value_errors():
        step(tf.constant([0, 7]))


def test_other_graph_errors_pass_through_unchanged():
    @tf.function
    def step(x):
        tf.debugging.Assert(tf.reduce_all(x >= 0), ["not ours"])
        return x

    with pytest.raises(tf.errors.InvalidArgumentError), \
            validation.input_errors_as_value_errors():
        step(tf.constant([-1.0]))


def test_xla_drops_the_in_step_checks_which_is_why_models_compile_without_it():
    # Pins the TensorFlow behaviour behind CheckedInputs.compile's default: under XLA,
    # check_numerics and Assert are compiled away and a NaN batch passes silently.
    @tf.function(jit_compile=True)
    def step(x):
        return validation.finite_batch(x) * 2.0

    assert np.isnan(step(tf.constant([np.nan])).numpy()).all()


@pytest.mark.parametrize("build", [
    lambda: models.VAE(data_shape=(6,), hidden_units=(4,)),
    lambda: models.GAN(data_shape=(6,), latent_dim=2, hidden_units=(4,)),
    lambda: models.MLPRegressor(n_landmarks=3, n_targets=2, hidden_units=(4,)),
    lambda: models.DGD(n_genes=6, n_cells=8, latent_dim=2, n_components=2, hidden_units=(4,)),
], ids=["vae", "gan", "mlp", "dgd"])
def test_models_compile_without_xla_by_default_and_warn_when_asked_for_it(build):
    model = build()
    model.compile()
    assert model.jit_compile is False
    with pytest.warns(UserWarning, match="XLA drops the in-step checks"):
        build().compile(jit_compile=True)


def test_the_config_lists_the_arguments_of_every_course_constructor_in_the_chain():
    names = base.constructor_arguments(models.ConditionalGAN)
    assert names[:3] == ["data_shape", "num_classes", "latent_dim"]
    assert {"network", "hidden_units", "generator_loss", "seed"} <= set(names)
    assert "kwargs" not in names and "name" not in names


def test_a_model_that_does_not_store_an_argument_is_told_which_one():
    class Forgetful(base.Configurable, keras.Model):
        def __init__(self, width: int = 3, **kwargs):
            super().__init__(**kwargs)

    with pytest.raises(AttributeError, match="self.width"):
        Forgetful().get_config()


def test_input_arrays_finds_nested_arrays_and_skips_pipelines():
    a, b = np.zeros((2, 3)), np.ones(2)
    pipeline = tf.data.Dataset.from_tensor_slices(a)
    found = validation.input_arrays((a, b), None, pipeline, [1.0, 2.0])
    assert [array.shape for array in found] == [(2, 3), (2,), (2,)]
