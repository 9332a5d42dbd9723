"""Checks of lab 7, the Deep Generative Decoder (solutions/07_deep_generative_decoder.py).

The representation table, the mixture prior's log-density, the MAP step and inference for new
cells are recomputed in float64 (TensorFlow for the gradients, scipy for the densities); the
hints name a transposed table, densities that underflow without logsumexp, representations of
other cells moved by the step, a prior left out of MAP.
"""

from __future__ import annotations

import numpy as np

from course.grading.checks.tools import close, expect_finite, expect_keys, expect_shape
from course.grading.probes import lab07 as probes
from course.grading.registry import CheckFailed, exercise

HIDDEN_UNITS = 6


# --- 7.1 --------------------------------------------------------------------------------------


def table_inputs(rng):
    """A table size, random table values, a batch of cell indices (one repeated), weights."""
    n_cells, latent_dim = int(rng.integers(20, 40)), int(rng.integers(2, 6))
    indices = rng.choice(n_cells, int(rng.integers(4, 8)), replace=False)
    indices = np.append(indices, indices[0]).astype("int32")
    return {"size": np.array([n_cells, latent_dim]),
            "table": rng.normal(size=(n_cells, latent_dim)).astype("float32"),
            "indices": indices,
            "weights": rng.normal(size=(len(indices), latent_dim)).astype("float32")}


def _expect_centred_near_zero(initial) -> None:
    """The table starts near 0 AND centred on it, as the intended RandomNormal(stddev=0.01):
    a one-sided start (uniform in [0, 1), ones) puts every cell on one side of the prior."""
    largest = np.abs(initial).max()
    if largest > 1.0:
        raise CheckFailed(f"the representations start as far as {largest:.3g} from the origin: "
                          "start them near 0 (e.g. RandomNormal(stddev=0.01)), where the prior "
                          "has its mass")
    # For values drawn symmetrically around 0, the mean of n of them lies within a few
    # standard errors of 0; a start such as uniform in [0, 1) misses it by ~30 of them.
    mean, spread = initial.mean(), initial.std()
    if abs(mean) > 4.0 * spread / np.sqrt(initial.size) + 1e-6:
        side = "positive" if mean > 0 else "negative"
        raise CheckFailed(f"the representations start off-centre: their mean is {mean:.3g} and "
                          f"{np.mean(initial > 0) if mean > 0 else np.mean(initial < 0):.0%} of "
                          f"them are {side} (e.g. a uniform [0, 1) or constant start). Draw them "
                          "around 0, e.g. RandomNormal(stddev=0.01), where the prior has its mass")


@exercise("7.1", points=2, title="Representations as parameters", probe=probes.representations,
          inputs=table_inputs)
def representations_verdict(inputs, outputs):
    expect_keys(outputs, ["initial", "trainable"])
    n_cells, latent_dim = (int(value) for value in inputs["size"])
    initial = np.asarray(outputs["initial"], np.float64)
    if initial.shape == (latent_dim, n_cells) and n_cells != latent_dim:
        raise CheckFailed("the table is transposed: one ROW per cell, shape (n_cells, latent_dim)")
    expect_shape(initial, (n_cells, latent_dim), "the table", "one row of latent_dim numbers "
                 "per cell: shape (n_cells, latent_dim)")
    shapes = [tuple(int(size) for size in row) for row in np.asarray(outputs["trainable"])]
    if (n_cells, latent_dim) not in shapes:
        raise CheckFailed("the table is not a trainable weight of the layer: create it with "
                          "self.add_weight(..., trainable=True) so the optimizer can move it")
    expect_finite(initial, "the initial table")
    _expect_centred_near_zero(initial)
    expect_keys(outputs, ["rows", "gradient"])
    table, indices = np.float64(inputs["table"]), inputs["indices"]
    if not close(outputs["rows"], table[indices], atol=1e-4):
        raise CheckFailed("calling the layer does not return the rows of the given cells: "
                          "look them up in self.table with ops.take(self.table, indices, axis=0)")
    expected = np.zeros_like(table)
    np.add.at(expected, indices, np.float64(inputs["weights"]))
    if not close(outputs["gradient"], expected, atol=1e-4):
        raise CheckFailed("the gradient does not reach exactly the looked-up rows of the table")


