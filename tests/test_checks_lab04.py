"""The checks of lab 4 (GANs on MNIST): each realistic mistake loses the points with a hint that
names it (that the solution passes, for every lab: tests/test_lab_structure.py)."""

from __future__ import annotations

import pytest
from lab_harness import (
    assert_passes,
    edited_namespace,
    failure_message,
    grade,
    solution_namespace,
    solution_source,
    with_mistake,
)

LAB = 4


@pytest.fixture(scope="module")
def ns():
    return solution_namespace(LAB)


# --- 4.1-4.3: the losses ------------------------------------------------------------------

LOSS_EDITS = [
    # (exercise, function, old, new, words of the hint)
    ("4.1", "discriminator_loss", "from_logits=True", "from_logits=False", "from_logits=True"),
    ("4.1", "discriminator_loss", "return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return ops.mean(ops.concatenate([real_loss, fake_loss]))", "ADD the mean BCE"),
    ("4.1", "discriminator_loss", "return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return ops.sum(real_loss) + ops.sum(fake_loss)", "average the per-example losses"),
    ("4.1", "discriminator_loss", "return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return real_loss + fake_loss", "should return one number"),
    ("4.1", "discriminator_loss", "return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return ops.mean(real_loss)", "add the BCE of the fakes"),
    ("4.1", "discriminator_loss", "return ops.mean(real_loss) + ops.mean(fake_loss)",
     "return np.mean(real_loss) + np.mean(fake_loss)", "not numpy"),
    ("4.2", "non_saturating_generator_loss", "ops.ones_like(fake_logits)",
     "ops.zeros_like(fake_logits)", "make D say 'fake'"),
    ("4.2", "non_saturating_generator_loss", "return ops.mean(", "return -ops.mean(",
     "sign is flipped"),
    ("4.2", "non_saturating_generator_loss", "from_logits=True", "from_logits=False",
     "from_logits=True"),
    ("4.2", "non_saturating_generator_loss", "return ops.mean(", "return ops.sum(",
     "average the per-example losses"),
    ("4.3", "saturating_generator_loss", "return -ops.mean(", "return ops.mean(",
     "sign is flipped"),
    ("4.3", "saturating_generator_loss", "from_logits=True", "from_logits=False",
     "from_logits=True"),
    ("4.3", "saturating_generator_loss", "return -ops.mean(", "return -ops.sum(",
     "average the per-example losses"),
]


@pytest.mark.parametrize("exercise_id, name, old, new, words", LOSS_EDITS)
def test_loss_mistakes_lose_the_points_with_their_hint(ns, exercise_id, name, old, new, words):
    wrong = edited_namespace(LAB, name, old, new, namespace=ns)
    assert words in failure_message(exercise_id, wrong)


SWAPPED_LABELS = """
def discriminator_loss(real_logits, fake_logits):
    real_loss = ops.binary_crossentropy(ops.zeros_like(real_logits), real_logits, from_logits=True)
    fake_loss = ops.binary_crossentropy(ops.ones_like(fake_logits), fake_logits, from_logits=True)
    return ops.mean(real_loss) + ops.mean(fake_loss)
"""
SATURATING_FOR_NON_SATURATING = """
def non_saturating_generator_loss(fake_logits):
    return saturating_generator_loss(fake_logits)
"""
NON_SATURATING_FOR_SATURATING = """
def saturating_generator_loss(fake_logits):
    return non_saturating_generator_loss(fake_logits)
"""
# Keras' ops.binary_crossentropy undoes a sigmoid it can see, so the sigmoid applied twice is
# written with TensorFlow's own cross-entropy.
SIGMOID_TWICE_4_1 = """
def discriminator_loss(real_logits, fake_logits):
    real_loss = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ops.ones_like(real_logits), logits=ops.sigmoid(real_logits))
    fake_loss = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ops.zeros_like(fake_logits), logits=ops.sigmoid(fake_logits))
    return ops.mean(real_loss) + ops.mean(fake_loss)
"""
SIGMOID_TWICE_4_2 = """
def non_saturating_generator_loss(fake_logits):
    return ops.mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ops.ones_like(fake_logits), logits=ops.sigmoid(fake_logits)))
"""
SIGMOID_TWICE_4_3 = """
def saturating_generator_loss(fake_logits):
    return -ops.mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ops.zeros_like(fake_logits), logits=ops.sigmoid(fake_logits)))
"""
CONSTANT = """
def discriminator_loss(real_logits, fake_logits):
    return ops.convert_to_tensor(1.386)
"""


