"""Checks of lab 4, GANs on MNIST (``solutions/04_gans_mnist.py``).

The loss checks compare the student's value and gradient with the formula on random logits
and, when it is wrong, recognize the usual mistakes (swapped labels, saturating for
non-saturating, logits taken for probabilities, a sigmoid applied twice, a sum for a mean).
The training-step check runs one step of the student's ``SmallGAN`` from random weights with
plain SGD (probe), and recomputes both players' updates here from the same weights, batch and
latent vectors; each known wrong update is recomputed too, so that its hint can name it.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.steps import gradient_step
from course.grading.checks.tools import (
    bce_against_one,
    bce_against_zero,
    close,
    compare,
    expect_finite,
    expect_flags,
    expect_keys,
    expect_shape,
    probability_bce,
    scalar,
    sigmoid,
)
from course.grading.probes import lab04 as probes
from course.grading.registry import CheckFailed, exercise

FROM_LOGITS = "D outputs logits, not probabilities: pass from_logits=True to binary_crossentropy"
SIGMOID_TWICE = (
    "the logits went through a sigmoid before a from_logits=True cross-entropy, which applies "
    "the sigmoid again: pass the logits themselves"
)
SUMMED = "the loss grows with the batch size: average the per-example losses with ops.mean"
NOT_DIFFERENTIABLE = (
    "no gradient flows from {name} back to the logits: compute it with keras.ops "
    "(ops.binary_crossentropy, ops.mean), not numpy, so that D and G can learn from it"
)
SATURATING_HINT = (
    "this is the saturating loss log(1 - D(G(z))) of exercise 4.3; the lab asks for the "
    "non-saturating one, -log D(G(z)): the BCE of the fake logits against the label 1 ('real')"
)
TO_FAKE = (
    "the generator is trained to make D say 'fake' (label 0), which is D's goal: the generator's "
    "loss is the BCE of its images against the label 1, 'real'"
)


def logits_inputs(rng: np.random.Generator) -> dict:
    """Random logits of a batch of real and of generated images (random size, center, spread)."""
    batch, scale = int(rng.integers(6, 40)), rng.uniform(0.5, 2.5)
    return {
        name: rng.normal(rng.uniform(-1.0, 1.0), scale, (batch, 1)).astype("float32")
        for name in ("real_logits", "fake_logits")
    }


def expect_loss(outputs, name: str, expected: float, mistakes: list[tuple[float, str]],
                gradients: list[np.ndarray], where: str) -> None:
    """Fail unless the probe's value of the loss ``name`` is ``expected``, naming the first of
    ``mistakes`` (value, hint) it matches (else saying ``where``), and unless its gradients
    with respect to the logits arguments are ``gradients``."""
    expect_keys(outputs, ["value", "no_gradient"])
    compare(scalar(outputs["value"], name), expected, mistakes, where)
    if int(outputs["no_gradient"]):
        raise CheckFailed(NOT_DIFFERENTIABLE.format(name=name))
    for index, reference in enumerate(gradients):
        got = np.asarray(outputs[f"gradient_{index}"], np.float64)
        if got.shape != reference.shape or not np.allclose(got, reference, rtol=1e-3, atol=1e-6):
            raise CheckFailed(
                f"{name} has the right value but not the right gradient: compute it from the "
                "logits with keras.ops only (no stop_gradient, no numpy)"
            )


@exercise("4.1", points=2, title="The discriminator loss", probe=probes.discriminator_loss,
          inputs=logits_inputs)
def discriminator_loss_verdict(inputs, outputs):
    real, fake = np.float64(inputs["real_logits"]), np.float64(inputs["fake_logits"])
    expected = bce_against_one(real) + bce_against_zero(fake)
    mistakes = [
        (expected / 2, "the loss is half the expected value: ADD the mean BCE on the real "
                       "images and the mean BCE on the fakes, do not average the two"),
        (probability_bce(1, real) + probability_bce(0, fake), FROM_LOGITS),
        (bce_against_one(sigmoid(real)) + bce_against_zero(sigmoid(fake)), SIGMOID_TWICE),
        (bce_against_zero(real) + bce_against_one(fake),
         "the labels are swapped: real images have label 1, generated images label 0"),
        (len(real) * expected, SUMMED),
        (-expected, "the sign is flipped: D minimizes its cross-entropy, a positive number"),
        (bce_against_one(real),
         "only the real images count: add the BCE of the fakes against the label 0"),
        (bce_against_zero(fake),
         "only the fakes count: add the BCE of the real images against the label 1"),
    ]
    gradients = [(sigmoid(real) - 1) / len(real), sigmoid(fake) / len(fake)]
    expect_loss(outputs, "discriminator_loss", expected, mistakes, gradients,
                "for random logits the loss should be mean BCE(1, real) + mean BCE(0, fake)")


@exercise("4.2", points=2, title="The non-saturating generator loss",
          probe=probes.non_saturating_generator_loss, inputs=logits_inputs)
def non_saturating_loss_verdict(inputs, outputs):
    fake = np.float64(inputs["fake_logits"])
    expected = bce_against_one(fake)
    mistakes = [
        (bce_against_zero(fake), TO_FAKE),
        (-bce_against_zero(fake), SATURATING_HINT),
        (-expected,
         "the sign is flipped: minimize the BCE against the label 1, do not maximize it"),
        (probability_bce(1, fake), FROM_LOGITS),
        (bce_against_one(sigmoid(fake)), SIGMOID_TWICE),
        (len(fake) * expected, SUMMED),
    ]
    expect_loss(outputs, "non_saturating_generator_loss", expected, mistakes,
                [(sigmoid(fake) - 1) / len(fake)],
                "for random logits the loss should be the mean BCE of the fake logits against 1")


@exercise("4.3", points=1, title="The saturating generator loss",
          probe=probes.saturating_generator_loss, inputs=logits_inputs)
def saturating_loss_verdict(inputs, outputs):
    fake = np.float64(inputs["fake_logits"])
    expected = -bce_against_zero(fake)
    mistakes = [
        (bce_against_one(fake), "this is the non-saturating loss of exercise 4.2; the saturating "
                                "loss is mean log(1 - D(G(z))), MINUS the BCE against the label 0"),
        (-expected, "the sign is flipped: mean log(1 - D(G(z))) is negative, MINUS the BCE "
                    "against the label 0 (the generator minimizes what D maximizes)"),
        (-probability_bce(0, fake), FROM_LOGITS),
        (-bce_against_zero(sigmoid(fake)), SIGMOID_TWICE),
        (len(fake) * expected, SUMMED),
    ]
    expect_loss(outputs, "saturating_generator_loss", expected, mistakes,
                [-sigmoid(fake) / len(fake)],
                "for random logits the loss should be minus the mean BCE of the fake logits "
                "against 0")


# --- 4.4: the two-player training step -----------------------------------------------------


def train_step_inputs(rng: np.random.Generator) -> dict:
    """Random weights of a tiny SmallGAN, a batch of 'images' in [0, 1], a learning rate."""
    data_dim, latent_dim = int(rng.integers(4, 9)), int(rng.integers(2, 5))
    hidden, batch = int(rng.integers(8, 17)), int(rng.integers(16, 33))

    def kernel(rows, columns):
        return rng.normal(0.0, 1.0 / np.sqrt(rows), (rows, columns))

    arrays = {
        "g_0": kernel(latent_dim, hidden),
        "g_1": rng.normal(0.0, 0.1, hidden),
        "g_2": kernel(hidden, data_dim),
        "g_3": rng.normal(0.0, 0.1, data_dim),
        "d_0": kernel(data_dim, hidden),
        "d_1": rng.normal(0.0, 0.1, hidden),
        "d_2": kernel(hidden, 1),
        "d_3": rng.normal(0.0, 0.1, 1),
        "real": rng.beta(2.0, 2.0, (batch, data_dim)),
        "learning_rate": rng.uniform(0.05, 0.2),
    }
    arrays = {key: np.asarray(value, "float32") for key, value in arrays.items()}
    return {**arrays, "seed": np.int64(rng.integers(0, 2**31 - 1)), **logits_inputs(rng)}


def _leaky_relu(x):
    import tensorflow as tf

    return tf.nn.leaky_relu(x, alpha=0.2)  # Keras' "leaky_relu" activation


def _discriminate(weights, images):
    return _leaky_relu(images @ weights[0] + weights[1]) @ weights[2] + weights[3]


def _generate(weights, latent_vectors):
    import tensorflow as tf

    return tf.sigmoid(
        _leaky_relu(latent_vectors @ weights[0] + weights[1]) @ weights[2] + weights[3]
    )


def _softplus(x):
    import tensorflow as tf

    return tf.math.softplus(x)


def _mean(x):
    import tensorflow as tf

    return tf.reduce_mean(x)


def _sum(x):
    import tensorflow as tf

    return tf.reduce_sum(x)


# Discriminator losses of (real logits, fake logits): the right one, then the known mistakes.
D_LOSS = lambda r, f: _mean(_softplus(-r)) + _mean(_softplus(f))  # noqa: E731
D_MISTAKES = [
    (
        lambda r, f: _mean(_softplus(r)) + _mean(_softplus(-f)),
        "the discriminator's update is a step with real and fake labels swapped: real images "
        "have label 1, generated images label 0",
    ),
    (
        lambda r, f: (_mean(_softplus(-r)) + _mean(_softplus(f))) / 2,
        "the discriminator's step is half the expected one: use discriminator_loss, the SUM of "
        "the mean BCE on real images and on fakes (not the mean over both halves)",
    ),
    (
        lambda r, f: _sum(_softplus(-r)) + _sum(_softplus(f)),
        "the discriminator's step grows with the batch size: average the per-example losses",
    ),
    (
        lambda r, f: -(_mean(_softplus(-r)) + _mean(_softplus(f))),
        "the discriminator went uphill: minimize discriminator_loss, do not maximize it",
    ),
]
# Generator losses of the fake logits: the non-saturating one, then the known mistakes.
G_LOSS = lambda f: _mean(_softplus(-f))  # noqa: E731
G_MISTAKES = [
    (
        lambda f: -_mean(_softplus(f)),
        "the generator's update follows the saturating loss log(1 - D(G(z))); the lab asks for "
        "the non-saturating one: the BCE of the fakes against the misleading label 1 ('real')",
    ),
    (
        lambda f: _mean(_softplus(f)),
        "the generator is trained to make D say 'fake' (D's own labels): give the generated "
        "images misleading labels, ones ('real'), in the generator's loss",
    ),
    (
        lambda f: -_mean(_softplus(-f)),
        "the generator went uphill: minimize the BCE of its images against the label 1",
    ),
    (
        lambda f: _sum(_softplus(-f)),
        "the generator's step grows with the batch size: average its per-example losses",
    ),
]


def _weights(arrays, prefix: str) -> list[np.ndarray]:
    return [np.asarray(arrays[f"{prefix}_{index}"], np.float64) for index in range(4)]


def _discriminator_step(inputs, latent_vectors, loss):
    """The reference (loss, weights after) of D's SGD step on real images and G(z)."""
    real = np.float64(inputs["real"])
    fakes = _generate(_weights(inputs, "g"), np.float64(latent_vectors))
    return gradient_step(
        lambda d: loss(_discriminate(d, real), _discriminate(d, fakes)),
        _weights(inputs, "d"),
        float(inputs["learning_rate"]),
    )


