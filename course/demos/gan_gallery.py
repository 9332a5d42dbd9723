"""Gallery of published GANs for genomics: scGAN / cscGAN on PBMC cells and DNA-GAN on
sequences with a planted motif, each against a simple baseline.

- ``scgan-pbmc``: scGAN and cscGAN (Marouf et al. 2020) against independent per-cell-type
  negative-binomial sampling of each gene. Scores: a real-vs-generated classifier's AUC (0.5 is
  ideal), MMD, and marker-gene means per cell type, all on log1p of library-size-normalized
  cells in the principal components of the real cells.
- ``dnagan-synthetic``: DNA-GAN (Killoran et al. 2017) on ``datasets.synthetic_sequences``,
  then design by activation maximization against a small motif classifier. Score: the share of
  sequences with a motif hit (PWM log-odds scan), for random, real, generated and designed ones.
"""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo

BATCH_SIZE = 64
N_COMPONENTS = 50  # principal components of the real cells in which cells are compared
# A motif hit is a window scoring at least this share of the PWM's best log-odds score. For the
# default 10-base motif (best score 13.2) that allows about two mismatches: it finds ~98% of
# planted motifs and ~2% of random 50-base sequences have a hit by chance.
MOTIF_THRESHOLD_FRACTION = 0.4


# --- Single cells ----------------------------------------------------------------------------


def independent_nb_sampler(counts, labels, requested_labels, seed: int = 0) -> np.ndarray:
    """The baseline: per cell type, draw each gene independently from a negative binomial.

    Mean and variance of each gene are matched within each cell type (method of moments; a
    Poisson where the variance does not exceed the mean). Genes are independent given the cell
    type, so gene-gene correlations within a type are lost: this is what a GAN should add.
    """
    rng = np.random.default_rng(seed)
    counts, labels = np.asarray(counts, np.float64), np.asarray(labels)
    requested_labels = np.asarray(requested_labels)
    samples = np.zeros((len(requested_labels), counts.shape[1]))
    for label in np.unique(requested_labels):
        rows = requested_labels == label
        typed = counts[labels == label]
        if len(typed) == 0:
            raise ValueError(f"No real cells of type {label} to fit the sampler on.")
        mean, variance = typed.mean(axis=0), typed.var(axis=0)
        overdispersed = variance > mean + 1e-8
        # NB(r, p) with mean m and variance v: r = m^2 / (v - m), p = r / (r + m).
        r = np.where(overdispersed, mean**2 / np.maximum(variance - mean, 1e-8), 1.0)
        p = np.where(overdispersed, r / (r + mean), 1.0)
        nb = rng.negative_binomial(np.maximum(r, 1e-8), np.clip(p, 1e-8, 1.0),
                                   (rows.sum(), len(mean)))
        poisson = rng.poisson(mean, (rows.sum(), len(mean)))
        samples[rows] = np.where(overdispersed, nb, poisson)
    return samples


def log_normalized(cells, library_size: float = 20000.0) -> np.ndarray:
    """log1p of cells scaled to ``library_size`` counts (cells without counts stay zero)."""
    cells = np.asarray(cells, np.float64)
    totals = cells.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(cells, totals, out=np.zeros_like(cells), where=totals > 0)
                    * library_size)


def marker_genes(expression, labels, per_type: int = 2) -> np.ndarray:
    """Indices of the genes most raised in each cell type over the others (mean log1p gap)."""
    markers = []
    for label in np.unique(labels):
        gap = expression[labels == label].mean(axis=0) - expression[labels != label].mean(axis=0)
        markers += [g for g in np.argsort(-gap) if g not in markers][:per_type]
    return np.array(markers)


def marker_means(expression, labels, markers, types) -> np.ndarray:
    """Mean log1p expression of each marker gene (columns) in each cell type (rows); NaN for a
    cell type without cells."""
    return np.array([expression[labels == t][:, markers].mean(axis=0) if np.any(labels == t)
                     else np.full(len(markers), np.nan) for t in types])


