"""Probes of lab 4 (GANs on MNIST): call the student's losses, training step and grid function.

Kernel side: no reference answers here; the verdicts are in ``course.grading.checks.lab04``.
"""

from __future__ import annotations

import numpy as np

from course.grading.probes.tools import to_numpy, value_and_gradients
from course.grading.registry import CheckFailed


def discriminator_loss(ns, inputs):
    """The student's discriminator loss of random logits, and its gradient in both."""
    return value_and_gradients(
        ns["discriminator_loss"],
        [inputs["real_logits"], inputs["fake_logits"]],
        "discriminator_loss",
    )


def non_saturating_generator_loss(ns, inputs):
    """The student's non-saturating generator loss of random logits, and its gradient."""
    return value_and_gradients(
        ns["non_saturating_generator_loss"],
        [inputs["fake_logits"]],
        "non_saturating_generator_loss",
    )


def saturating_generator_loss(ns, inputs):
    """The student's saturating generator loss of random logits, and its gradient."""
    return value_and_gradients(
        ns["saturating_generator_loss"], [inputs["fake_logits"]], "saturating_generator_loss"
    )


# --- 4.4: one training step of the student's SmallGAN ---------------------------------------


def _recording_sgd(role: str, events: list, learning_rate: float):
    """Plain SGD that logs (role, ids of the variables it updates) each time it is applied."""
    import keras

    class RecordingSGD(keras.optimizers.SGD):
        def apply(self, grads, trainable_variables=None):
            variables = (
                self._trainable_variables if trainable_variables is None else (trainable_variables)
            )
            events.append((role, [id(variable) for variable in variables]))
            return super().apply(grads, trainable_variables)

    return RecordingSGD(learning_rate=learning_rate)


def _record_inputs(network, events: list) -> None:
    """Log ("G", latent vectors) each time ``network`` is called."""
    original = network.call

    def call(latent_vectors, *args, **kwargs):
        events.append(("G", np.array(latent_vectors, dtype=np.float32)))
        return original(latent_vectors, *args, **kwargs)

    network.call = call


def _set_weights(network, values: list, what: str) -> None:
    shapes = [tuple(np.shape(weight)) for weight in network.get_weights()]
    if shapes != [value.shape for value in values]:
        raise CheckFailed(
            f"SmallGAN's {what} is not the lab's (its weights have shapes {shapes}): keep the "
            "given __init__ and write only train_step"
        )
    network.set_weights(values)


def _error_hint(error: Exception) -> str:
    """A hint for an exception raised by the student's train_step."""
    text = str(error)
    if "No gradients provided" in text or ("gradient" in text.lower() and "none" in text.lower()):
        return (
            "no gradient reached the weights: compute the loss inside its `with "
            "tf.GradientTape() as tape:` block and take tape.gradient(loss, weights)"
        )
    if isinstance(error, AttributeError):
        return (
            "use the names the class defines: self.generator, self.discriminator, "
            "self.d_optimizer, self.g_optimizer, self.seed_generator, self.latent_dim"
        )
    if "Matrix size-incompatible" in text or "shape" in text.lower():
        return (
            "a shape does not fit: the noise has shape (batch_size, self.latent_dim) and "
            "the discriminator returns one logit per image, shape (batch_size, 1)"
        )
    return "run gan.train_step(x) in a cell to see where"