@pytest.mark.parametrize("exercise_id, source, words", [
    ("4.1", SWAPPED_LABELS, "labels are swapped"),
    ("4.1", SIGMOID_TWICE_4_1, "sigmoid before"),
    ("4.2", SIGMOID_TWICE_4_2, "sigmoid before"),
    ("4.3", SIGMOID_TWICE_4_3, "sigmoid before"),
    ("4.1", CONSTANT, "mean BCE(1, real) + mean BCE(0, fake)"),
    ("4.2", SATURATING_FOR_NON_SATURATING, "saturating loss log(1 - D(G(z)))"),
    ("4.3", NON_SATURATING_FOR_SATURATING, "non-saturating loss of exercise 4.2"),
])
def test_rewritten_losses_lose_the_points_with_their_hint(ns, exercise_id, source, words):
    assert words in failure_message(exercise_id, with_mistake(ns, source))


@pytest.mark.parametrize("exercise_id, source", [
    ("4.1", """
def discriminator_loss(real_logits, fake_logits):
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    return bce(ops.ones_like(real_logits), real_logits) + bce(
        ops.zeros_like(fake_logits), fake_logits)
"""),
    ("4.2", """
def non_saturating_generator_loss(fake_logits):
    return -ops.mean(ops.log(ops.sigmoid(fake_logits)))
"""),
    ("4.3", """
def saturating_generator_loss(fake_logits):
    return ops.mean(ops.log(1 - ops.sigmoid(fake_logits)))
"""),
])
def test_other_right_formulas_pass(ns, exercise_id, source):
    assert_passes(exercise_id, with_mistake(ns, source))


# --- 4.4: the training step ---------------------------------------------------------------

STEP_EDITS = [
    # (old, new, words of the hint)
    ("misleading_labels = ops.ones(", "misleading_labels = ops.zeros(", "make D say 'fake'"),
    ("""g_loss = ops.mean(
                ops.binary_crossentropy(misleading_labels, fake_logits, from_logits=True)
            )""", "g_loss = saturating_generator_loss(fake_logits)", "saturating loss"),
    ("g_loss = ops.mean(", "g_loss = -ops.mean(", "generator went uphill"),
    ("g_loss = ops.mean(", "g_loss = ops.sum(", "grows with the batch size"),
    ("weights = self.generator.trainable_weights", "weights = self.trainable_weights",
     "discriminator's weights changed during the generator step"),
    ("weights = self.discriminator.trainable_weights", "weights = self.trainable_weights",
     "generator's weights changed during the discriminator step"),
    ("self.discriminator(real_images), self.discriminator(generated_images)",
     "self.discriminator(generated_images), self.discriminator(real_images)",
     "real and fake labels swapped"),
    ("self.d_optimizer.apply(tape.gradient(d_loss, weights), weights)", "pass",
     "discriminator was never updated"),
    ("self.g_optimizer.apply(tape.gradient(g_loss, weights), weights)", "pass",
     "generator was never updated"),
    ("return self.update_trackers(d_loss=d_loss, g_loss=g_loss)", "return g_loss",
     "should return the dict"),
    ("return self.update_trackers(d_loss=d_loss, g_loss=g_loss)",
     "return self.update_trackers(d_loss=g_loss, g_loss=d_loss)",
     "not the loss of that player's update"),
    ("""with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(random_latent_vectors))""",
     """fake_logits = self.discriminator(self.generator(random_latent_vectors))
        with tf.GradientTape() as tape:""", "no gradient reached the weights"),
    ("""random_latent_vectors = keras.random.normal(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )
        generated_images""", """random_latent_vectors = keras.random.uniform(
            (batch_size, self.latent_dim), seed=self.seed_generator
        )
        generated_images""", "not standard normal"),
    ("(batch_size, self.latent_dim), seed=self.seed_generator\n        )\n        generated",
     "(self.latent_dim, batch_size), seed=self.seed_generator\n        )\n        generated",
     "a shape does not fit"),
]


@pytest.mark.parametrize("old, new, words", STEP_EDITS)
def test_train_step_mistakes_lose_the_points_with_their_hint(ns, old, new, words):
    wrong = edited_namespace(LAB, "SmallGAN", old, new, namespace=ns)
    assert words in failure_message("4.4", wrong)


