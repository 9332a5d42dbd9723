"""One worker of the two-process MultiWorkerMirroredStrategy test (started by
test_multiworker.py with TF_CONFIG set): trains a tiny VAE and GAN, saves their weights."""

from __future__ import annotations

import sys

import numpy as np

from course import datasets, distribute, models


def main(out_path: str) -> None:
    strategy = distribute.get_strategy("multiworker")
    import keras

    keras.utils.set_random_seed(0)
    data = np.random.default_rng(0).normal(size=(64, 12)).astype("float32")
    dataset = datasets.as_dataset(data, batch_size=16, shuffle=False, drop_remainder=True)
    with strategy.scope():
        vae = models.VAE(input_shape=(12,), latent_dim=2, hidden_units=(8,), likelihood="gaussian")
        vae.compile(optimizer=keras.optimizers.SGD(0.01))
        gan = models.GAN(data_shape=(12,), latent_dim=4, hidden_units=(8,))
        gan.compile()
    vae_history = vae.fit(dataset, epochs=2, verbose=0)
    gan_history = gan.fit(dataset, epochs=2, verbose=0)
    weights = [w.numpy() for w in vae.weights + gan.weights]
    losses = np.array(vae_history.history["loss"] + gan_history.history["g_loss"])
    np.savez(out_path, losses, *weights)


if __name__ == "__main__":
    main(sys.argv[1])
