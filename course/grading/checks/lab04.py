"""Checks of lab 4, GANs on MNIST (``solutions/04_gans_mnist.py``).

The loss checks compare the student's value with the formula on fixed logits and, when it is
wrong, recognize the usual mistakes (swapped labels, saturating for non-saturating, logits
taken for probabilities, a sum for a mean). The training-step check runs one step of the
student's ``SmallGAN`` on a tiny batch with recording SGD optimizers and checks what each
optimizer updated and in which direction.
"""

from __future__ import annotations

import numpy as np

from course.grading import CheckFailed, exercise

REAL_LOGITS = np.array([[2.0], [0.5], [-1.0], [3.0]], dtype="float32")
FAKE_LOGITS = np.array([[-2.5], [1.0], [-0.5], [0.0]], dtype="float32")
CONFIDENT = 6.0


def softplus(x):
    """log(1 + exp(x)), the BCE of logit -x against label 1 (and of x against label 0)."""
    return np.logaddexp(0.0, x)


def bce_against_one(logits):
    return softplus(-logits).mean()


def bce_against_zero(logits):
    return softplus(logits).mean()


def probability_bce(labels, values):
    """The BCE a student gets by treating logits as probabilities (Keras clips to [eps, 1-eps])."""
    values = np.clip(values, 1e-7, 1 - 1e-7)
    return -(labels * np.log(values) + (1 - labels) * np.log(1 - values)).mean()


def scalar(value, what: str) -> float:
    """The student's loss as a float, failing when it is not a single number."""
    array = np.asarray(value, dtype="float64")
    if array.size != 1:
        raise CheckFailed(
            f"{what} should return one number, got an array of shape {array.shape}: average "
            "the per-example losses with ops.mean"
        )
    value = float(array.reshape(()))
    if not np.isfinite(value):
        raise CheckFailed(f"{what} returned {value}; it should be a finite number")
    return value


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-3 + 1e-3 * abs(b)


def compare(got: float, expected: float, mistakes: list[tuple[float, str]], where: str) -> None:
    """Pass when ``got`` matches ``expected``; otherwise name the first mistake it matches."""
    if close(got, expected):
        return
    for value, message in mistakes:
        if close(got, value):
            raise CheckFailed(message)
    raise CheckFailed(f"{where}: expected {expected:.4f}, got {got:.4f}")


def call_twice_the_batch(function, *logits) -> None:
    """Fail when the loss of a batch repeated twice differs from the loss of the batch."""
    once = scalar(function(*logits), function.__name__)
    twice = scalar(function(*(np.concatenate([x, x]) for x in logits)), function.__name__)
    if not close(once, twice):
        raise CheckFailed(
            f"{function.__name__} changes when the same batch is repeated twice ({once:.3f} -> "
            f"{twice:.3f}): average the per-example losses with ops.mean instead of summing them"
        )


@exercise("4.1", points=2, title="The discriminator loss")
def discriminator_loss_is_bce_of_both_halves(ns):
    loss = ns["discriminator_loss"]
    right = scalar(
        loss(np.full((4, 1), CONFIDENT, "float32"), np.full((4, 1), -CONFIDENT, "float32")),
        "discriminator_loss",
    )
    wrong = scalar(
        loss(np.full((4, 1), -CONFIDENT, "float32"), np.full((4, 1), CONFIDENT, "float32")),
        "discriminator_loss",
    )
    if right >= wrong:
        raise CheckFailed(
            "the loss is lower when D calls real images fake and fakes real than when it is "
            "right: real images must have label 1 and generated images label 0"
        )
    call_twice_the_batch(loss, REAL_LOGITS, FAKE_LOGITS)
    got = scalar(loss(REAL_LOGITS, FAKE_LOGITS), "discriminator_loss")
    expected = bce_against_one(REAL_LOGITS) + bce_against_zero(FAKE_LOGITS)
    compare(
        got,
        expected,
        [
            (
                expected / 2,
                "the loss is half the expected value: ADD the mean BCE on the real "
                "images and the mean BCE on the fakes, do not average the two",
            ),
            (
                probability_bce(1, REAL_LOGITS) + probability_bce(0, FAKE_LOGITS),
                "D outputs logits, not probabilities: pass from_logits=True to binary_crossentropy",
            ),
            (
                bce_against_zero(REAL_LOGITS) + bce_against_one(FAKE_LOGITS),
                "the labels are swapped: real images have label 1, generated images label 0",
            ),
        ],
        "for the check's logits",
    )