def _generator_step(inputs, latent_vectors, discriminator, loss):
    """The reference (loss, weights after) of G's SGD step against ``discriminator``."""
    latent_vectors = np.float64(latent_vectors)
    return gradient_step(
        lambda g: loss(_discriminate(discriminator, _generate(g, latent_vectors))),
        _weights(inputs, "g"),
        float(inputs["learning_rate"]),
    )


def _same_step(after, before, reference) -> bool:
    """Whether the update ``after - before`` equals the reference update, to float32 rounding."""
    step = np.concatenate([(a - b).ravel() for a, b in zip(after, before)])
    expected = np.concatenate([(r - b).ravel() for r, b in zip(reference, before)])
    return bool(np.linalg.norm(step - expected) <= 2e-3 * np.linalg.norm(expected) + 1e-6)


def _expect_noise(outputs, key: str, shape: tuple[int, int], player: str) -> np.ndarray:
    if key not in outputs:
        raise CheckFailed(
            f"the {player} step never called self.generator: generate images from fresh "
            "noise before that update"
        )
    noise = np.asarray(outputs[key], np.float64)
    hint = "draw keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)"
    expect_shape(noise, shape, f"the latent vectors of the {player} step", hint)
    expect_finite(noise, "the latent vectors")
    if np.allclose(noise, noise[:1]):
        raise CheckFailed(f"every image of the {player} step got the same latent vector: {hint}")
    if abs(noise.mean()) > 0.75 or not 0.5 < noise.std() < 1.6:
        raise CheckFailed(f"the latent vectors are not standard normal noise: {hint}")
    return noise


