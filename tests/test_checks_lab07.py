"""Lab 7's checks: each realistic mistake loses the exercise's points with a hint that names
the mistake (that the solution passes, for every lab: tests/test_lab_structure.py)."""

from __future__ import annotations

import pytest
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    grade,
    solution_namespace,
    with_mistake,
)


@pytest.fixture(scope="module")
def lab7():
    return solution_namespace(7)


def test_the_checks_leave_the_students_functions_in_place(lab7):
    before = (lab7["Representations"], lab7["gmm_log_density"])
    grade("7.3", lab7)
    assert (lab7["Representations"], lab7["gmm_log_density"]) == before


TABLE_INIT = "initializer=keras.initializers.RandomNormal(stddev=0.01)"
INDENT = "\n" + " " * 25
NORMAL_TERMS = f"log_variances{INDENT}+ ops.square(difference) / ops.exp(log_variances)"
STEP_APPLY = "self.representation_optimizer.apply(gradients[-1:], [table])"
MISTAKES = {
    "table transposed": ("7.1", "Representations", "shape=(n_cells, latent_dim)",
                         "shape=(latent_dim, n_cells)", "transposed"),
    "table not trainable": ("7.1", "Representations", "trainable=True", "trainable=False",
                            "not a trainable weight"),
    "table starts far out": ("7.1", "Representations", TABLE_INIT,
                             "initializer=keras.initializers.RandomNormal(stddev=1.0)",
                             "start them near 0"),
    "table starts uniform in [0, 1)": ("7.1", "Representations", TABLE_INIT,
                                       "initializer=keras.initializers.RandomUniform(0.0, 1.0)",
                                       "start off-centre"),
    "table starts at a constant": ("7.1", "Representations", TABLE_INIT,
                                   "initializer=keras.initializers.Constant(0.01)",
                                   "start off-centre"),
    "variance used as std": ("7.2", "gmm_log_density", NORMAL_TERMS,
                             f"2 * log_variances{INDENT}+ ops.square(difference) / ops.exp(2 * "
                             "log_variances)", "exp(log_variances) is the variance"),
    "weights not normalized": ("7.2", "gmm_log_density", "ops.log_softmax(weight_logits)",
                               "weight_logits", "do not sum to 1"),
    "weights left out": ("7.2", "gmm_log_density", " + ops.log_softmax(weight_logits)", "",
                         "mixture weights are missing"),
    "log of a sum of exps": ("7.2", "gmm_log_density", "ops.logsumexp(log_joint, axis=-1)",
                             "ops.log(ops.sum(ops.exp(log_joint), axis=-1))", "logsumexp"),
    "numpy constant in the graph": ("7.2", "gmm_log_density", "math.log(2.0 * math.pi)",
                                    "np.log(2.0 * np.pi)", "Python floats"),
    "best component only": ("7.2", "gmm_log_density", "ops.logsumexp(log_joint, axis=-1)",
                            "ops.max(log_joint, axis=-1)", "ALL components"),
    "log terms summed": ("7.2", "gmm_log_density", "ops.logsumexp(log_joint, axis=-1)",
                         "ops.sum(log_joint, axis=-1)", "not a plain sum"),
    "wrong cells": ("7.3", "LabDGD", "z = self.representations(cell_indices)",
                    "z = self.representations(ops.arange(ops.shape(counts)[0]))",
                    "self.representations(cell_indices)"),
    "no prior term": ("7.3", "LabDGD", "loss = ops.mean(reconstruction_loss + prior_loss)",
                      "loss = ops.mean(reconstruction_loss)", "prior term"),
    "prior subtracted": ("7.3", "LabDGD", "loss = ops.mean(reconstruction_loss + prior_loss)",
                         "loss = ops.mean(reconstruction_loss - prior_loss)", "wrong sign"),
    "loss summed over the batch": ("7.3", "LabDGD", "loss = ops.mean(",
                                   "loss = ops.sum(", "average"),
    "representations never updated": ("7.3", "LabDGD", STEP_APPLY, "pass",
                                      "no representation moved"),
    "one optimizer for everything": ("7.3", "LabDGD", STEP_APPLY,
                                     "self.optimizer.apply(gradients[-1:], [table])",
                                     "self.representation_optimizer"),
    "decoder and prior frozen": ("7.3", "LabDGD",
                                 "self.optimizer.apply(gradients[:-1], self.network_weights)",
                                 "pass", "self.optimizer"),
    "no prior at inference": ("7.4", "infer_representations",
                              "model.reconstruction_loss(counts, z) + model.prior_loss(z)",
                              "model.reconstruction_loss(counts, z)", "prior term"),
    "gradient ascent": ("7.4", "infer_representations", "optimizer.apply(gradients, [z])",
                        "optimizer.apply([-gradient for gradient in gradients], [z])",
                        "loss went up"),
    "z never moves": ("7.4", "infer_representations", "return ops.convert_to_numpy(z)",
                      "return initial_z", "never moved"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_realistic_mistake_fails_with_a_specific_hint(lab7, mistake):
    exercise_id, name, old, new, words = MISTAKES[mistake]
    wrong = edited_namespace(7, name, old=old, new=new, namespace=lab7)
    assert words in failure_message(exercise_id, wrong)


def test_updating_the_frozen_model_at_inference_fails(lab7):
    wrong = with_mistake(lab7, """
def infer_representations(model, counts, initial_z, steps, learning_rate=0.05):
    z = keras.Variable(initial_z)
    optimizer = keras.optimizers.Adam(learning_rate)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = ops.sum(model.reconstruction_loss(counts, z) + model.prior_loss(z))
        variables = [*model.trainable_weights, z]
        optimizer.apply(tape.gradient(loss, variables), variables)
    return ops.convert_to_numpy(z)
""")
    assert "stays frozen" in failure_message("7.4", wrong)


def test_a_dense_lookup_still_passes_but_a_constant_table_does_not(lab7):
    """A one-hot matrix product is a correct (if wasteful) lookup; a table outside the layer's
    weights is not trainable."""
    dense = edited_namespace(7, "Representations", namespace=lab7,
                             old="return ops.take(self.table, cell_indices, axis=0)",
                             new="return ops.one_hot(cell_indices, ops.shape(self.table)[0]) "
                                 "@ self.table")
    assert_passes("7.1", dense, seeds=(0,))
    symmetric = edited_namespace(7, "Representations", namespace=lab7, old=TABLE_INIT,
                                 new="initializer=keras.initializers.RandomUniform(-0.05, 0.05)")
    assert_passes("7.1", symmetric, seeds=(0, 1, 2))
    constant = with_mistake(lab7, """
class Representations(keras.layers.Layer):
    def __init__(self, n_cells, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.table = tf.constant(np.zeros((n_cells, latent_dim), "float32"))

    def call(self, cell_indices):
        return ops.take(self.table, cell_indices, axis=0)
""")
    assert "trainable" in failure_message("7.1", constant)
