"""The evaluation protocol of landmark -> target gene prediction.

One protocol serves the ``landmark-pbmc`` demo, ``benchmarks/gan.py`` and lab 5:

- several random 70/15/15 splits of the cells (the table reports mean +- sd over splits); in each
  split the landmarks are the most variable genes of the TRAINING cells, every gene is
  standardized with training statistics, and every choice a model makes (ridge's alpha, kNN's k,
  early stopping of the networks) is made on training or validation cells, never on test cells;
- every predictor is scored on the test cells on the log1p(counts per 10,000) scale:
  per-gene Pearson and Spearman r, RMSE, MAE and centred per-cell r, each also on the dense and
  the sparse targets (detected in at least / less than half of the training cells); realism of
  the predicted matrix against the true one (median per-gene variance ratio, zero fraction,
  MMD, real-vs-predicted classifier AUC); and the cell-type accuracy of a kNN classifier of
  real training cells applied to the predicted profiles;
- a conditional SAMPLER (a predictor that returns several draws per test cell, shape (cells,
  draws, targets)) is judged as one: by the energy score and the per-gene CRPS of its draws
  (proper scoring rules: only the true conditional distribution scores best in expectation),
  its realism from one draw per cell, and its accuracy from the mean of its draws. A point
  prediction gets the same two scores as a sampler that always draws it (its distance to the
  truth and its MAE), so point predictors and samplers share the columns. The samplers to beat
  are simple and strong: the targets of a random one of the k nearest training cells, and
  ridge's prediction plus a resampled training residual.

Why not MAE alone: most targets are not detected in most cells, so a gene's median is zero and
predicting each gene's median beats every model on MAE while knowing nothing about any cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from course import datasets, metrics

N_LANDMARKS = 150
EPOCHS = 200  # at most; the networks stop early on their validation error
BATCH_SIZE = 64
PATIENCE = 10
DENSE_DETECTION = 0.5  # dense targets are detected in at least half of the training cells
KNN_NEIGHBOURS = (5, 10, 20, 40)
SAMPLER_NEIGHBOURS = (2, 5, 10, 20, 40)
N_DRAWS = 20  # draws per test cell of a conditional sampler
RIDGE_ALPHAS = tuple(np.logspace(-1, 5, 13))

# Metric name -> (kind, direction, description); the direction says which way is better. The
# accuracy metrics are also computed on the dense and on the sparse targets alone.
METRICS = {
    "pearson_r": ("accuracy", "higher",
                  "mean over genes of Pearson's r between true and predicted values"),
    "spearman_r": ("accuracy", "higher", "mean over genes of Spearman's rank correlation"),
    "rmse": ("accuracy", "lower", "root mean squared error over all entries"),
    "mae": ("accuracy", "lower", "mean absolute error over all entries"),
    "cell_r": ("accuracy", "higher",
               "mean over cells of the centred per-cell r (deviations from the training mean)"),
    "variance_ratio": ("realism", "1 is best", "median over genes of var(predicted) / var(true)"),
    "zero_fraction": ("realism", "truth is best",
                      "share of predicted entries below 0.5 (not detected)"),
    "mmd": ("realism", "lower",
            "MMD^2 (RBF, median bandwidth) between predicted and true test cells"),
    "auc": ("realism", "0.5 is best", "cross-validated AUC of a real-vs-predicted classifier"),
    "cell_type_accuracy": ("realism", "higher", "kNN cell-type classifier of real training "
                                                "cells, applied to the predicted profiles"),
    "energy_score": ("sample", "lower", "mean over cells of the energy score of the draws "
                                        "(a point prediction: its distance to the truth)"),
    "crps": ("sample", "lower", "mean over cells and genes of the CRPS of the draws (a point "
                                "prediction: its MAE)"),
}
ACCURACY_METRICS = [name for name, (kind, _, _) in METRICS.items() if kind == "accuracy"]
# The panels of the protocol figure (plots.protocol_bars): title and which value is best.
FIGURE_PANELS = {
    "pearson_r": ("Per-gene Pearson r", "higher"),
    "rmse": ("RMSE (log1p scale)", "lower"),
    "energy_score": ("Energy score per cell", "lower"),
    "crps": ("CRPS per gene", "lower"),
    "variance_ratio": ("Variance ratio, predicted/true", "1"),
    "auc": ("Real-vs-predicted AUC", "0.5"),
}


# --- Scoring -----------------------------------------------------------------------------------


def score(y_true, y_pred, y_train, labels_train, labels_test, seed: int = 0,
          samples=None) -> dict:
    """Every metric of one prediction, all on the log1p expression scale.

    Args:
        y_true: true target expression of the test cells.
        y_pred: predicted target expression of the test cells (a sampler's: the mean of its
            draws).
        y_train: true target expression of the training cells (centring, dense/sparse split,
            and the kNN cell-type classifier).
        labels_train, labels_test: cell types of the training and test cells.
        samples: a sampler's draws, (cells, draws, targets): the energy score and CRPS use all
            of them, the realism metrics the first draw of each cell. None: a point prediction.

    Returns:
        A flat dict of floats: the accuracy metrics with suffixes ``""`` (all targets),
        ``"_dense"`` and ``"_sparse"``, ``n_undefined_r`` (genes whose r is undefined, left out
        of ``pearson_r``), the realism metrics and the sample scores.
    """
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    y_train = np.asarray(y_train, np.float64)
    if not np.all(np.isfinite(y_pred)):
        raise ValueError("The prediction contains NaN or infinite values; it cannot be scored.")
    center = y_train.mean(axis=0)
    dense = metrics.detection_rate(y_train) >= DENSE_DETECTION
    scores = {}
    for suffix, genes in (("", slice(None)), ("_dense", dense), ("_sparse", ~dense)):
        truth, prediction = y_true[:, genes], y_pred[:, genes]
        if truth.shape[1] == 0:
            continue
        pearson, n_undefined = metrics.mean_and_undefined(
            metrics.per_gene_pearson(truth, prediction))
        scores[f"pearson_r{suffix}"] = pearson
        scores[f"spearman_r{suffix}"] = metrics.mean_and_undefined(
            metrics.per_gene_spearman(truth, prediction))[0]
        scores[f"rmse{suffix}"] = metrics.rmse(truth, prediction)
        scores[f"mae{suffix}"] = metrics.mae(truth, prediction)
        scores[f"cell_r{suffix}"] = metrics.mean_and_undefined(
            metrics.per_cell_pearson(truth, prediction, center=center[genes]))[0]
        if not suffix:
            scores["n_undefined_r"] = n_undefined
    draws = y_pred[:, None, :] if samples is None else np.asarray(samples, np.float64)
    one_draw = draws[:, 0, :]  # The point prediction itself, or one draw per cell.
    scores["variance_ratio"] = float(np.nanmedian(metrics.variance_ratio(y_true, one_draw)))
    scores["zero_fraction"] = metrics.zero_fraction(one_draw)
    scores["mmd"] = metrics.mmd(one_draw, y_true, seed=seed)
    scores["auc"] = metrics.classifier_auc(y_true, one_draw, seed=seed)
    scores["cell_type_accuracy"] = metrics.expression_knn_accuracy(
        y_train, labels_train, one_draw, labels_test)
    scores["energy_score"] = float(metrics.energy_score(draws, y_true).mean())
    scores["crps"] = float(metrics.crps(draws, y_true).mean())
    return scores


# --- Predictors --------------------------------------------------------------------------------
# A predictor takes a LandmarkSplit and returns {row name: predicted standardized targets of the
# test cells}; it may use the training and validation cells, never the test targets.


def per_gene_mean(split, seed: int, epochs: int) -> dict:
    """The floor of MSE: every cell gets the training mean of each gene."""
    mean = split.y_train.astype(np.float64).mean(axis=0)  # float64: exactly the center
    return {"per-gene mean": np.broadcast_to(mean, split.y_test.shape)}


def per_gene_median(split, seed: int, epochs: int) -> dict:
    """The floor of MAE: every cell gets the training median of each gene (mostly zero)."""
    return {"per-gene median": np.broadcast_to(np.median(split.y_train, axis=0),
                                               split.y_test.shape)}


def ridge(split, seed: int, epochs: int) -> dict:
    """Ridge regression, alpha chosen by leave-one-out cross-validation on the training cells."""
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(split.x_train, split.y_train)
    return {"ridge": model.predict(split.x_test)}


def knn_regression(split, seed: int, epochs: int) -> dict:
    """The mean targets of the k nearest training cells in landmark space, k by validation RMSE."""
    from sklearn.neighbors import KNeighborsRegressor

    def fitted(k):
        return KNeighborsRegressor(n_neighbors=k).fit(split.x_train, split.y_train)

    validation_error = {
        k: metrics.rmse(split.target_expression(split.y_val),
                        split.target_expression(fitted(k).predict(split.x_val)))
        for k in KNN_NEIGHBOURS
    }
    best_k = min(validation_error, key=validation_error.get)
    return {"kNN regression": fitted(best_k).predict(split.x_test)}


def fit_on_split(model, split, epochs: int, seed: int, monitor: str = "val_loss"):
    """Fit a Keras model on the training cells, stopping early on ``monitor`` (validation)."""
    import keras

    train = datasets.as_dataset((split.x_train, split.y_train), batch_size=BATCH_SIZE, seed=seed)
    validation = datasets.as_dataset((split.x_val, split.y_val), batch_size=BATCH_SIZE,
                                     shuffle=False)
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=PATIENCE,
                                         restore_best_weights=True)
    return model.fit(train, validation_data=validation, epochs=epochs, callbacks=[stop],
                     verbose=0)


def mlp(loss: str, name: str) -> Callable:
    """The D-GEX MLP (tanh hidden layer) trained with ``loss``, early-stopped on validation."""

    def predictor(split, seed: int, epochs: int) -> dict:
        import keras

        from course import models

        keras.utils.set_random_seed(seed)
        model = models.MLPRegressor(split.n_landmarks, split.n_targets)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        fit_on_split(model, split, epochs, seed)
        return {name: model.predict(split.x_test, verbose=0)}

    predictor.__doc__ = f"The D-GEX MLP trained with {loss}, early-stopped on validation."
    return predictor


def landmark_gan(name: str = "LandmarkGAN", monitor: str = "val_energy_score",
                 **options) -> Callable:
    """LandmarkGAN (its defaults, changed by ``options``): its point prediction and N_DRAWS
    conditional draws per cell, early-stopped on ``monitor`` (validation cells)."""

    def predictor(split, seed: int, epochs: int) -> dict:
        import keras

        from course import models

        keras.utils.set_random_seed(seed)
        model = models.LandmarkGAN(split.n_landmarks, split.n_targets, seed=seed, **options)
        model.compile()
        fit_on_split(model, split, epochs, seed, monitor=monitor)
        draws = [model.generate(split.x_test, seed=seed * N_DRAWS + draw)
                 for draw in range(N_DRAWS)]
        return {name: model.predict(split.x_test, verbose=0),
                f"{name} (samples)": np.stack(draws, axis=1)}

    predictor.__doc__ = f"{name}: LandmarkGAN({options or ''}), point prediction and draws."
    return predictor


def knn_sampler(split, seed: int, epochs: int) -> dict:
    """Conditional draws: the targets of a random one of the k nearest training cells in
    landmark space (real profiles of similar cells), k by the validation energy score."""
    from sklearn.neighbors import NearestNeighbors

    neighbours = NearestNeighbors(n_neighbors=max(SAMPLER_NEIGHBOURS)).fit(split.x_train)

    def draws(landmarks, k):
        nearest = neighbours.kneighbors(landmarks, k, return_distance=False)
        rng = np.random.default_rng(seed)
        picks = np.take_along_axis(nearest, rng.integers(0, k, (len(landmarks), N_DRAWS)), 1)
        return split.y_train[picks]

    best_k = min(SAMPLER_NEIGHBOURS, key=lambda k: sampler_energy(split, draws(split.x_val, k)))
    return {"kNN sampler": draws(split.x_test, best_k)}


def ridge_residuals(split, seed: int, epochs: int) -> dict:
    """Conditional draws: ridge's prediction (alpha by leave-one-out CV) plus the residual of a
    random training cell (whole profiles, so that genes keep their correlations)."""
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(split.x_train, split.y_train)
    residuals = split.y_train - model.predict(split.x_train)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(residuals), (len(split.x_test), N_DRAWS))
    return {"ridge + residuals": model.predict(split.x_test)[:, None, :] + residuals[picks]}


def sampler_energy(split, standardized_draws) -> float:
    """The mean energy score of draws for the validation cells, on the log1p scale."""
    return float(metrics.energy_score(log1p_draws(split, standardized_draws),
                                      split.target_expression(split.y_val)).mean())


def log1p_draws(split, standardized) -> np.ndarray:
    """Standardized predictions, (cells, targets) or draws (cells, draws, targets), on the
    log1p scale."""
    standardized = np.asarray(standardized, np.float64)
    flat = standardized.reshape(-1, standardized.shape[-1])
    return split.target_expression(flat).reshape(standardized.shape)


PREDICTORS: dict[str, Callable] = {
    "per-gene mean": per_gene_mean,
    "per-gene median": per_gene_median,
    "ridge": ridge,
    "kNN regression": knn_regression,
    "MLP (MSE, D-GEX)": mlp("mse", "MLP (MSE, D-GEX)"),
    "MLP (L1)": mlp("mae", "MLP (L1)"),
    "kNN sampler": knn_sampler,
    "ridge + residuals": ridge_residuals,
    "LandmarkGAN": landmark_gan(),
}


# --- The protocol ------------------------------------------------------------------------------


def evaluate(
    adata,
    n_splits: int = 5,
    n_landmarks: int = N_LANDMARKS,
    n_targets: int | None = None,
    epochs: int = EPOCHS,
    seed: int = 0,
    predictors: dict[str, Callable] | None = None,
    verbose: bool = True,
    first_split_predictions: dict | None = None,
) -> list[dict]:
    """Run the protocol: ``n_splits`` random splits, every predictor, every metric.

    Split ``i`` uses the seed ``seed + i`` for its cells; its landmarks are the most variable
    genes of its training cells. The same seed gives the same table.

    Args:
        first_split_predictions: a dict to receive the first split's test predictions on the
            log1p scale (predictor name -> array, plus "truth"), e.g. for figures.

    Returns:
        One row per split and prediction: ``split``, ``predictor``, ``seconds`` (fit and
        predict) and every metric of :func:`score`. A predictor's array of shape (cells,
        targets) is a point prediction, of shape (cells, draws, targets) conditional draws.
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be at least 1, got {n_splits}.")
    predictors = PREDICTORS if predictors is None else predictors
    cell_types, _ = datasets.labels(adata)
    rows = []
    for index in range(n_splits):
        split = datasets.landmark_split(adata, n_landmarks=n_landmarks, n_targets=n_targets,
                                        seed=seed + index)
        y_train = split.target_expression(split.y_train)
        y_test = split.target_expression(split.y_test)
        for predictor in predictors.values():
            start = time.perf_counter()
            predictions = predictor(split, seed + index, epochs)
            seconds = time.perf_counter() - start
            for name, prediction in predictions.items():
                prediction = log1p_draws(split, prediction)
                samples = prediction if prediction.ndim == 3 else None
                point = prediction if samples is None else samples.mean(axis=1)
                if index == 0 and first_split_predictions is not None:
                    first_split_predictions.update({name: point, "truth": y_test})
                scores = score(y_test, point, y_train,
                               cell_types[split.train_index], cell_types[split.test_index],
                               seed=seed + index, samples=samples)
                rows.append({"split": index, "predictor": name, "seconds": seconds, **scores})
                if verbose:
                    print(f"  split {index}: {name:<26} per-gene r {scores['pearson_r']:.3f}, "
                          f"RMSE {scores['rmse']:.3f}, energy score "
                          f"{scores['energy_score']:.2f} ({seconds:.1f} s)", flush=True)
        rows.append({"split": index, "predictor": "truth (test cells)", "seconds": 0.0,
                     **truth_scores(y_test, y_train, cell_types, split, seed + index)})
    return rows