# --- 7.2 --------------------------------------------------------------------------------------


def mixture_inputs(rng):
    """Random points and a mixture with unequal weights and variances; the last points lie
    far from every component (their densities underflow without logsumexp)."""
    n_points, n_components, dim = int(rng.integers(6, 12)), int(rng.integers(2, 5)), 3
    means = rng.normal(0.0, 2.0, (n_components, dim))
    z = means[rng.integers(n_components, size=n_points)] + rng.normal(0.0, 1.0, (n_points, dim))
    z[-2:] = 60.0 + rng.normal(size=(2, dim))
    return {"z": z.astype("float32"), "means": means.astype("float32"),
            "log_variances": rng.uniform(-1.5, 0.8, (n_components, dim)).astype("float32"),
            "weight_logits": rng.normal(0.0, 1.0, n_components).astype("float32")}


def _component_terms(z, means, log_variances, scale_is_variance=False):
    """log N(z; means_k, diag) summed over dimensions, per point and component."""
    from scipy import stats

    scale = np.exp(log_variances if scale_is_variance else 0.5 * log_variances)
    return stats.norm.logpdf(z[:, None, :], means, scale).sum(axis=-1)


def _log_softmax(logits):
    from scipy.special import log_softmax

    return log_softmax(logits)


@exercise("7.2", points=3, title="The Gaussian-mixture prior's log-density",
          probe=probes.gmm_log_density, inputs=mixture_inputs)
def gmm_log_density_verdict(inputs, outputs):
    from scipy.special import logsumexp

    expect_keys(outputs, ["values"])
    z, means, log_var, logits = (np.float64(inputs[key]) for key in
                                 ("z", "means", "log_variances", "weight_logits"))
    values = np.asarray(outputs["values"], np.float64)
    if values.shape == (len(z), len(means)):
        raise CheckFailed("one value per point AND component: combine the components with "
                          "logsumexp over the component axis")
    expect_shape(values, (len(z),), f"gmm_log_density of {len(z)} points",
                 "one log-density per row of z")
    terms = _component_terms(z, means, log_var)
    expected = logsumexp(terms + _log_softmax(logits), axis=1)
    near = slice(0, len(z) - 2)
    if not np.all(np.isfinite(values)):
        if close(values[near], expected[near], atol=1e-4):
            raise CheckFailed("far from every component the density is -inf or NaN: exp of "
                              "very negative numbers underflows to 0; use ops.logsumexp")
        expect_finite(values, "gmm_log_density")
    if close(values, expected, atol=1e-4):
        return
    mistakes = [
        (logsumexp(_component_terms(z, means, log_var, True) + _log_softmax(logits), axis=1),
         "exp(log_variances) is the variance: divide the squared distance by the variance "
         "(or use the standard deviation exp(0.5 * log_variances) as the scale)"),
        (logsumexp(terms + logits, axis=1),
         "the mixture weights do not sum to 1: turn weight_logits into log weights with "
         "ops.log_softmax"),
        (logsumexp(terms, axis=1), "the mixture weights are missing: add the log weights "
                                   "(log_softmax of weight_logits) to each component's term"),
        (np.max(terms + _log_softmax(logits), axis=1),
         "you keep only the best component: p(z) sums over ALL components, so take logsumexp "
         "over them"),
        ((terms + _log_softmax(logits)).sum(axis=1),
         "the components' log terms are summed: p(z) is a sum of densities, so combine the "
         "log terms with logsumexp, not a plain sum"),
        (logsumexp(terms + _log_softmax(logits) + 0.5 * np.log(2 * np.pi) * z.shape[1], axis=1),
         "the -log(2 pi) / 2 constant of the Normal is missing (once per dimension)"),
    ]
    for candidate, message in mistakes:
        if close(values[near], candidate[near], atol=1e-4):
            raise CheckFailed(message)
    worst = int(np.argmax(np.abs(values - expected)))
    raise CheckFailed(f"log p(z) of point {worst} is {values[worst]:.4g}, but the mixture gives "
                      f"{expected[worst]:.4g}")


