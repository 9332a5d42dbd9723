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
from matplotlib.ticker import MaxNLocator


def image_grid(
    images, n_cols: int = 10, row_titles=None, title: str | None = None, size: float = 1.0
):
    """Show images of shape (n, height, width[, 1]) in a grid of ``n_cols`` columns."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    n_rows = int(np.ceil(len(images) / n_cols))
    # A strip of fixed height for the title, so that it sits just above the images.
    title_height = 0.4 if title else 0.0
    height = n_rows * size + title_height
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(n_cols * size, height), squeeze=False,
        gridspec_kw={"left": 0, "right": 1, "bottom": 0, "top": 1 - title_height / height,
                     "wspace": 0.05, "hspace": 0.05},
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
        figure.suptitle(title, y=1 - 0.05 / height)
    return figure


def _plot_curve(axis, logs: dict, key: str, units: str | None = None) -> None:
    """One logged value per epoch (and its validation value, if any) on ``axis``."""
    epochs = np.arange(1, len(logs[key]) + 1)
    axis.plot(epochs, logs[key], marker="." if len(epochs) < 20 else None, label="train")
    if f"val_{key}" in logs:
        axis.plot(epochs, logs[f"val_{key}"], label="validation")
        axis.legend(fontsize="small")
    axis.set_title(key.replace("_", " "))
    axis.set_ylabel(units or key)
    _epoch_axis(axis, len(epochs))


def _epoch_axis(axis, n_epochs: int) -> None:
    """Label the x axis "epoch", with whole-number ticks (also for a single epoch)."""
    axis.set_xlabel("epoch")
    axis.set_xlim(0.5, n_epochs + 0.5)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def history(history, keys: list[str] | None = None, title: str = "Training history",
            units: str | None = None):
    """Plot each logged loss per epoch from a ``keras.callbacks.History`` (or its dict).

    Args:
        units: the unit of the logged values, shown on the y axes (e.g. "nats per image").
    """
    logs = history.history if hasattr(history, "history") else dict(history)
    # The total loss first, then its terms in the order they were logged.
    keys = keys or sorted((k for k in logs if not k.startswith("val_")), key=lambda k: k != "loss")
    figure, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        _plot_curve(axis, logs, key, units)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


# --- GAN family: class grids, adversarial losses, predicted vs true expression ----------------


def class_grid(cgan, n_per_class: int = 10, seed: int = 0, title: str | None = None):
    """Generated images of a conditional GAN, one row per class (the row title is the label)."""
    labels = np.repeat(np.arange(cgan.num_classes), n_per_class)
    images = cgan.generate(labels, seed=seed)
    return image_grid(images, n_cols=n_per_class, row_titles=range(cgan.num_classes),
                      title=title or "One row per requested class")


def loss_curves(history, title: str = "Adversarial training", units: str | None = "nats"):
    """Discriminator and generator losses per epoch on one axis, other logged losses beside it.

    A healthy GAN keeps both curves roughly level; a discriminator loss falling to 0 while the
    generator loss climbs means D has won and G no longer learns.

    Args:
        units: the unit of the losses, shown on the y axes (binary cross-entropy: nats).
    """
    logs = history.history if hasattr(history, "history") else dict(history)
    others = [k for k in logs if not k.startswith("val_") and k not in ("d_loss", "g_loss")]
    figure, axes = plt.subplots(
        1, 1 + len(others), figsize=(5.4 + 3.6 * len(others), 3.2), squeeze=False
    )
    axes = axes[0]
    # The generator's loss gets its own y axis: with weighted extra terms it can be 100x larger.
    generator_axis = axes[0].twinx()
    players = ((axes[0], "d_loss", "tab:blue"), (generator_axis, "g_loss", "tab:red"))
    for axis, key, color in players:
        epochs = np.arange(1, len(logs[key]) + 1)
        axis.plot(epochs, logs[key], color=color, marker="." if len(epochs) < 20 else None,
                  label=key)
        if f"val_{key}" in logs:
            axis.plot(epochs, logs[f"val_{key}"], "--", color=color, label=f"val_{key}")
        axis.set_ylabel(f"{key} ({units})" if units else key, color=color)
        axis.tick_params(axis="y", colors=color)
    # The legend sits below the axes: inside, it would cover one of the two curves.
    lines = axes[0].get_lines() + generator_axis.get_lines()
    axes[0].legend(lines, [line.get_label() for line in lines], fontsize="small",
                   loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(lines),
                   frameon=False)
    for axis, key in zip(axes[1:], others):
        _plot_curve(axis, logs, key, units)
    for axis in axes:
        _epoch_axis(axis, len(logs["d_loss"]))
    if others:
        axes[0].set_title("discriminator and generator")
        figure.suptitle(title)
    else:
        axes[0].set_title(title)
    figure.tight_layout()
    return figure


def predicted_vs_true(y_true, y_pred, max_points: int = 20000, seed: int = 0,
                      title: str = "Predicted vs true expression", units: str | None = None):
    """Density of predicted against true values (a random subset of max_points cell-gene
    pairs), with the identity line, a colour bar of the counts, MAE and CCC in the title.

    Args:
        units: the scale of the values, shown on the axes (e.g. "log1p" or "standardized").
    """
    from course import metrics

    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    rng = np.random.default_rng(seed)
    shown = rng.choice(len(y_true), min(max_points, len(y_true)), replace=False)
    figure = plt.figure(figsize=(5.2, 4.2))
    axis = figure.gca()
    density = axis.hexbin(y_true[shown], y_pred[shown], gridsize=60, bins="log", cmap="viridis",
                          mincnt=1)
    figure.colorbar(density, ax=axis, label="cell-gene pairs per hexagon (log scale)")
    low, high = np.percentile(np.concatenate([y_true, y_pred]), [0.1, 99.9])
    axis.plot([low, high], [low, high], "r--", linewidth=1, label="identity")
    suffix = f" ({units})" if units else ""
    axis.set_xlabel(f"true expression{suffix}")
    axis.set_ylabel(f"predicted expression{suffix}")
    axis.legend(loc="upper left")
    axis.set_title(
        f"{title}\nMAE {metrics.mae(y_true, y_pred):.3f}, "
        f"CCC {metrics.concordance_correlation(y_true, y_pred):.3f}"
    )
    figure.tight_layout()
    return figure


def per_gene_error_histogram(per_gene_mae, baselines: dict | None = None, bins: int = 40,
                             label: str = "model", xlabel: str = "per-gene MAE",
                             title: str = "Test error of each gene"):
    """Histogram of the per-gene errors of a model, overlaid with those of ``baselines``."""
    series = {label: np.asarray(per_gene_mae)}
    series.update({name: np.asarray(values) for name, values in (baselines or {}).items()})
    finite = np.concatenate([values[np.isfinite(values)] for values in series.values()])
    edges = np.linspace(finite.min(), finite.max(), bins + 1)
    figure = plt.figure(figsize=(7.5, 3.4))
    axis = figure.gca()
    for name, values in series.items():
        axis.hist(values[np.isfinite(values)], bins=edges, histtype="step", linewidth=1.5,
                  label=f"{name} (median {np.nanmedian(values):.3f})")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("genes")
    axis.set_title(title)
    # Outside the axes: inside, the legend would cover the bars.
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    figure.tight_layout()
    return figure


# --- VAE family: latent spaces, manifold, reconstructions, interpolation -----------------------


def _labelled_scatter(axis, points, labels, names=None, legend_title=None):
    """Scatter 2-D points, one colour per label, with a legend of label names."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, label in enumerate(classes):
        chosen = labels == label
        name = names[label] if names is not None else label
        axis.scatter(*points[chosen].T, s=6, alpha=0.7, color=colours(index % colours.N),
                     label=str(name))
    axis.legend(markerscale=3, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5),
                title=legend_title, title_fontsize="small")