def assign_cell_types(real, real_labels, generated, k: int = 15, seed: int = 0) -> np.ndarray:
    """Cell types of generated cells: a kNN classifier of the real cells in their PCs."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    classifier = make_pipeline(PCA(min(N_COMPONENTS, *real.shape), random_state=seed),
                               KNeighborsClassifier(k))
    return classifier.fit(real, real_labels).predict(generated)


def correlation_error(real, real_labels, generated, generated_labels, n_genes: int = 50,
                      min_cells: int = 20) -> float:
    """Mean |r_real - r_generated| over pairs of the most variable genes, within cell types.

    Gene-gene correlations within a cell type are what independent per-gene sampling loses;
    cell types with fewer than ``min_cells`` real or generated cells are skipped.
    """
    genes = np.argsort(-real.var(axis=0))[:n_genes]
    pairs = np.triu_indices(len(genes), k=1)
    errors = []
    for label in np.unique(real_labels):
        a, b = real[real_labels == label][:, genes], generated[generated_labels == label][:, genes]
        if min(len(a), len(b)) < min_cells:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.corrcoef(a, rowvar=False)[pairs] - np.corrcoef(b, rowvar=False)[pairs]
        errors.append(np.nanmean(np.abs(gap)))
    return float(np.mean(errors)) if errors else float("nan")


def cell_scores(real, real_labels, generated, generated_labels, markers, seed: int = 0) -> dict:
    """AUC, MMD and marker-mean agreement of generated cells with real ones (log1p scale).

    Returns ``auc`` (cross-validated real-vs-generated classifier in the principal components
    of the real cells; 0.5 is ideal), ``mmd`` (same features), ``marker_mae`` (mean absolute
    gap of marker-gene means per cell type), ``marker_correlation`` (Pearson's r of those
    means) and ``correlation_error`` (see :func:`correlation_error`), plus the two marker-mean
    tables.
    """
    from sklearn.decomposition import PCA

    from course import metrics

    pca = PCA(min(N_COMPONENTS, *real.shape), random_state=seed).fit(real)
    real_pcs, generated_pcs = pca.transform(real), pca.transform(generated)
    types = np.unique(real_labels)
    real_means = marker_means(real, real_labels, markers, types)
    generated_means = marker_means(generated, generated_labels, markers, types)
    present = ~np.isnan(generated_means)
    return {
        "auc": metrics.classifier_auc(real_pcs, generated_pcs, seed=seed),
        "mmd": metrics.mmd(real_pcs, generated_pcs, seed=seed),
        "marker_mae": float(np.abs(real_means - generated_means)[present].mean()),
        "marker_correlation": float(np.corrcoef(real_means[present],
                                                generated_means[present])[0, 1]),
        "correlation_error": correlation_error(real, real_labels, generated, generated_labels),
        "real_marker_means": real_means,
        "generated_marker_means": generated_means,
    }


# --- DNA ---------------------------------------------------------------------------------------


def pwm_scores(sequences, pwm) -> np.ndarray:
    """Best log-odds score of the motif ``pwm`` against a uniform background in each sequence.

    The score of a window is sum_i log(pwm[i, base_i] / 0.25); the best over all windows is
    kept. One strand only: ``datasets.synthetic_sequences`` plants motifs on the forward strand.
    """
    sequences = np.asarray(sequences, np.float64)
    log_odds = np.log(np.asarray(pwm, np.float64) / 0.25)
    width = len(log_odds)
    per_base = sequences @ log_odds.T  # (n, length, motif position): score of each base there
    windows = sum(per_base[:, i : sequences.shape[1] - width + 1 + i, i] for i in range(width))
    return windows.max(axis=1)


def motif_rate(sequences, pwm, threshold: float) -> float:
    """Share of sequences with a motif hit: a window scoring at least ``threshold``."""
    return float((pwm_scores(sequences, pwm) >= threshold).mean())


def train_motif_classifier(sequences, has_motif, epochs: int = 10, seed: int = 0):
    """Fit :func:`course.models.dnagan.motif_classifier` on motif vs no-motif sequences."""
    import keras

    from course.models.dnagan import motif_classifier

    keras.utils.set_random_seed(seed)
    classifier = motif_classifier(sequences.shape[1])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2),
                       loss=keras.losses.BinaryCrossentropy(from_logits=True),
                       metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
    classifier.fit(sequences, has_motif, epochs=epochs, batch_size=BATCH_SIZE,
                   validation_split=0.2, verbose=0)
    return classifier


def best_hit_windows(sequences, pwm, flank: int = 3) -> np.ndarray:
    """The window around each sequence's best motif hit, with ``flank`` bases either side
    (padded with zeros at the ends): sequences aligned on the motif, for a logo."""
    sequences = np.asarray(sequences, np.float64)
    width = len(pwm)
    log_odds = np.log(np.asarray(pwm, np.float64) / 0.25)
    per_base = sequences @ log_odds.T
    windows = sum(per_base[:, i : sequences.shape[1] - width + 1 + i, i] for i in range(width))
    starts = windows.argmax(axis=1)
    padded = np.pad(sequences, ((0, 0), (flank, flank), (0, 0)))
    return np.stack([padded[row, start : start + width + 2 * flank]
                     for row, start in enumerate(starts)])


def motif_threshold(pwm, fraction: float = MOTIF_THRESHOLD_FRACTION) -> float:
    """The hit threshold: ``fraction`` of the best possible log-odds score of ``pwm``."""
    return float(fraction * np.log(np.asarray(pwm).max(axis=1) / 0.25).sum())


# --- Demos -------------------------------------------------------------------------------------


def fit_wgan(model, data, epochs: int, strategy, seed: int = 0, learning_rate: float = 1e-3,
             verbose=0):
    """Compile a WGAN-GP model (Adam, beta 0.5 / 0.9) inside the strategy scope and fit it."""
    import keras

    from course import datasets

    with strategy.scope():
        model.compile(d_optimizer=keras.optimizers.Adam(learning_rate, 0.5, 0.9),
                      g_optimizer=keras.optimizers.Adam(learning_rate, 0.5, 0.9))
    dataset = datasets.as_dataset(data, batch_size=BATCH_SIZE, seed=seed,
                                  drop_remainder=strategy.num_replicas_in_sync > 1)
    return model.fit(dataset, epochs=epochs, verbose=verbose)


def train_single_cell_gans(counts, labels, epochs: int, strategy, seed: int = 0, verbose=0):
    """Fit an scGAN and a cscGAN (by cell type) on raw counts; returns models and histories."""
    from course import models

    with strategy.scope():
        scgan = models.ScGAN(counts.shape[1], seed=seed)
        cscgan = models.ConditionalScGAN(counts.shape[1], int(labels.max()) + 1, seed=seed)
    histories = {}
    for name, model, data in (("scGAN", scgan, counts), ("cscGAN", cscgan, (counts, labels))):
        print(f"{name}:")
        histories[name] = fit_wgan(model, data, epochs, strategy, seed, verbose=verbose)
    return {"scGAN": scgan, "cscGAN": cscgan}, histories


def score_single_cells(counts, labels, gans: dict, seed: int = 0) -> dict:
    """Scores of the two GANs and the independent-NB baseline against the real cells.

    Every source generates as many cells as there are real ones: the cscGAN and the baseline
    with the real cell-type composition, the scGAN unconditionally (its cells get the type of
    their nearest real cells).
    """
    real = log_normalized(counts)
    markers = marker_genes(real, labels)
    generated = {
        "scGAN": np.log1p(gans["scGAN"].generate(len(counts), seed=seed + 1)),
        "cscGAN": np.log1p(gans["cscGAN"].generate(labels, seed=seed + 1)),
        "independent NB (baseline)": log_normalized(
            independent_nb_sampler(counts, labels, labels, seed=seed + 1)),
    }
    scores = {}
    for name, cells in generated.items():
        cell_types = assign_cell_types(real, labels, cells) if name == "scGAN" else labels
        scores[name] = cell_scores(real, labels, cells, cell_types, markers, seed=seed)
    scores["markers"] = markers
    return scores


@demo("scgan-pbmc", "scGAN and cscGAN (WGAN-GP, LSN) on PBMC cells vs independent NB genes",
            epochs=60, data="pbmc")
def scgan_pbmc(run: Run) -> dict:
    from course import datasets, plots
    from course.demos import data_source_name

    adata = run.single_cell()
    counts = datasets.counts(adata)
    labels, type_names = datasets.labels(adata)
    gans, histories = train_single_cell_gans(counts, labels, run.epochs, run.strategy,
                                             run.seed, verbose=run.verbose)
    scores = score_single_cells(counts, labels, gans, seed=run.seed)
    markers = scores.pop("markers")
    tables = {"real": next(iter(scores.values()))["real_marker_means"]}
    tables.update({name: s.pop("generated_marker_means") for name, s in scores.items()})
    for name, model in gans.items():
        run.save_model(model, f"{name}.keras")
        run.save_figure(plots.loss_curves(histories[name], title=f"{name} on PBMC", units=None),
                        f"losses_{name}.png")
    genes = np.asarray(adata.var_names)[markers]
    run.save_figure(plots.marker_heatmaps(tables, genes, type_names), "marker_means.png")
    for name, s in scores.items():
        s.pop("real_marker_means")
        print(f"  {name:<26} AUC {s['auc']:.3f}  MMD {s['mmd']:.4f}  marker MAE "
              f"{s['marker_mae']:.3f}  marker r {s['marker_correlation']:.3f}  gene-gene r "
              f"error {s['correlation_error']:.3f}")
    data = {"name": "PBMC", "source": data_source_name("pbmc", run.source),
            "n_cells": len(counts), "n_genes": counts.shape[1], "n_cell_types": len(type_names)}
    return run.report(epochs=run.epochs, data=data, metrics=scores)


def dna_gallery(n_sequences: int, length: int, epochs: int, strategy, seed: int = 0,
                design_steps: int = 200, verbose=0) -> dict:
    """Train DNA-GAN and a motif classifier on synthetic sequences, design, and scan.

    Half of the sequences carry the planted motif, so a faithful GAN generates motifs at about
    the real rate; designs should beat it. Returns the motif rates of random, real, generated
    and designed sequences, the classifier's validation accuracy, the sequence sets, the GAN
    and its training history.
    """
    from course import datasets, models

    pwm, threshold = datasets.MOTIF_PWM, motif_threshold(datasets.MOTIF_PWM)
    sequences, has_motif = datasets.synthetic_sequences(n_sequences, length, seed=seed)
    random_sequences, _ = datasets.synthetic_sequences(n_sequences, length, motif_fraction=0.0,
                                                       seed=seed + 1)
    classifier = train_motif_classifier(sequences, has_motif, seed=seed)
    with strategy.scope():
        gan = models.DNAGAN(length, seed=seed)
    history = fit_wgan(gan, sequences, epochs, strategy, seed, verbose=verbose)
    sets = {"random": random_sequences, "real": sequences,
            "generated": gan.generate(n_sequences, seed=seed + 1),
            "designed": gan.design(classifier, n_sequences, steps=design_steps, seed=seed + 1)}
    return {
        "motif_rate": {name: motif_rate(s, pwm, threshold) for name, s in sets.items()},
        "classifier_accuracy": float(classifier.history.history["val_binary_accuracy"][-1]),
        "sets": sets, "gan": gan, "history": history,
    }


@demo("dnagan-synthetic", "DNA-GAN (WGAN-GP) on sequences with a planted motif; design by "
            "activation maximization", epochs=30)
def dnagan_synthetic(run: Run) -> dict:
    from course import datasets, plots

    n_sequences, length = 1000, 50
    results = dna_gallery(n_sequences, length, run.epochs, run.strategy, run.seed,
                          verbose=run.verbose)
    run.save_model(results["gan"])
    run.save_figure(plots.loss_curves(results["history"], title="DNA-GAN", units=None),
                    "losses.png")
    windows = {name: best_hit_windows(s, datasets.MOTIF_PWM)
               for name, s in results["sets"].items()}
    run.save_figure(plots.base_frequency_logo(
        windows, title=f"Best motif hit +-3 bases (planted: {datasets.MOTIF_CONSENSUS})"),
        "motif_logo.png")
    run.save_figure(plots.base_frequency_logo(
        {"designed": results["sets"]["designed"]}, title="Designed sequences, unaligned"),
        "designed_logo.png")
    for name, rate in results["motif_rate"].items():
        print(f"  motif rate {name:<10} {rate:.3f}")
    data = {"name": "synthetic sequences", "n_sequences": n_sequences, "length": length,
            "motif": datasets.MOTIF_CONSENSUS, "motif_fraction": 0.5}
    metrics = {"motif_rate": results["motif_rate"],
               "classifier_accuracy": results["classifier_accuracy"]}
    return run.report(epochs=run.epochs, data=data, metrics=metrics)