# --- 7.3 and 7.4: a small DGD -----------------------------------------------------------------


def density_source() -> str:
    """The package's ``mixture_log_density`` as source, with the imports it needs: what the
    probes of 7.3 and 7.4 give the student's LabDGD (so that a mistake in 7.2 does not cost
    them). It travels with their inputs because while lab 7 is graded the kernel's copy of the
    package has a stub in its place (it answers 7.2): nothing the kernel can import before 7.2
    is judged holds a working one."""
    import inspect

    from course.models import dgd

    imports = ("import tensorflow as tf\nimport tensorflow_probability as tfp\n"
               "tfd = tfp.distributions\n")
    return imports + inspect.getsource(dgd.mixture_log_density)


def dgd_inputs(rng, n_cells: int, n_genes: int, latent_dim: int, n_components: int) -> dict:
    """Random decoder weights, representation table, mixture and dispersions, and the mixture
    density's source."""
    inputs = {"density_source": np.array(density_source())}
    for index, (fan_in, fan_out) in enumerate([(latent_dim, HIDDEN_UNITS),
                                               (HIDDEN_UNITS, n_genes)]):
        inputs[f"decoder_{2 * index}"] = (rng.normal(size=(fan_in, fan_out))
                                          / np.sqrt(fan_in)).astype("float32")
        inputs[f"decoder_{2 * index + 1}"] = (0.1 * rng.normal(size=fan_out)).astype("float32")
    inputs["table"] = rng.normal(0.0, 0.7, (n_cells, latent_dim)).astype("float32")
    inputs["means"] = rng.normal(0.0, 1.0, (n_components, latent_dim)).astype("float32")
    inputs["log_variances"] = rng.uniform(-1.0, 0.5, (n_components, latent_dim)).astype("float32")
    inputs["weight_logits"] = rng.normal(0.0, 0.5, n_components).astype("float32")
    inputs["log_theta"] = rng.normal(0.5, 0.5, n_genes).astype("float32")
    return inputs


def _random_counts(rng, n: int, n_genes: int) -> np.ndarray:
    counts = rng.negative_binomial(2.0, 2.0 / (2.0 + rng.uniform(0.5, 20.0, (n, n_genes))))
    counts[:, 0] += 1  # no empty cells
    return counts.astype("float32")


def _losses(variables: dict, counts, z):
    """Per-cell -log p(x|z) and -log p(z) of the small DGD, in float64 TensorFlow."""
    import tensorflow as tf

    x = tf.constant(np.float64(counts))
    hidden = tf.nn.relu(z @ variables["decoder_0"] + variables["decoder_1"])
    shares = tf.nn.softmax(hidden @ variables["decoder_2"] + variables["decoder_3"])
    mu = tf.reduce_sum(x, axis=-1, keepdims=True) * shares
    theta = tf.exp(variables["log_theta"])
    log_nb = (tf.math.lgamma(x + theta) - tf.math.lgamma(theta) - tf.math.lgamma(x + 1.0)
              + theta * tf.math.log(theta / (theta + mu)) + x * tf.math.log(mu / (theta + mu)))
    log_var = variables["log_variances"]
    log_normal = -0.5 * (np.log(2 * np.pi) + log_var
                         + tf.square(z[:, None, :] - variables["means"]) / tf.exp(log_var))
    log_joint = tf.reduce_sum(log_normal, -1) + tf.nn.log_softmax(variables["weight_logits"])
    return -tf.reduce_sum(log_nb, axis=-1), -tf.reduce_logsumexp(log_joint, axis=-1)


NETWORK = ("decoder_0", "decoder_1", "decoder_2", "decoder_3", "log_theta", "means",
           "log_variances", "weight_logits")


def _variables(inputs) -> dict:
    import tensorflow as tf

    return {name: tf.Variable(np.float64(inputs[name])) for name in (*NETWORK, "table")}