def test_a_discriminator_step_on_the_mean_of_both_halves_is_half_the_step(ns):
    wrong = edited_namespace(LAB, "SmallGAN", "d_loss = discriminator_loss(", "d_loss = 0.5 * "
                             "discriminator_loss(", namespace=ns)
    assert "half the expected one" in failure_message("4.4", wrong)


# SmallGAN is defined again after the mistake, so that its train_step sees the new function.
SMALL_GAN = solution_source(LAB, "SmallGAN")


def test_train_step_with_a_wrong_discriminator_loss_says_to_fix_4_1_first(ns):
    source = solution_source(LAB, "discriminator_loss").replace("from_logits=True",
                                                                "from_logits=False")
    wrong = with_mistake(ns, source + SMALL_GAN)
    assert "fix exercise 4.1 first" in failure_message("4.4", wrong)


def test_train_step_without_a_discriminator_loss_is_not_implemented_yet(ns):
    stub = with_mistake(ns, """
def discriminator_loss(real_logits, fake_logits):
    raise NotImplementedError("Exercise 4.1: ...")
""" + SMALL_GAN)
    message = failure_message("4.4", stub)
    assert message.startswith("not implemented yet: train_step uses discriminator_loss")


def test_a_simultaneous_update_with_unseeded_noise_passes(ns):
    """Computing both players' losses before either update is a GAN too (and noise without a
    seed generator is still noise)."""
    variant = with_mistake(ns, """
class SmallGAN(SmallGAN):
    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        noise = keras.random.normal((batch_size, self.latent_dim))
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake_logits = self.discriminator(self.generator(noise))
            d_loss = discriminator_loss(self.discriminator(real_images), fake_logits)
            g_loss = non_saturating_generator_loss(fake_logits)
        d_weights = self.discriminator.trainable_weights
        g_weights = self.generator.trainable_weights
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_weights), d_weights)
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_weights), g_weights)
        return self.update_trackers(d_loss=d_loss, g_loss=g_loss)
""")
    assert_passes("4.4", variant, seeds=(0,))


def test_a_changed_architecture_is_named(ns):
    wrong = edited_namespace(LAB, "SmallGAN", "hidden_units[::-1]", "(8, 8)", namespace=ns)
    assert "keep the given __init__" in failure_message("4.4", wrong)


# --- 4.5: the grid of classes ---------------------------------------------------------------

GRID_EDITS = [
    ("np.arange(cgan.num_classes)", "np.arange(10)", "cgan.num_classes"),
    ("np.repeat(np.arange(cgan.num_classes), n_per_class)",
     "np.tile(np.arange(cgan.num_classes), n_per_class)", "repeat, not tile"),
    ("np.repeat(np.arange(cgan.num_classes), n_per_class)", "np.arange(cgan.num_classes)",
     "each class needs n_per_class labels"),
    ("cgan.generate(grid_labels, seed=0)", "cgan.generate(grid_labels)", "seed of 0"),
    ("np.arange(cgan.num_classes)", "np.arange(cgan.num_classes, dtype=float)",
     "integer labels"),
    ("np.repeat(np.arange(cgan.num_classes), n_per_class)",
     "np.repeat(np.arange(cgan.num_classes), n_per_class).reshape(cgan.num_classes, -1)",
     "one-dimensional"),
    ("return grid_labels, cgan.generate(grid_labels, seed=0)",
     "return cgan.generate(grid_labels, seed=0)", "should return two things"),
]


@pytest.mark.parametrize("old, new, words", GRID_EDITS)
def test_grid_mistakes_lose_the_points_with_their_hint(ns, old, new, words):
    wrong = edited_namespace(LAB, "grid_of_classes", old, new, namespace=ns)
    for seed in (0, 1, 2):
        assert words in failure_message("4.5", wrong, seed)


def test_every_failure_is_a_hint_not_a_raw_exception(ns):
    """A train_step that crashes inside TensorFlow still gets a hint, and the exception's name."""
    wrong = with_mistake(ns, """
class SmallGAN(SmallGAN):
    def train_step(self, real_images):
        return self.generator(real_images)
""")
    message = grade("4.4", wrong).message
    assert message.startswith("a shape does not fit") and "train_step raised" in message