@exercise("4.2", points=2, title="The non-saturating generator loss")
def generator_loss_is_non_saturating(ns):
    loss = ns["non_saturating_generator_loss"]
    got = scalar(loss(FAKE_LOGITS), "non_saturating_generator_loss")
    expected = bce_against_one(FAKE_LOGITS)
    compare(
        got,
        expected,
        [
            (
                bce_against_zero(FAKE_LOGITS),
                "the generator is trained to make D say 'fake' (label 0), which is D's goal: the "
                "generator's loss is the BCE of its images against the label 1, 'real'",
            ),
            (
                -bce_against_zero(FAKE_LOGITS),
                "this is the saturating loss log(1 - D(G(z))) of exercise 4.3; the non-saturating "
                "loss is -log D(G(z)), the BCE of the fake logits against the label 1",
            ),
            (
                -bce_against_one(FAKE_LOGITS),
                "the sign is flipped: minimize the BCE against the label 1, do not maximize it",
            ),
            (
                probability_bce(1, FAKE_LOGITS),
                "D outputs logits, not probabilities: pass from_logits=True to binary_crossentropy",
            ),
        ],
        "for the check's fake logits",
    )
    call_twice_the_batch(loss, FAKE_LOGITS)


@exercise("4.3", points=1, title="The saturating generator loss")
def generator_loss_is_saturating(ns):
    loss = ns["saturating_generator_loss"]
    got = scalar(loss(FAKE_LOGITS), "saturating_generator_loss")
    expected = -bce_against_zero(FAKE_LOGITS)
    compare(
        got,
        expected,
        [
            (
                bce_against_one(FAKE_LOGITS),
                "this is the non-saturating loss of exercise 4.2; the saturating loss is "
                "mean log(1 - D(G(z))), i.e. MINUS the BCE of the fake logits against the label 0",
            ),
            (
                bce_against_zero(FAKE_LOGITS),
                "the sign is flipped: the saturating loss is mean log(1 - D(G(z))), which is MINUS "
                "the BCE against the label 0 (the generator minimizes what D maximizes)",
            ),
            (
                -probability_bce(0, FAKE_LOGITS),
                "D outputs logits, not probabilities: pass from_logits=True to binary_crossentropy",
            ),
        ],
        "for the check's fake logits",
    )
    call_twice_the_batch(loss, FAKE_LOGITS)


# --- 4.4: the two-player training step -----------------------------------------------------


def recording_sgd(role: str, log: list, learning_rate: float):
    """An SGD optimizer that logs (role, variables, gradients) each time it is applied."""
    import keras

    class RecordingSGD(keras.optimizers.SGD):
        def apply(self, grads, trainable_variables=None):
            variables = trainable_variables
            if variables is None:
                variables = self._trainable_variables
            log.append((role, list(variables), [np.array(g) for g in grads]))
            return super().apply(grads, trainable_variables)

    return RecordingSGD(learning_rate=learning_rate)


def weights_of(network) -> list[np.ndarray]:
    return [np.array(weight) for weight in network.weights]


def set_weights(network, values) -> None:
    for weight, value in zip(network.weights, values):
        weight.assign(value)


def logits_of(network, data) -> np.ndarray:
    return np.asarray(network(data, training=False), dtype="float64")


def gradient_agreement(log, discriminator, real, fakes) -> float:
    """Cosine between the discriminator's first logged gradient and the reference one."""
    import tensorflow as tf

    weights = discriminator.trainable_weights
    with tf.GradientTape() as tape:
        real_logits = tf.cast(discriminator(real, training=True), "float64")
        fake_logits = tf.cast(discriminator(fakes, training=True), "float64")
        loss = (tf.reduce_mean(tf.math.softplus(-real_logits))
                + tf.reduce_mean(tf.math.softplus(fake_logits)))
    reference = {id(w): np.asarray(g) for w, g in zip(weights, tape.gradient(loss, weights))}
    _, variables, gradients = next(entry for entry in log if entry[0] == "d")
    applied = np.concatenate([np.ravel(g) for g in gradients])
    expected = np.concatenate([np.ravel(reference[id(v)]) for v in variables])
    norms = np.linalg.norm(applied) * np.linalg.norm(expected)
    return float(applied @ expected / norms) if norms > 0 else 0.0


