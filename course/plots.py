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


# --- VAE family: latent spaces, manifold, reconstructions, interpolation -----------------------


def _labelled_scatter(axis, points, labels, names=None):
    """Scatter 2-D points, one colour per label, with a legend of label names."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, label in enumerate(classes):
        chosen = labels == label
        name = names[label] if names is not None else label
        axis.scatter(*points[chosen].T, s=6, alpha=0.7, color=colours(index % colours.N),
                     label=str(name))
    axis.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))


def latent_scatter(z, labels, names=None, title: str = "Latent space"):
    """Scatter the first two latent dimensions, coloured by label (digit, cell type).

    Args:
        names: optional label names, indexed by the integer labels.
    """
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"z must have shape (n, >= 2), got {z.shape}.")
    figure, axis = plt.subplots(figsize=(6, 5))
    _labelled_scatter(axis, z[:, :2], labels, names)
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_title(title if z.shape[1] == 2 else f"{title} (first 2 of {z.shape[1]} dims)")
    return figure


def latent_umap(z, labels, names=None, seed: int = 0, title: str = "Latent space (UMAP)"):
    """A seeded 2-D UMAP of latent codes of any dimension, coloured by label."""
    import umap

    embedding = umap.UMAP(n_neighbors=15, random_state=seed).fit_transform(np.asarray(z))
    figure, axis = plt.subplots(figsize=(6, 5))
    _labelled_scatter(axis, embedding, labels, names)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_xlabel("UMAP 1")
    axis.set_ylabel("UMAP 2")
    axis.set_title(title)
    return figure


def manifold_grid(vae, n: int = 15, span: float = 2.5, title: str = "Decoded latent grid"):
    """Decode an n x n grid of a 2-D latent space, z in [-span, span]^2, as one image."""
    if vae.latent_dim != 2:
        raise ValueError(
            f"manifold_grid needs a 2-D latent space, got latent_dim={vae.latent_dim}; use "
            "latent_umap to look at larger ones."
        )
    values = np.linspace(-span, span, n)
    # Rows run from high z[1] (top) to low, like the axes of a scatter plot.
    grid = np.array([[x_value, y_value] for y_value in values[::-1] for x_value in values])
    images = np.asarray(vae.decode(grid.astype(np.float32)))[..., 0]
    height, width = images.shape[1:3]
    canvas = images.reshape(n, n, height, width).transpose(0, 2, 1, 3).reshape(n * height, -1)
    figure, axis = plt.subplots(figsize=(7, 7))
    axis.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=1.0,
                extent=(-span, span, -span, span))
    axis.set_xlabel("z[0]")
    axis.set_ylabel("z[1]")
    axis.set_title(title)
    return figure


def reconstructions(vae, x, n: int = 10, title: str = "Originals (top) and reconstructions"):
    """The first ``n`` images of ``x`` above their VAE reconstructions."""
    originals = np.asarray(x[:n])
    return image_grid(
        np.concatenate([originals, vae.reconstruct(originals)]), n_cols=len(originals),
        row_titles=["original", "reconstructed"], title=title,
    )


def interpolation(vae, x_a, x_b, steps: int = 10, title: str = "Latent interpolation"):
    """Decode evenly spaced points on the line between the latent codes of two images."""
    z_a, z_b = vae.encode(np.stack([x_a, x_b]))
    weights = np.linspace(0.0, 1.0, steps)[:, None]
    return image_grid(vae.decode((1 - weights) * z_a + weights * z_b), n_cols=steps, title=title)


def samples(vae, n: int = 100, n_cols: int = 10, title: str = "Samples from the prior"):
    """Decode ``n`` draws from the prior of an image VAE."""
    return image_grid(vae.sample(n), n_cols=n_cols, title=title)
