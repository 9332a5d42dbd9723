"""The checks of labs 4-6: each solution passes, and each realistic mistake fails with a message
that names it.

The solutions' own functions are taken from ``solutions/0N_*.py`` (parsed, not run), so these
tests follow the notebooks; the mistakes are small edits of that source or short rewrites.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from course.grading.registry import get_exercise, run_check

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
PREAMBLE = """
import keras
import numpy as np
import tensorflow as tf
from keras import ops
from sklearn.linear_model import LinearRegression
from course import datasets, metrics, models, networks
"""


def solution_source(lab: str, *names: str) -> str:
    """The source of the named top-level functions and classes of a solution notebook."""
    path = next(SOLUTIONS.glob(f"{lab}_*.py"))
    text = path.read_text()
    nodes = {node.name: node for node in ast.parse(text).body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    return "".join(ast.get_source_segment(text, nodes[name]) + "\n\n\n" for name in names)


def namespace(source: str = "", **names) -> dict:
    """A student namespace: the preamble's imports, ``source`` executed, and ``names``."""
    ns = {"__name__": "__main__", **names}
    exec(PREAMBLE + source, ns)
    return ns


def edited(source: str, old: str, new: str) -> str:
    assert old in source, f"the solution no longer contains {old!r}"
    return source.replace(old, new)


def grade(exercise_id: str, ns: dict):
    return run_check(get_exercise(exercise_id), ns, timeout=None)


def assert_passes(exercise_id: str, ns: dict) -> None:
    result = grade(exercise_id, ns)
    assert result.passed, result.message


def assert_fails(exercise_id: str, ns: dict, phrase: str) -> None:
    result = grade(exercise_id, ns)
    assert not result.passed
    assert phrase in result.message, result.message
    assert "Traceback" not in result.message


# --- Lab 4: GANs on MNIST --------------------------------------------------------------------

D_LOSS = solution_source("04", "discriminator_loss")
NON_SATURATING = solution_source("04", "non_saturating_generator_loss")
SATURATING = solution_source("04", "saturating_generator_loss")
SMALL_GAN = solution_source("04", "discriminator_loss", "SmallGAN")


def test_lab4_solutions_pass():
    ns = namespace(D_LOSS + NON_SATURATING + SATURATING)
    for exercise_id in ("4.1", "4.2", "4.3"):
        assert_passes(exercise_id, ns)


@pytest.mark.parametrize("old, new, phrase", [
    ("ops.ones_like(real_logits), real_logits", "ops.zeros_like(real_logits), real_logits",
     "real images must have label 1"),
    ("from_logits=True", "from_logits=False", "from_logits=True"),
    ("return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return ops.mean(ops.concatenate([real_loss, fake_loss]))", "ADD the mean BCE"),
    ("return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return ops.sum(real_loss) + ops.sum(fake_loss)", "instead of summing"),
    ("return ops.mean(real_loss) + ops.mean(fake_loss)", "return real_loss + fake_loss",
     "should return one number"),
])
def test_discriminator_loss_mistakes_are_named(old, new, phrase):
    assert_fails("4.1", namespace(edited(D_LOSS, old, new)), phrase)


def test_generator_trained_on_the_discriminators_label_is_named():
    wrong = edited(NON_SATURATING, "ops.ones_like(fake_logits)", "ops.zeros_like(fake_logits)")
    assert_fails("4.2", namespace(wrong), "make D say 'fake'")


def test_saturating_and_non_saturating_confused_are_named():
    saturating_as_non_saturating = SATURATING.replace(
        "def saturating_generator_loss", "def non_saturating_generator_loss")
    assert_fails("4.2", namespace(saturating_as_non_saturating), "this is the saturating loss")
    non_saturating_as_saturating = NON_SATURATING.replace(
        "def non_saturating_generator_loss", "def saturating_generator_loss")
    assert_fails("4.3", namespace(non_saturating_as_saturating), "this is the non-saturating")
    assert_fails("4.3", namespace(edited(SATURATING, "return -ops.mean(", "return ops.mean(")),
                 "the sign is flipped")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_step_solution_passes_whatever_the_initial_weights(seed):
    keras.utils.set_random_seed(seed)
    assert_passes("4.4", namespace(SMALL_GAN))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generator_trained_with_the_discriminators_labels_fails(seed):
    keras.utils.set_random_seed(seed)
    wrong = edited(SMALL_GAN, "misleading_labels = ops.ones(", "misleading_labels = ops.zeros(")
    assert_fails("4.4", namespace(wrong), "the generator is trained to make D say 'fake'")


