"""Training callbacks: KL warm-up for VAEs, and a sample monitor that saves image grids."""

from __future__ import annotations

import keras
import numpy as np


class SampleMonitor(keras.callbacks.Callback):
    """Save a grid of generated images every ``every`` epochs (image GANs and cGANs).

    The same latent vectors (a fixed seed) are used each time, so the saved grids show how
    the generator's answer to one question changes over training. A conditional GAN draws
    ``n`` images cycling through its classes.
    """

    def __init__(self, every: int = 1, out_dir: str = "samples", n: int = 30, seed: int = 0):
        super().__init__()
        if every < 1 or n < 1:
            raise ValueError(f"every and n must be positive integers, got {every} and {n}.")
        self.every, self.out_dir, self.n, self.seed = every, out_dir, n, seed
        self.paths: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        import os

        import matplotlib.pyplot as plt

        from course import plots

        if hasattr(self.model, "num_classes"):
            requested = np.arange(self.n) % self.model.num_classes
            images = self.model.generate(requested, seed=self.seed)
            n_cols = self.model.num_classes
        else:
            images = self.model.generate(self.n, seed=self.seed)
            n_cols = 10
        figure = plots.image_grid(images, n_cols=n_cols, title=f"epoch {epoch + 1}")
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"samples_epoch_{epoch + 1:03d}.png")
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        self.paths.append(path)


# --- VAE family ---------------------------------------------------------------------------------


class KLWarmup(keras.callbacks.Callback):
    """Raise a VAE's KL weight ``beta`` linearly from 0 to its target over the first epochs.

    Early in training the KL term would pull every posterior onto the prior before the decoder
    has learned to use z ("posterior collapse"); warming it up lets the latent code form first.

    Args:
        epochs: number of epochs over which beta rises; from then on it is the model's target
            ``beta`` (the one given to the constructor).
    """

    def __init__(self, epochs: int):
        super().__init__()
        if int(epochs) < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}.")
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        fraction = min(1.0, epoch / self.epochs)
        self.model.kl_weight.assign(fraction * self.model.beta)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = float(keras.ops.convert_to_numpy(self.model.kl_weight))
