"""One run of the multi-worker test (started by test_multiworker.py): trains a tiny VAE and
GAN with plain SGD and zero latent noise, and saves their weights and losses.

``worker`` mode reads the cluster from TF_CONFIG (MultiWorkerMirroredStrategy); ``single`` mode
trains the same models in one process without a strategy, on the same global batches.
Latent noise is zero so that both compute exactly the same thing (each replica otherwise draws
its own noise, by design).
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

from course import datasets, distribute, models

GLOBAL_BATCH = 16


def zero_noise(shape, seed_generator, dtype="float32"):
    seed_generator.next()
    return tf.zeros(shape, dtype)


def main(out_path: str, mode: str) -> None:
    strategy = distribute.get_strategy("multiworker" if mode == "worker" else "default")
    distribute.normal = zero_noise
    import keras

    keras.utils.set_random_seed(0)
    data = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
    dataset = datasets.as_dataset(data, batch_size=GLOBAL_BATCH, shuffle=False, drop_remainder=True)
    with strategy.scope():
        vae = models.VAE(data_shape=(12,), latent_dim=2, hidden_units=(8,), likelihood="gaussian")
        vae.compile(optimizer=keras.optimizers.SGD(0.01))
        gan = models.GAN(data_shape=(12,), latent_dim=4, hidden_units=(8,))
        gan.compile(
            d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.SGD(0.01)
        )
    vae_history = vae.fit(dataset, epochs=2, verbose=0)
    gan_history = gan.fit(dataset, epochs=2, verbose=0)
    weights = [w.numpy() for w in vae.weights + gan.weights]
    losses = np.array(vae_history.history["loss"] + gan_history.history["g_loss"])
    np.savez(out_path, losses, *weights)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