def latent_scatter(z, labels, names=None, title: str = "Latent space",
                   axis_labels: tuple[str, str] = ("z[0]", "z[1]"),
                   legend_title: str | None = None):
    """Scatter the first two latent dimensions, coloured by label (digit, cell type).

    Args:
        names: optional label names, indexed by the integer labels.
        axis_labels: names of the two plotted dimensions, e.g. ("PC 1", "PC 2") for PCA.
        legend_title: what the labels are, e.g. "digit".
    """
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"z must have shape (n, >= 2), got {z.shape}.")
    figure, axis = plt.subplots(figsize=(6, 5))
    _labelled_scatter(axis, z[:, :2], labels, names, legend_title)
    axis.set_xlabel(axis_labels[0])
    axis.set_ylabel(axis_labels[1])
    axis.set_title(title if z.shape[1] == 2 else f"{title} (first 2 of {z.shape[1]} dims)")
    return figure


def _umap(z, seed: int) -> np.ndarray:
    """A seeded 2-D UMAP of ``z`` (n, d)."""
    import umap

    return umap.UMAP(n_neighbors=15, random_state=seed, n_jobs=1).fit_transform(np.asarray(z))


def _umap_axes(axis, title: str) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_xlabel("UMAP 1")
    axis.set_ylabel("UMAP 2")
    axis.set_title(title)