def truth_scores(y_test, y_train, cell_types, split, seed: int) -> dict:
    """The realism metrics of the true test matrix itself: the values a perfect model gets."""
    return {
        "variance_ratio": 1.0,
        "zero_fraction": metrics.zero_fraction(y_test),
        "cell_type_accuracy": metrics.expression_knn_accuracy(
            y_train, cell_types[split.train_index], y_test, cell_types[split.test_index]),
    }


def summarize(rows: list[dict]) -> dict:
    """Mean and standard deviation over splits: {predictor: {metric: [mean, sd]}}."""
    summary: dict = {}
    for predictor in dict.fromkeys(row["predictor"] for row in rows):
        mine = [row for row in rows if row["predictor"] == predictor]
        names = [key for key in mine[0] if key not in ("split", "predictor")]
        summary[predictor] = {}
        for name in names:
            values = np.array([row.get(name, np.nan) for row in mine], dtype=np.float64)
            if np.all(np.isnan(values)):
                summary[predictor][name] = [float("nan"), float("nan")]
                continue
            sd = float(np.nanstd(values, ddof=1)) if np.sum(~np.isnan(values)) > 1 else 0.0
            summary[predictor][name] = [float(np.nanmean(values)), sd]
    return summary


def table(summary: dict, metric_names: list[str] | None = None, markdown: bool = False) -> str:
    """The summary as a text (or markdown) table: one row per metric, one column per predictor."""
    predictors = list(summary)
    if metric_names is None:
        metric_names = list(dict.fromkeys(name for values in summary.values() for name in values))

    def cell(predictor, name):
        mean, sd = summary[predictor].get(name, [float("nan")] * 2)
        return "-" if np.isnan(mean) else f"{mean:.3f} +- {sd:.3f}"

    header = ["metric", *predictors]
    body = [[name, *(cell(p, name) for p in predictors)] for name in metric_names]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in [header, *body])


def json_ready(value):
    """``value`` with every NaN replaced by None, recursively (JSON has no NaN; an undefined
    correlation is written as null)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
