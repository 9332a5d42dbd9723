"""Figures: image grids, training history, latent spaces, generated samples, predictions.

Every function returns a matplotlib ``Figure`` (shown inline in a notebook, saved by the demos).
"""

from __future__ import annotations

import os

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np


def image_grid(
    images, n_cols: int = 10, row_titles=None, title: str | None = None, size: float = 1.0
):
    """Show images of shape (n, height, width[, 1]) in a grid of ``n_cols`` columns."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    n_rows = int(np.ceil(len(images) / n_cols))
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * size, n_rows * size), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap="gray_r", vmin=0.0, vmax=1.0)
    if row_titles is not None:
        for row, text in enumerate(row_titles):
            axes[row, 0].text(-0.3, 0.5, str(text), transform=axes[row, 0].transAxes,
                              ha="right", va="center")
    if title:
        figure.suptitle(title)
    return figure


def history(history, keys: list[str] | None = None, title: str = "Training history"):
    """Plot each logged loss per epoch from a ``keras.callbacks.History`` (or its dict)."""
    logs = history.history if hasattr(history, "history") else dict(history)
    keys = keys or [k for k in logs if not k.startswith("val_")]
    figure, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        epochs = np.arange(1, len(logs[key]) + 1)
        axis.plot(epochs, logs[key], label="train")
        if f"val_{key}" in logs:
            axis.plot(epochs, logs[f"val_{key}"], label="validation")
            axis.legend()
        axis.set_title(key)
        axis.set_xlabel("epoch")
    figure.suptitle(title)
    figure.tight_layout()
    return figure