def latent_umap(z, labels, names=None, seed: int = 0, title: str = "Latent space (UMAP)"):
    """A seeded 2-D UMAP of latent codes of any dimension, coloured by label."""
    figure, axis = plt.subplots(figsize=(6, 5))
    _labelled_scatter(axis, _umap(z, seed), labels, names)
    _umap_axes(axis, title)
    return figure


def umap_comparison(embeddings: dict, labels, names=None, seed: int = 0,
                    title: str | None = None, legend_title: str | None = None):
    """Seeded UMAPs of several embeddings of the same cells side by side, one shared legend.

    Args:
        embeddings: panel title (put the scores in it) -> array (n_cells, d).
        names: optional label names, indexed by the integer labels.
    """
    figure, axes = plt.subplots(1, len(embeddings), figsize=(4.6 * len(embeddings) + 1.6, 4.4),
                                squeeze=False)
    for axis, (panel_title, z) in zip(axes[0], embeddings.items()):
        _labelled_scatter(axis, _umap(z, seed), labels, names, legend_title)
        _umap_axes(axis, panel_title)
        if axis is not axes[0, -1]:
            axis.get_legend().remove()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
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


def interpolation(vae, x_a, x_b, steps: int = 10, labels=("start", "end"),
                  title: str = "Latent interpolation"):
    """Decode evenly spaced points on the line between the latent codes of two images.

    The two images stand at the ends, named by ``labels`` (e.g. ``("digit 7", "digit 2")``);
    under each decoded image is its position t on the line, z = (1 - t) z_start + t z_end.
    """
    z_a, z_b = vae.encode(np.stack([x_a, x_b]))
    weights = np.linspace(0.0, 1.0, steps)
    decoded = np.asarray(vae.decode((1 - weights[:, None]) * z_a + weights[:, None] * z_b))
    images = [np.asarray(x_a), *decoded, np.asarray(x_b)]
    figure, axes = plt.subplots(1, steps + 2, figsize=(1.0 * (steps + 2) + 0.4, 2.3),
                                gridspec_kw={"wspace": 0.08})
    captions = [f"{labels[0]}\n(input)", *[f"t = {t:.2g}" for t in weights],
                f"{labels[1]}\n(input)"]
    for index, (axis, image, caption) in enumerate(zip(axes, images, captions)):
        axis.imshow(np.squeeze(image), cmap="gray_r", vmin=0.0, vmax=1.0)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_xlabel(caption, fontsize=8)
        if index in (0, steps + 1):  # the real images get a frame of their own colour
            for spine in axis.spines.values():
                spine.set_edgecolor("tab:blue")
                spine.set_linewidth(2)
    figure.suptitle(f"{title}: decoded from {labels[0]} (t = 0) to {labels[1]} (t = 1)")
    figure.supxlabel("position t on the straight line between the two inputs' latent codes",
                     fontsize=9)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.3)
    return figure