def map_step_inputs(rng):
    inputs = dgd_inputs(rng, n_cells=int(rng.integers(20, 30)), n_genes=int(rng.integers(6, 10)),
                        latent_dim=2, n_components=3)
    batch = int(rng.integers(5, 9))
    inputs["indices"] = rng.choice(np.arange(batch, len(inputs["table"])), batch,
                                   replace=False).astype("int32")
    inputs["counts"] = _random_counts(rng, batch, len(inputs["log_theta"]))
    inputs["learning_rate"] = np.float64(rng.uniform(0.005, 0.02))
    inputs["representation_learning_rate"] = np.float64(rng.uniform(0.05, 0.2))
    return inputs


def _reference_step(inputs):
    """The loss terms before the step and every variable after one SGD step of the mean loss."""
    import tensorflow as tf

    variables = _variables(inputs)
    with tf.GradientTape() as tape:
        z = tf.gather(variables["table"], inputs["indices"])
        reconstruction, prior = _losses(variables, inputs["counts"], z)
        loss = tf.reduce_mean(reconstruction + prior)
    gradients = tape.gradient(loss, variables)
    after = {}
    for name, variable in variables.items():
        rate = inputs["representation_learning_rate" if name == "table" else "learning_rate"]
        after[name] = variable.numpy() - float(rate) * tf.convert_to_tensor(gradients[name]).numpy()
    terms = {"loss": float(loss), "reconstruction_loss": float(tf.reduce_mean(reconstruction)),
             "prior_loss": float(tf.reduce_mean(prior))}
    return terms, after


def _expect_logs(inputs, outputs, terms) -> None:
    for name in terms:
        if f"log_{name}" not in outputs:
            raise CheckFailed(f"train_step did not return {name}: keep the given trackers")
    logged = {name: float(outputs[f"log_{name}"]) for name in terms}
    agree = lambda a, b: bool(np.isclose(a, b, rtol=1e-3, atol=1e-3))  # noqa: E731
    if not agree(logged["reconstruction_loss"], terms["reconstruction_loss"]):
        raise CheckFailed("the reconstruction_loss is not -log p(x|z) of the batch's cells: "
                          "look up their representations with self.representations(cell_indices)")
    if agree(logged["loss"], terms["loss"]):
        return
    mistakes = [
        (terms["reconstruction_loss"], "the loss is the reconstruction term alone: MAP also "
                                       "needs the prior term -log p(z)"),
        (terms["reconstruction_loss"] - terms["prior_loss"],
         "the prior term has the wrong sign: the loss ADDS -log p(z)"),
        (len(inputs["indices"]) * terms["loss"], "the loss is summed over the batch: average "
                                                 "it, so the step size does not grow with it"),
    ]
    for value, message in mistakes:
        if agree(logged["loss"], value):
            raise CheckFailed(message)
    raise CheckFailed(f"the loss is {logged['loss']:.4g}, but the batch's mean negative log "
                      f"posterior is {terms['loss']:.4g}")


@exercise("7.3", points=4, title="The MAP training step", probe=probes.map_train_step,
          inputs=map_step_inputs, stands_in_for=("7.1", "7.2"))
def map_train_step_verdict(inputs, outputs):
    expect_keys(outputs, ["table", *NETWORK])
    terms, after = _reference_step(inputs)
    _expect_logs(inputs, outputs, terms)
    table_before, table_after = np.float64(inputs["table"]), np.float64(outputs["table"])
    expect_shape(table_after, table_before.shape, "the representation table")
    expect_finite(table_after, "the representation table")
    moved = np.flatnonzero(np.any(~np.isclose(table_after, table_before, rtol=0, atol=1e-7),
                                  axis=1))
    batch = np.sort(inputs["indices"])
    if moved.size == 0:
        raise CheckFailed("no representation moved: differentiate the loss with respect to "
                          "the table too and apply that gradient with "
                          "self.representation_optimizer")
    if not np.array_equal(moved, batch):
        raise CheckFailed("representations of cells outside the batch changed: the step must "
                          "look up and update the rows of cell_indices, and only those")
    if not close(table_after, after["table"], atol=1e-5):
        raise CheckFailed("the batch's representations moved by the wrong amount: apply the "
                          "table's gradient with self.representation_optimizer (once)")
    for name in NETWORK:
        before_value = np.float64(inputs[name])
        if np.allclose(outputs[name], before_value, rtol=0, atol=1e-9):
            raise CheckFailed(f"{name} did not change: apply the gradients of "
                              "self.network_weights with self.optimizer")
        if not close(outputs[name], after[name], atol=1e-5):
            raise CheckFailed(f"{name} moved by the wrong amount: one step of self.optimizer on "
                              "the gradient of the mean loss")