@exercise("4.4", points=4, title="The two-player training step", probe=probes.train_step,
          inputs=train_step_inputs)
def train_step_verdict(inputs, outputs):
    expect_keys(outputs, ["d_loss", "g_loss", "d_applies", "g_applies", "d_optimizer_on_g",
                          "g_optimizer_on_d", "discriminator_loss"])
    expect_keys(outputs, [f"{p}_after_{i}" for p in "dg" for i in range(4)])
    expect_flags(outputs, [
        ("d_applies", True, "the discriminator was never updated: apply its gradients with "
         "self.d_optimizer.apply(gradients, self.discriminator.trainable_weights)"),
        ("g_applies", True, "the generator was never updated: apply its gradients with "
         "self.g_optimizer.apply(gradients, self.generator.trainable_weights)"),
        ("g_optimizer_on_d", False, "the discriminator's weights changed during the generator "
         "step: apply the generator's gradients to self.generator.trainable_weights only"),
        ("d_optimizer_on_g", False, "the generator's weights changed during the discriminator "
         "step: apply D's gradients to self.discriminator.trainable_weights only"),
    ])
    shape = (len(inputs["real"]), inputs["g_0"].shape[0])
    d_noise = _expect_noise(outputs, "d_noise", shape, "discriminator")
    g_noise = _expect_noise(outputs, "g_noise", shape, "generator")
    d_before, g_before = _weights(inputs, "d"), _weights(inputs, "g")
    d_after, g_after = _weights(outputs, "d_after"), _weights(outputs, "g_after")
    for before, after, name in (
        (d_before, d_after, "discriminator"),
        (g_before, g_after, "generator"),
    ):
        for old, new in zip(before, after):
            expect_shape(new, old.shape, f"a weight of the {name}")
            expect_finite(new, f"the {name}'s weights after one step")

    d_loss, d_after_reference = _expect_discriminator_step(inputs, outputs, d_noise, d_after)
    # The generator plays against the updated D (or, computed in the same round, the old one).
    g_loss = _expect_generator_step(inputs, g_noise, g_after, [d_after_reference, d_before])
    logged = {"d_loss": d_loss, "g_loss": g_loss}
    for key, value in logged.items():
        if not close(scalar(outputs[key], f"the {key} train_step returned"), value):
            raise CheckFailed(
                f"the {key} that train_step returns is not the loss of that player's update: "
                "return self.update_trackers(d_loss=d_loss, g_loss=g_loss)"
            )