@exercise("4.4", points=4, title="The two-player training step")
def train_step_updates_each_player(ns):
    import keras

    # The training step uses the student's discriminator_loss: make sure it is right first.
    try:
        discriminator_loss_is_bce_of_both_halves(ns)
    except NotImplementedError:
        raise NotImplementedError(
            "train_step uses discriminator_loss: write exercise 4.1 first"
        ) from None
    except CheckFailed as error:
        raise CheckFailed(
            "train_step uses your discriminator_loss, which is not right yet: fix exercise 4.1 "
            f"first ({str(error).splitlines()[0]})"
        ) from None

    data_dim, latent_dim, batch_size = 6, 3, 32
    rng = np.random.default_rng(0)
    real = (0.8 + 0.1 * rng.standard_normal((batch_size, data_dim))).astype("float32")
    gan = ns["SmallGAN"](data_shape=(data_dim,), latent_dim=latent_dim, hidden_units=(16,), seed=3)
    log: list = []
    gan.compile(
        d_optimizer=recording_sgd("d", log, 0.05), g_optimizer=recording_sgd("g", log, 0.05)
    )
    discriminator, generator = gan.discriminator, gan.generator
    # Zero the generator's first kernel: its images then do not depend on the noise, so the
    # direction of each update can be measured exactly, whatever noise the step draws.
    first_layer = next(layer for layer in generator.layers if hasattr(layer, "kernel"))
    first_layer.kernel.assign(np.zeros(first_layer.kernel.shape, "float32"))
    d_before, g_before = weights_of(discriminator), weights_of(generator)

    logs = gan.train_step(keras.ops.convert_to_tensor(real))

    if not isinstance(logs, dict) or not {"d_loss", "g_loss"} <= set(logs):
        raise CheckFailed(
            "train_step should return the dict of update_trackers(d_loss=..., g_loss=...), with "
            f"keys 'd_loss' and 'g_loss'; got {logs!r:.80}"
        )
    d_ids = {id(weight) for weight in discriminator.trainable_weights}
    g_ids = {id(weight) for weight in generator.trainable_weights}
    roles = [role for role, _, _ in log]
    if "d" not in roles:
        raise CheckFailed(
            "the discriminator was never updated: apply its gradients with "
            "self.d_optimizer.apply(gradients, self.discriminator.trainable_weights)"
        )
    if "g" not in roles:
        raise CheckFailed(
            "the generator was never updated: apply its gradients with "
            "self.g_optimizer.apply(gradients, self.generator.trainable_weights)"
        )
    for role, variables, _ in log:
        ids = {id(variable) for variable in variables}
        if role == "g" and ids & d_ids:
            raise CheckFailed(
                "the discriminator's weights changed during the generator step: apply the "
                "generator's gradients to self.generator.trainable_weights only"
            )
        if role == "d" and ids & g_ids:
            raise CheckFailed(
                "the generator's weights changed during the discriminator step: apply the "
                "discriminator's gradients to self.discriminator.trainable_weights only"
            )
    d_after, g_after = weights_of(discriminator), weights_of(generator)
    if all(np.array_equal(a, b) for a, b in zip(d_before, d_after)):
        raise CheckFailed(
            "the discriminator's weights did not change: are its loss and "
            "gradients computed inside the GradientTape?"
        )
    if all(np.array_equal(a, b) for a, b in zip(g_before, g_after)):
        raise CheckFailed(
            "the generator's weights did not change: compute the generated "
            "images and the generator loss inside the GradientTape"
        )

    # Direction of each update: D must descend the discriminator loss, and D(G(z)) must rise.
    latent = rng.standard_normal((256, latent_dim)).astype("float32")
    set_weights(generator, g_before)
    fakes_before = np.asarray(generator(latent, training=False))
    set_weights(discriminator, d_before)
    if gradient_agreement(log, discriminator, real, fakes_before[:batch_size]) < 0.99:
        raise CheckFailed(
            "the discriminator's update is not a step down discriminator_loss(real logits, "
            "fake logits): real images must be labelled 1 and generated images 0"
        )
    set_weights(discriminator, d_after)
    set_weights(generator, g_after)
    fakes_after = np.asarray(generator(latent, training=False))
    realness_before = logits_of(discriminator, fakes_before).mean()
    realness_after = logits_of(discriminator, fakes_after).mean()
    if realness_after < realness_before:
        raise CheckFailed(
            "the generator is trained to make D say 'fake' (D's own labels): give the "
            "generated images misleading labels, ones ('real'), in the generator's loss"
        )


@exercise("4.5", points=1, title="A conditional GAN grid, one row per class")
def grid_has_one_row_per_class(ns):
    labels = np.asarray(ns["grid_labels"])
    images = np.asarray(ns["grid_images"])
    if labels.ndim != 1 or labels.size == 0 or labels.size % 10:
        raise CheckFailed(
            f"grid_labels should be a flat array of 10 x N_PER_CLASS labels, got shape "
            f"{labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise CheckFailed(f"grid_labels should hold integer class labels, got {labels.dtype}")
    rows = labels.reshape(10, -1)
    if not np.array_equal(rows, np.repeat(np.arange(10), rows.shape[1]).reshape(10, -1)):
        raise CheckFailed(
            "grid_labels is not one row per class: it should be N_PER_CLASS zeros, then "
            f"N_PER_CLASS ones, ... up to 9 (np.repeat, not np.tile); it starts {labels[:12]}"
        )
    if images.shape != (labels.size, 28, 28, 1):
        raise CheckFailed(
            f"grid_images should have shape ({labels.size}, 28, 28, 1), one image per label, "
            f"got {images.shape}: generate them with cgan.generate(grid_labels, seed=0)"
        )