def samples(vae, n: int = 100, n_cols: int = 10, title: str = "Samples from the prior"):
    """Decode ``n`` draws from the prior of an image VAE."""
    return image_grid(vae.generate(n), n_cols=n_cols, title=title)


# --- LDVAE, scGen, DCA ------------------------------------------------------------------------


def top_genes_per_factor(loadings, gene_names, n_top: int = 8, n_cols: int = 5,
                         title: str = "Top genes per factor (LDVAE loadings)"):
    """One bar chart per latent factor: its ``n_top`` genes of largest absolute loading.

    Args:
        loadings: array (n_genes, n_factors), e.g. ``VAE(linear_decoder=True).loadings()``.
        gene_names: one name per gene.
    """
    loadings = np.asarray(loadings)
    gene_names = np.asarray(gene_names).astype(str)
    if loadings.ndim != 2 or len(gene_names) != loadings.shape[0]:
        raise ValueError(
            f"loadings must have shape (n_genes, n_factors) with one of the {len(gene_names)} "
            f"gene names per row, got {loadings.shape}."
        )
    n_factors = loadings.shape[1]
    n_rows = -(-n_factors // n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 0.28 * n_top * n_rows + 1),
                                squeeze=False)
    for factor, axis in enumerate(axes.flat):
        if factor >= n_factors:
            axis.axis("off")
            continue
        top = np.argsort(-np.abs(loadings[:, factor]))[:n_top][::-1]
        values = loadings[top, factor]
        axis.barh(gene_names[top], values, color=np.where(values > 0, "tab:red", "tab:blue"))
        axis.axvline(0.0, color="black", linewidth=0.5)
        axis.tick_params(axis="y", labelsize="small")
        axis.set_title(f"factor {factor}", fontsize="medium")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def protocol_bars(summary: dict, panels: dict[str, tuple[str, str]],
                  title: str = "Landmark -> target genes, test cells (mean +- sd over splits)"):
    """One bar chart per metric of ``course.evaluation.summarize``: mean with sd error bars.

    Args:
        summary: {predictor: {metric: [mean, sd]}}.
        panels: metric -> (panel title, which value is best: "higher", "lower" or a number
            such as "1" or "0.5", drawn as a dashed line), in the order of the panels.

    Undefined values (a correlation of a constant prediction) are left blank and marked "n/a".
    """
    predictors = [name for name in summary if any(
        not np.isnan(summary[name].get(metric, [np.nan])[0]) for metric in panels)]
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(5.4 * n_cols, 0.3 * len(predictors)
                                                         * n_rows + 1.6), squeeze=False)
    positions = np.arange(len(predictors))
    for axis, (metric, (panel_title, best)) in zip(axes.flat, panels.items()):
        means, sds = np.array([summary[p].get(metric, [np.nan, np.nan]) for p in predictors]).T
        axis.barh(positions, np.nan_to_num(means), xerr=np.nan_to_num(sds), color="tab:blue")
        for position in positions[np.isnan(means)]:
            axis.text(0, position, " n/a", va="center", fontsize="small")
        axis.set_yticks(positions, predictors, fontsize="small")
        axis.invert_yaxis()
        axis.set_title(panel_title, fontsize="medium")
        if best == "higher":
            axis.set_xlabel("higher is better \u2192", fontsize="small")
        elif best == "lower":
            axis.set_xlabel("\u2190 lower is better", fontsize="small")
        else:
            axis.axvline(float(best), color="black", linestyle="--", linewidth=1)
            axis.set_xlabel(f"closest to {best} is best (dashed line)", fontsize="small")
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    figure.suptitle(f"{title}\nA sampler's row: the mean of its draws (r, RMSE), its draws "
                    "(energy score, CRPS), one draw per cell (variance ratio, AUC)",
                    fontsize="medium")
    figure.tight_layout()
    return figure