def _expect_discriminator_step(inputs, outputs, noise, after):
    """Fail, naming the mistake, unless D's update is one SGD step down ``D_LOSS`` on the real
    images and G(``noise``); return that step's loss and D's weights after it."""
    before = _weights(inputs, "d")
    loss, reference = _discriminator_step(inputs, noise, D_LOSS)
    if _same_step(after, before, reference):
        return loss, reference
    for wrong_loss, message in D_MISTAKES:
        if _same_step(after, before, _discriminator_step(inputs, noise, wrong_loss)[1]):
            raise CheckFailed(message)
    real, fake = np.float64(inputs["real_logits"]), np.float64(inputs["fake_logits"])
    student_loss = np.asarray(outputs["discriminator_loss"], np.float64)
    if not close(student_loss, bce_against_one(real) + bce_against_zero(fake)):
        raise CheckFailed(
            "train_step uses your discriminator_loss, which is not right yet: "
            "fix exercise 4.1 first"
        )
    raise CheckFailed(
        "the discriminator's update is not one SGD step down discriminator_loss(D(real "
        "images), D(generated images)): take its gradient inside the tape, w.r.t. D's weights"
    )


def _expect_generator_step(inputs, noise, after, discriminators) -> float:
    """Fail, naming the mistake, unless G's update is one SGD step down ``G_LOSS`` against one
    of the ``discriminators``' weights; return that step's loss."""
    before = _weights(inputs, "g")
    for discriminator in discriminators:
        loss, reference = _generator_step(inputs, noise, discriminator, G_LOSS)
        if _same_step(after, before, reference):
            return loss
    for wrong_loss, message in G_MISTAKES:
        for discriminator in discriminators:
            reference = _generator_step(inputs, noise, discriminator, wrong_loss)[1]
            if _same_step(after, before, reference):
                raise CheckFailed(message)
    raise CheckFailed(
        "the generator's update is not one SGD step down the non-saturating loss, the mean "
        "BCE of D(G(z)) against the label 1: take its gradient w.r.t. the generator's weights"
    )


