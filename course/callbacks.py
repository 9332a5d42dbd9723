"""Training callbacks: KL warm-up, sample monitor (saves image grids), live history plot."""

from __future__ import annotations

import keras


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
        self.model.beta.assign(fraction * self.model.target_beta)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = float(keras.ops.convert_to_numpy(self.model.beta))