# --- GAN gallery: single-cell marker means, DNA base frequencies ------------------------------


def marker_heatmaps(tables: dict, gene_names, type_names, title: str = "Marker-gene means"):
    """One heatmap per source (e.g. real, cscGAN, baseline): mean log1p expression of marker
    genes (columns) per cell type (rows), on one colour scale."""
    names = list(tables)
    top = max(np.nanmax(table) for table in tables.values())
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 1.5, 4.5),
                                sharey=True, squeeze=False)
    for axis, name in zip(axes[0], names):
        image = axis.imshow(tables[name], vmin=0.0, vmax=top, cmap="viridis", aspect="auto")
        axis.set_title(name)
        axis.set_xticks(range(len(gene_names)), gene_names, rotation=90, fontsize=6)
        axis.set_yticks(range(len(type_names)), type_names, fontsize=7)
    figure.colorbar(image, ax=axes[0].tolist(), label="mean log1p expression")
    figure.suptitle(title)
    return figure


DNA_COLOURS = {"A": "tab:green", "C": "tab:blue", "G": "tab:orange", "T": "tab:red"}


def base_frequency_logo(sets: dict, title: str = "Base frequency per position"):
    """Per-position base frequencies of one-hot sequence sets (one row each) as stacked bars,
    with the most frequent base written on bars where it dominates: a simple sequence logo."""
    figure, axes = plt.subplots(len(sets), 1, figsize=(12, 1.8 * len(sets)), squeeze=False,
                                sharex=True)
    for axis, (name, sequences) in zip(axes[:, 0], sets.items()):
        frequencies = np.asarray(sequences, dtype=np.float64).mean(axis=0)
        positions = np.arange(len(frequencies))
        bottom = np.zeros(len(frequencies))
        for index, (base, colour) in enumerate(DNA_COLOURS.items()):
            axis.bar(positions, frequencies[:, index], bottom=bottom, color=colour, width=0.9,
                     label=base)
            bottom += frequencies[:, index]
        for position, row in zip(positions, frequencies):
            if row.max() >= 0.5:
                axis.text(position, 0.5, "ACGT"[row.argmax()], ha="center", va="center",
                          color="white", fontweight="bold", fontsize=8)
        axis.set_ylim(0, 1)
        axis.set_ylabel(name, fontsize=8)
    axes[0, 0].legend(ncol=4, fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 1.35))
    axes[-1, 0].set_xlabel("position")
    figure.suptitle(title)
    return figure


# --- Deep Generative Decoder ---------------------------------------------------------------------


def mixture_components_vs_labels(components, labels, names=None,
                                 title: str = "Mixture components vs labels"):
    """Heat map of the share of each label (row: a cell type) in each mixture component
    (column), with the number of cells written in every non-empty cell of the table."""
    components, labels = np.asarray(components), np.asarray(labels)
    if components.shape != labels.shape:
        raise ValueError(f"components {components.shape} and labels {labels.shape} must match.")
    label_values, component_values = np.unique(labels), np.unique(components)
    table = np.array([[np.sum((labels == label) & (components == component))
                       for component in component_values] for label in label_values])
    shares = table / table.sum(axis=1, keepdims=True)
    figure, axis = plt.subplots(figsize=(0.6 * len(component_values) + 3.5,
                                         0.4 * len(label_values) + 1.5))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (row, column), count in np.ndenumerate(table):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if shares[row, column] > 0.6 else "black")
    axis.set_xticks(range(len(component_values)), [str(c) for c in component_values])
    axis.set_yticks(range(len(label_values)),
                    [str(names[v]) if names is not None else str(v) for v in label_values])
    axis.set_xlabel("mixture component (most probable for the cell)")
    figure.colorbar(image, ax=axis, label="share of the label's cells")
    axis.set_title(title)
    figure.tight_layout()
    return figure