# --- 4.5: a conditional GAN's grid of chosen classes --------------------------------------


def _conditional_gan(inputs):
    from course import models

    return models.ConditionalGAN(
        data_shape=tuple(int(size) for size in inputs["data_shape"]),
        num_classes=int(inputs["num_classes"]),
        latent_dim=int(inputs["latent_dim"]),
        hidden_units=(int(inputs["hidden_units"]),),
    )


def grid_inputs(rng: np.random.Generator) -> dict:
    """A small cGAN with random generator weights and a class count that is not 10."""
    inputs = {
        "num_classes": np.int64(rng.choice([3, 4, 5, 6, 7, 8, 9, 11, 12])),
        "n_per_class": np.int64(rng.integers(2, 6)),
        "latent_dim": np.int64(rng.integers(2, 7)),
        "hidden_units": np.int64(rng.integers(4, 9)),
        "data_shape": np.array([28, 28, 1]),
    }
    shapes = [np.shape(weight) for weight in _conditional_gan(inputs).generator.get_weights()]
    for index, shape in enumerate(shapes):
        inputs[f"g_{index}"] = rng.normal(0.0, 0.5, shape).astype("float32")
    return inputs


@exercise("4.5", points=1, title="A conditional GAN grid, one row per class",
          probe=probes.class_grid, inputs=grid_inputs)
def class_grid_verdict(inputs, outputs):
    expect_keys(outputs, ["labels", "images"])
    num_classes, n_per_class = int(inputs["num_classes"]), int(inputs["n_per_class"])
    labels = np.asarray(outputs["labels"])
    expected = np.repeat(np.arange(num_classes), n_per_class)
    if labels.ndim != 1:
        raise CheckFailed(
            f"grid_labels should be a flat array of {expected.size} labels, got "
            f"shape {labels.shape}: make it one-dimensional"
        )
    if labels.dtype.kind not in "iu":
        raise CheckFailed(f"grid_labels should hold integer class labels, got {labels.dtype}")
    if labels.size != expected.size:
        if labels.size == 10 * n_per_class:
            hint = "the cGAN's number of classes is cgan.num_classes, not 10"
        elif np.array_equal(np.unique(labels), np.arange(num_classes)):
            hint = "each class needs n_per_class labels"
        else:
            hint = "n_per_class labels for each of the cgan.num_classes classes"
        raise CheckFailed(
            f"grid_labels has {labels.size} labels; for {num_classes} classes and "
            f"n_per_class={n_per_class} it needs {expected.size}: {hint}"
        )
    if np.array_equal(labels, np.tile(np.arange(num_classes), n_per_class)):
        raise CheckFailed(
            "grid_labels cycles through the classes: a row per class needs all "
            "the 0s first, then all the 1s, and so on (repeat, not tile)"
        )
    if not np.array_equal(labels, expected):
        raise CheckFailed(
            f"grid_labels should be n_per_class 0s, then n_per_class 1s, ... up to "
            f"cgan.num_classes - 1; it starts {labels[:8].tolist()}"
        )
    images = np.asarray(outputs["images"], np.float64)
    expect_shape(
        images,
        (expected.size, *inputs["data_shape"]),
        "grid_images",
        "one image per label, from cgan.generate(grid_labels, ...)",
    )
    cgan = _conditional_gan(inputs)
    cgan.generator.set_weights(
        [inputs[f"g_{index}"] for index in range(len(cgan.generator.weights))]
    )
    if not np.allclose(images, cgan.generate(expected, seed=0), atol=1e-4):
        raise CheckFailed(
            "grid_images are not the cGAN's images of grid_labels with seed=0: "
            "generate them with cgan.generate and a fixed seed of 0"
        )