@pytest.mark.parametrize("old, new, phrase", [
    ("weights = self.generator.trainable_weights", "weights = self.trainable_weights",
     "the discriminator's weights changed during the generator step"),
    ("self.discriminator(real_images), self.discriminator(generated_images)",
     "self.discriminator(generated_images), self.discriminator(real_images)",
     "not a step down discriminator_loss"),
    ("return self.update_trackers(d_loss=d_loss, g_loss=g_loss)", "return g_loss",
     "keys 'd_loss' and 'g_loss'"),
])
def test_train_step_mistakes_are_named(old, new, phrase):
    assert_fails("4.4", namespace(edited(SMALL_GAN, old, new)), phrase)


def test_train_step_reports_a_broken_discriminator_loss_first():
    wrong = edited(SMALL_GAN, "from_logits=True", "from_logits=False")
    assert_fails("4.4", namespace(wrong), "fix exercise 4.1 first")


def test_train_step_without_a_discriminator_loss_counts_as_not_implemented():
    stub = "def discriminator_loss(real_logits, fake_logits):\n    raise NotImplementedError\n"
    result = grade("4.4", namespace(stub + solution_source("04", "SmallGAN")))
    assert result.message.startswith("not implemented yet: train_step uses discriminator_loss")


def test_class_grid_needs_one_row_per_class():
    labels = np.repeat(np.arange(10), 3)
    images = np.zeros((30, 28, 28, 1), "float32")
    assert_passes("4.5", namespace(grid_labels=labels, grid_images=images))
    tiled = np.tile(np.arange(10), 3)
    assert_fails("4.5", namespace(grid_labels=tiled, grid_images=images), "np.repeat")
    assert_fails("4.5", namespace(grid_labels=labels, grid_images=images[:10]), "shape (30")


# --- Lab 5: landmark genes -------------------------------------------------------------------

LAB5_EPOCHS = {"EPOCHS": 3, "BATCH_SIZE": 32}


def test_linear_baseline_solution_passes_and_swapped_arguments_fail():
    source = solution_source("05", "fit_linear_baseline")
    assert_passes("5.1", namespace(source))
    swapped = edited(source, "fit(landmarks, targets)", "fit(targets, landmarks)")
    assert_fails("5.1", namespace(swapped), "inputs first")


def test_mlp_solution_passes_and_its_mistakes_are_named():
    source = solution_source("05", "train_mlp")
    assert_passes("5.2", namespace(source, **LAB5_EPOCHS))
    fixed_loss = edited(source, "loss=loss)", 'loss="mse")')
    assert_fails("5.2", namespace(fixed_loss, **LAB5_EPOCHS), "pass the function's `loss`")
    on_test_cells = edited(source, "mlp.fit(split.x_train, split.y_train",
                           "mlp.fit(split.x_test, split.y_test")
    assert_fails("5.2", namespace(on_test_cells, **LAB5_EPOCHS), "trained on the test cells")


GGAN_LOSS = solution_source("05", "ggan_generator_loss")


def test_ggan_loss_solution_passes():
    assert_passes("5.3", namespace(GGAN_LOSS))


@pytest.mark.parametrize("old, new, phrase", [
    ("ops.ones_like(fake_logits), fake_logits", "ops.zeros_like(fake_logits), fake_logits",
     "make D say 'fake'"),
    ("ops.abs(predicted - targets)", "ops.square(predicted - targets)", "ABSOLUTE difference"),
    ("ops.square(predicted - other_predicted)", "ops.square(predicted - targets)",
     "compare the two noisy predictions"),
    ("ops.square(predicted - other_predicted)", "ops.abs(predicted - other_predicted)",
     "mean SQUARED difference"),
    ("l1_weight * l1_loss", "l1_loss", "multiply it by l1_weight"),
    ("consistency_weight * consistency_loss", "consistency_loss",
     "multiply it by consistency_weight"),
])
def test_ggan_loss_mistakes_are_named(old, new, phrase):
    assert_fails("5.3", namespace(edited(GGAN_LOSS, old, new)), phrase)


CCC = solution_source("05", "concordance_correlation")


def test_ccc_solution_and_the_course_metric_pass():
    from course import metrics

    assert_passes("5.4", namespace(CCC))
    assert_passes("5.4", namespace(concordance_correlation=metrics.concordance_correlation))


def test_ccc_with_sample_statistics_throughout_passes():
    def ccc(y_true, y_pred):
        y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
        covariance = np.cov(y_true, y_pred)[0, 1]
        gap = (y_true.mean() - y_pred.mean()) ** 2
        return 2 * covariance / (y_true.var(ddof=1) + y_pred.var(ddof=1) + gap)

    assert_passes("5.4", namespace(concordance_correlation=ccc))