def train_step(ns, inputs):
    """One step of the student's ``SmallGAN.train_step`` from the grader's weights and batch.

    Both optimizers are plain SGD that record which variables they update; the generator
    records the latent vectors it is given. Returns the weights after the step, the latent
    vectors of the two updates, the returned logs and what each optimizer touched.
    """
    import keras

    generator_weights = [inputs[f"g_{index}"] for index in range(4)]
    discriminator_weights = [inputs[f"d_{index}"] for index in range(4)]
    gan = ns["SmallGAN"](
        data_shape=(generator_weights[2].shape[1],),
        latent_dim=generator_weights[0].shape[0],
        hidden_units=(generator_weights[0].shape[1],),
        seed=int(inputs["seed"]),
    )
    _set_weights(gan.generator, generator_weights, "generator")
    _set_weights(gan.discriminator, discriminator_weights, "discriminator")
    events: list = []
    learning_rate = float(inputs["learning_rate"])
    gan.compile(
        d_optimizer=_recording_sgd("d", events, learning_rate),
        g_optimizer=_recording_sgd("g", events, learning_rate),
    )
    _record_inputs(gan.generator, events)
    try:
        logs = gan.train_step(keras.ops.convert_to_tensor(inputs["real"]))
    except NotImplementedError as error:
        if "4.1" in str(error):
            raise NotImplementedError(
                "train_step uses discriminator_loss: write exercise 4.1 first"
            ) from None
        raise
    except (CheckFailed, MemoryError):
        raise
    except Exception as error:
        detail = " ".join(str(error).split())[:120]
        raise CheckFailed(
            f"{_error_hint(error)} (train_step raised {type(error).__name__}: {detail})"
        ) from None
    if not isinstance(logs, dict) or not {"d_loss", "g_loss"} <= set(logs):
        raise CheckFailed(
            "train_step should return the dict of self.update_trackers(d_loss=d_loss, "
            f"g_loss=g_loss); it returned {type(logs).__name__}"
        )
    d_ids = {id(weight) for weight in gan.discriminator.trainable_weights}
    g_ids = {id(weight) for weight in gan.generator.trainable_weights}
    outputs = {
        "d_loss": to_numpy(logs["d_loss"], "the d_loss train_step returned"),
        "g_loss": to_numpy(logs["g_loss"], "the g_loss train_step returned"),
    }
    for role in ("d", "g"):
        applied = [ids for event_role, ids in events if event_role == role]
        touched = {variable for ids in applied for variable in ids}
        outputs[f"{role}_applies"] = len(applied)
        outputs[f"{role}_optimizer_on_d"] = len(touched & d_ids)
        outputs[f"{role}_optimizer_on_g"] = len(touched & g_ids)
        # The latent vectors of this update: the generator's last call before the optimizer's.
        first = next((i for i, event in enumerate(events) if event[0] == role), len(events))
        calls = [event[1] for event in events[:first] if event[0] == "G"]
        if calls:
            outputs[f"{role}_noise"] = calls[-1]
    outputs["generator_calls"] = sum(event[0] == "G" for event in events)
    for index, weight in enumerate(gan.discriminator.get_weights()):
        outputs[f"d_after_{index}"] = weight
    for index, weight in enumerate(gan.generator.get_weights()):
        outputs[f"g_after_{index}"] = weight
    try:
        outputs["discriminator_loss"] = to_numpy(
            ns["discriminator_loss"](inputs["real_logits"], inputs["fake_logits"]),
            "discriminator_loss",
        )
    except Exception:  # noqa: BLE001 - only a clue for the hint; 4.1 grades this function
        outputs["discriminator_loss"] = np.nan
    return outputs


# --- 4.5: a grid of chosen classes --------------------------------------------------------


def class_grid(ns, inputs):
    """The student's grid labels and images for a small cGAN with the grader's weights."""
    from course import models

    num_classes, n_per_class = int(inputs["num_classes"]), int(inputs["n_per_class"])
    cgan = models.ConditionalGAN(
        data_shape=tuple(int(size) for size in inputs["data_shape"]),
        num_classes=num_classes,
        latent_dim=int(inputs["latent_dim"]),
        hidden_units=(int(inputs["hidden_units"]),),
    )
    cgan.generator.set_weights(
        [inputs[f"g_{index}"] for index in range(len(cgan.generator.weights))]
    )
    try:
        result = ns["grid_of_classes"](cgan, n_per_class)
    except ValueError as error:
        if "labels must be in" in str(error):
            raise CheckFailed(
                f"the labels go beyond the classes of this cGAN, which has {num_classes} "
                "(cgan.num_classes): count the classes with cgan.num_classes, do not write 10"
            ) from None
        if "integers" in str(error):
            raise CheckFailed(
                "cgan.generate needs integer labels: build them from np.arange, not from "
                "floats (np.linspace, division)"
            ) from None
        raise
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            "grid_of_classes should return two things, (grid_labels, grid_images); it returned "
            f"a {type(result).__name__}"
        )
    labels, images = result
    if labels is None or images is None:
        raise CheckFailed("grid_of_classes returned None for the labels or the images")
    return {"labels": np.asarray(labels), "images": to_numpy(images, "grid_of_classes")}