def inference_inputs(rng):
    inputs = dgd_inputs(rng, n_cells=int(rng.integers(10, 20)), n_genes=int(rng.integers(6, 10)),
                        latent_dim=2, n_components=3)
    n_new = int(rng.integers(4, 8))
    inputs["counts"] = _random_counts(rng, n_new, len(inputs["log_theta"]))
    inputs["initial_z"] = rng.normal(0.0, 0.5, (n_new, 2)).astype("float32")
    inputs["steps"] = np.int64(rng.integers(5, 12))
    inputs["learning_rate"] = np.float64(rng.uniform(0.02, 0.1))
    return inputs


def _reference_inference(inputs, with_prior: bool = True) -> np.ndarray:
    """Adam (Keras' update rule) on z alone, from initial_z, for ``steps`` steps."""
    import tensorflow as tf

    variables = {name: tf.constant(np.float64(inputs[name])) for name in NETWORK}
    z = tf.Variable(np.float64(inputs["initial_z"]))
    m, v = np.zeros(z.shape), np.zeros(z.shape)
    rate, beta_1, beta_2 = float(inputs["learning_rate"]), 0.9, 0.999
    for step in range(1, int(inputs["steps"]) + 1):
        with tf.GradientTape() as tape:
            reconstruction, prior = _losses(variables, inputs["counts"], z)
            loss = tf.reduce_sum(reconstruction + (prior if with_prior else 0.0))
        gradient = tape.gradient(loss, z).numpy()
        m += (gradient - m) * (1 - beta_1)
        v += (gradient**2 - v) * (1 - beta_2)
        alpha = rate * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        z.assign_sub(m * alpha / (np.sqrt(v) + 1e-7))
    return z.numpy()


def _mean_loss(inputs, z) -> float:
    import tensorflow as tf

    variables = {name: tf.constant(np.float64(inputs[name])) for name in NETWORK}
    reconstruction, prior = _losses(variables, inputs["counts"], tf.constant(np.float64(z)))
    return float(tf.reduce_mean(reconstruction + prior))


@exercise("7.4", points=3, title="Representations for new cells",
          probe=probes.infer_representations, inputs=inference_inputs,
          stands_in_for=("7.1", "7.2"))
def infer_representations_verdict(inputs, outputs):
    expect_keys(outputs, ["z", *NETWORK])
    initial = np.float64(inputs["initial_z"])
    z = np.asarray(outputs["z"], np.float64)
    expect_shape(z, initial.shape, f"the representations of {len(initial)} new cells",
                 "one row of latent_dim numbers per new cell")
    expect_finite(z, "the inferred representations")
    for name in NETWORK:
        if not np.allclose(outputs[name], np.float64(inputs[name]), rtol=0, atol=1e-9):
            raise CheckFailed(f"the model's {name} changed during inference: differentiate the "
                              "loss with respect to z only; the trained model stays frozen")
    if np.allclose(z, initial, rtol=0, atol=1e-9):
        raise CheckFailed("z never moved from initial_z: apply the gradient with "
                          "optimizer.apply(gradients, [z]) in each step, and return z")
    expected = _reference_inference(inputs)
    if close(z, expected, atol=1e-4):
        return
    if _mean_loss(inputs, z) > _mean_loss(inputs, initial):
        raise CheckFailed("the loss went up: minimize the negative log posterior (apply the "
                          "gradient of the loss itself, not of its negative)")
    if close(z, _reference_inference(inputs, with_prior=False), atol=1e-4):
        raise CheckFailed("only -log p(x|z) was minimized: MAP also needs the prior term, "
                          "model.prior_loss(z)")
    raise CheckFailed(f"after {int(inputs['steps'])} Adam steps the representations differ "
                      "from the MAP updates: one optimizer.apply per step on the gradient of "
                      "the summed loss with respect to z")