def test_ccc_mistakes_are_named():
    without_gap = edited(CCC, " + (mean_true - mean_pred) ** 2", "")
    assert_fails("5.4", namespace(without_gap), "(mean_true - mean_pred)**2")

    def pearson(y_true, y_pred):
        return np.corrcoef(np.ravel(y_true), np.ravel(y_pred))[0, 1]

    assert_fails("5.4", namespace(concordance_correlation=pearson), "Pearson")


def test_score_solution_passes_and_a_pearson_score_fails():
    y_test = np.random.default_rng(0).standard_normal((20, 4)).astype("float32")
    split = types.SimpleNamespace(y_test=y_test)
    source = solution_source("05", "concordance_correlation", "score")
    assert_passes("5.5", namespace(source, split=split))
    wrong = edited(source, '"CCC": concordance_correlation(split.y_test, predictions)',
                   '"CCC": np.corrcoef(split.y_test.ravel(), predictions.ravel())[0, 1]')
    assert_fails("5.5", namespace(wrong, split=split), "use concordance_correlation")


# --- Lab 6: scaling out (the session's two-replica strategy) ---------------------------------

SCALED_LOSS = solution_source("06", "scaled_mean_loss")
UNSCALED_LOSS = edited(SCALED_LOSS, "ops.mean(per_example_losses) / num_replicas",
                       "ops.mean(per_example_losses)")


def test_scaled_loss_solution_passes_and_its_mistakes_are_named(strategy):
    assert_passes("6.1", namespace(SCALED_LOSS, strategy=strategy))
    assert_fails("6.1", namespace(UNSCALED_LOSS, strategy=strategy),
                 "the update on 2 replicas is twice the single-device one: divide the loss by "
                 "num_replicas_in_sync")
    hard_coded = edited(SCALED_LOSS, "/ num_replicas", "/ 2")
    assert_fails("6.1", namespace(hard_coded, strategy=strategy), "instead of writing it")


def test_replica_step_equals_the_single_device_step_only_with_scaling(strategy):
    step = solution_source("06", "train_step_on_replica")
    assert_passes("6.2", namespace(SCALED_LOSS + step, strategy=strategy))
    assert_fails("6.2", namespace(UNSCALED_LOSS + step, strategy=strategy),
                 "the update on 2 replicas is twice the single-device one")


def test_replica_noise_solution_passes_and_shared_or_unseeded_noise_fails(strategy):
    source = solution_source("06", "replica_noise")
    assert_passes("6.3", namespace(source, strategy=strategy))

    def same_on_every_replica(shape, seed_generator):
        return keras.random.normal(shape, seed=seed_generator)

    assert_fails("6.3", namespace(replica_noise=same_on_every_replica, strategy=strategy),
                 "all replicas drew the same noise")

    def unseeded(shape, seed_generator):
        return tf.random.normal(shape)

    assert_fails("6.3", namespace(replica_noise=unseeded, strategy=strategy),
                 "the same seed gave different noise")


def trained_gan(strategy, in_scope=True, per_replica_batch=8, drop_remainder=True):
    """The names of exercise 6.4 for a tiny GAN trained for one epoch."""
    from course import datasets, models

    global_batch_size = per_replica_batch * strategy.num_replicas_in_sync
    x = np.random.default_rng(0).random((2 * global_batch_size, 4)).astype("float32")
    digits = datasets.as_dataset(x, batch_size=global_batch_size, drop_remainder=drop_remainder)
    scope = strategy.scope() if in_scope else tf.distribute.get_strategy().scope()
    with scope:
        gan = models.GAN(data_shape=(4,), latent_dim=2, hidden_units=(8,))
        gan.compile()
    history = gan.fit(digits, epochs=1, verbose=0)
    return {"strategy": strategy, "distributed_gan": gan, "distributed_history": history,
            "digits": digits, "global_batch_size": global_batch_size,
            "PER_REPLICA_BATCH": per_replica_batch}


def test_gan_trained_in_the_scope_passes_and_setup_mistakes_are_named(strategy):
    assert_passes("6.4", namespace(**trained_gan(strategy)))
    assert_fails("6.4", namespace(**trained_gan(strategy, in_scope=False)),
                 "build and compile the model inside `with strategy.scope():`")
    assert_fails("6.4", namespace(**trained_gan(strategy, drop_remainder=False)),
                 "drop_remainder=True")
    names = trained_gan(strategy)
    names["global_batch_size"] = names["PER_REPLICA_BATCH"]
    assert_fails("6.4", namespace(**names), "times the number of replicas")
