"""Evaluation: ELBO and importance-weighted log-likelihood, latent-space quality (kNN accuracy,
ARI/NMI), regression quality (MAE, concordance correlation), and generated-sample quality
(real-vs-generated classifier AUC, MMD, digit-classifier scores)."""

from __future__ import annotations

import numpy as np

# --- Regression and generated-sample quality (GAN family) -------------------------------------


def _matched_arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}."
        )
    if y_true.ndim != 2:
        y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    return y_true, y_pred


def mae(y_true, y_pred, per_gene: bool = False):
    """Mean absolute error over all entries, or one value per gene (column) if ``per_gene``."""
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    errors = np.abs(y_true - y_pred).mean(axis=0)
    return errors if per_gene else float(errors.mean())


def concordance_correlation(y_true, y_pred, per_gene: bool = False):
    """Lin's concordance correlation coefficient, 2 cov / (var_true + var_pred + (mean gap)^2).

    Unlike Pearson's r it is 1 only when the prediction equals the truth: a shift or a wrong
    scale lowers it. Computed over all entries, or per gene (column) if ``per_gene``; a gene
    that is constant in both truth and prediction gets NaN.
    """
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    if not per_gene:
        y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
    mean_true, mean_pred = y_true.mean(axis=0), y_pred.mean(axis=0)
    covariance = ((y_true - mean_true) * (y_pred - mean_pred)).mean(axis=0)
    denominator = y_true.var(axis=0) + y_pred.var(axis=0) + (mean_true - mean_pred) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ccc = 2 * covariance / denominator
    return ccc if per_gene else float(ccc[0])


def classifier_auc(real, generated, seed: int = 0, n_folds: int = 5) -> float:
    """Cross-validated ROC AUC of a logistic-regression classifier of real vs generated.

    Every example is scored by a classifier that did not see it in training. 0.5 means the
    classifier cannot tell them apart (perfect generation); 1.0 means it always can.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real = np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    generated = np.asarray(generated, dtype=np.float64).reshape(len(generated), -1)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"real and generated examples differ in size: {real.shape[1]} vs "
            f"{generated.shape[1]} features."
        )
    if min(len(real), len(generated)) < n_folds:
        raise ValueError(f"Need at least {n_folds} real and {n_folds} generated examples.")
    features = np.concatenate([real, generated])
    is_real = np.concatenate([np.ones(len(real)), np.zeros(len(generated))])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, features, is_real, cv=folds, method="predict_proba")
    return float(roc_auc_score(is_real, scores[:, 1]))


def mmd(x, y, bandwidth: float | None = None, max_samples: int = 2000, seed: int = 0) -> float:
    """Squared maximum mean discrepancy with an RBF kernel (unbiased estimate).

    Args:
        x, y: samples of shape (n, ...) and (m, ...), flattened per example.
        bandwidth: kernel width sigma in k(a, b) = exp(-|a - b|^2 / (2 sigma^2)); None uses
            the median heuristic (median distance between pooled examples).
        max_samples: sub-sample each set to at most this many examples (memory is O(n^2)).

    Returns:
        An estimate of MMD^2: about 0 for samples of one distribution (it can be slightly
        negative), larger the more the distributions differ.
    """
    rng = np.random.default_rng(seed)

    def prepare(a):
        a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        return a[rng.choice(len(a), max_samples, replace=False)] if len(a) > max_samples else a

    x, y = prepare(x), prepare(y)
    if x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(
            f"x and y need at least 2 examples each with the same size, got {x.shape}, {y.shape}."
        )
    pooled = np.concatenate([x, y])
    squared_norms = (pooled**2).sum(axis=1)
    squared_distances = np.maximum(
        squared_norms[:, None] + squared_norms[None, :] - 2 * pooled @ pooled.T, 0.0
    )
    if bandwidth is None:
        upper = squared_distances[np.triu_indices(len(pooled), k=1)]
        bandwidth = float(np.sqrt(np.median(upper))) or 1.0
    kernel = np.exp(-squared_distances / (2 * bandwidth**2))
    n = len(x)
    k_xx, k_yy, k_xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]

    def off_diagonal_mean(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    return float(off_diagonal_mean(k_xx) + off_diagonal_mean(k_yy) - 2 * k_xy.mean())


_DIGIT_CLASSIFIERS: dict = {}


def digit_classifier(x, y, epochs: int = 5, seed: int = 0):
    """A small CNN trained on real digits (x in [0, 1], shape (n, 28, 28, 1)), cached per process.

    It judges generated digits: which class they look like and how confidently.
    """
    import keras
    from keras import layers

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype("int64")
    key = (x.shape, float(x.sum()), int(y.sum()), epochs, seed)
    if key in _DIGIT_CLASSIFIERS:
        return _DIGIT_CLASSIFIERS[key]
    keras.utils.set_random_seed(seed)
    classifier = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(int(y.max()) + 1, activation="softmax", dtype="float32"),
        ],
        name="digit_classifier",
    )
    classifier.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    classifier.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    _DIGIT_CLASSIFIERS[key] = classifier
    return classifier


def digit_scores(classifier, images, requested_labels=None, min_share: float = 0.01) -> dict:
    """How a digit classifier sees generated images.

    Returns:
        ``histogram`` (images per predicted class), ``classes_present`` (classes that get at
        least ``min_share`` of the images: mode coverage), ``mean_confidence`` (mean top-class
        probability) and, given ``requested_labels``, ``conditional_accuracy`` (share of
        images classified as the label they were generated for; chance is 1/num_classes).
    """
    probabilities = np.asarray(classifier.predict(np.asarray(images), verbose=0))
    predicted = probabilities.argmax(axis=1)
    histogram = np.bincount(predicted, minlength=probabilities.shape[1])
    scores = {
        "histogram": histogram.tolist(),
        "classes_present": int((histogram >= min_share * len(predicted)).sum()),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
    }
    if requested_labels is not None:
        requested_labels = np.asarray(requested_labels).reshape(-1)
        if len(requested_labels) != len(predicted):
            raise ValueError(
                f"Got {len(requested_labels)} requested labels for {len(predicted)} images."
            )
        scores["conditional_accuracy"] = float((predicted == requested_labels).mean())
    return scores


# --- Likelihood bounds and latent-space quality (VAE family) ---------------------------------


def _batches(n: int, batch_size: int):
    """Slices that cover ``n`` rows, ``batch_size`` at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def _rows(x, labels, rows: slice):
    """A VAE's inputs for some rows: x, or (x, labels) for a ConditionalVAE."""
    return x[rows] if labels is None else (x[rows], labels[rows])


def elbo(model, x, labels=None, batch_size: int = 256) -> float:
    """Mean per-example evidence lower bound (nats, one posterior sample per example).

    The KL term has weight 1 whatever the model's ``beta``: this is the true ELBO.

    Args:
        model: a trained ``course.models.VAE`` (or ``ConditionalVAE``, then pass ``labels``).
        x: examples in the model's input format (raw counts for count likelihoods).
    """
    x, labels = model.validate_inputs(x, labels)
    total = 0.0
    for rows in _batches(len(x), batch_size):
        reconstruction_loss, kl_loss = model.loss_terms(_rows(x, labels, rows))
        total += float(np.sum(np.asarray(reconstruction_loss) + np.asarray(kl_loss)))
    return -total / len(x)


def marginal_log_likelihood(
    model, x, labels=None, n_samples: int = 100, batch_size: int = 256, seed: int = 0
) -> float:
    """Importance-weighted estimate of the mean log p(x) (Burda et al. 2016, IWAE bound).

    log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) with z_k ~ q(z|x); the bound
    tightens as K = ``n_samples`` grows and equals the ELBO (in expectation) for K = 1.
    """
    import tensorflow as tf
    from scipy.special import logsumexp
    from scipy.stats import norm

    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    rng = np.random.default_rng(seed)
    x, labels = model.validate_inputs(x, labels)
    condition = [] if labels is None else [labels]
    z_mean, z_log_var = model.encode(x, *condition, return_distribution=True)
    z_std = np.exp(0.5 * z_log_var)
    # Decode several samples per call (the copies of a batch stacked), in a compiled function.
    log_likelihood = tf.function(model.log_likelihood, reduce_retracing=True)
    samples_per_call = max(1, 2048 // batch_size)
    total = 0.0
    for rows in _batches(len(x), batch_size):
        mean, std = z_mean[rows], z_std[rows]
        log_weights = []
        for first in range(0, n_samples, samples_per_call):
            copies = min(samples_per_call, n_samples - first)
            mean_copies, std_copies = np.tile(mean, (copies, 1)), np.tile(std, (copies, 1))
            z = (mean_copies + std_copies * rng.standard_normal(mean_copies.shape))
            z = z.astype(np.float32)
            label_copies = None if labels is None else np.tile(labels[rows], copies)
            x_copies = np.tile(x[rows], (copies,) + (1,) * (x.ndim - 1))
            log_weight = (
                np.asarray(log_likelihood(_rows(x_copies, label_copies, slice(None)), z))
                + norm.logpdf(z).sum(axis=-1)
                - norm.logpdf(z, mean_copies, std_copies).sum(axis=-1)
            )
            log_weights.append(log_weight.reshape(copies, len(mean)))
        log_weights = np.concatenate(log_weights)
        total += float(np.sum(logsumexp(log_weights, axis=0) - np.log(n_samples)))
    return total / len(x)


def latent_knn_accuracy(
    z, labels, k: int = 15, cv: int = 5, z_test=None, labels_test=None, seed: int = 0
) -> float:
    """Accuracy of a k-nearest-neighbour classifier of the labels from latent codes.

    Cross-validated (``cv`` stratified folds, shuffled with ``seed``), or, when ``z_test`` and
    ``labels_test`` are given, trained on ``z`` and scored on the test codes.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    z, labels = np.asarray(z), np.asarray(labels)
    if len(z) != len(labels):
        raise ValueError(f"z has {len(z)} rows but labels has {len(labels)}; they must match.")
    classifier = KNeighborsClassifier(n_neighbors=k)
    if z_test is not None:
        return float(classifier.fit(z, labels).score(np.asarray(z_test), np.asarray(labels_test)))
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(classifier, z, labels, cv=folds)))


def clustering_scores(z, labels, n_clusters: int | None = None, seed: int = 0) -> dict:
    """Agreement of k-means clusters of the latent codes with the labels.

    Returns:
        {"ari": adjusted Rand index, "nmi": normalized mutual information}; 1 is perfect.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels)
    n_clusters = n_clusters or len(np.unique(labels))
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(z)
    return {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }


def pca_embedding(x, n_components: int = 10, seed: int = 0) -> np.ndarray:
    """The first ``n_components`` principal components of ``x`` (the linear baseline)."""
    from sklearn.decomposition import PCA

    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    return PCA(n_components=n_components, random_state=seed).fit_transform(x)


# --- Landmark -> target gene prediction ------------------------------------------------------
# Every function below takes expression on the log1p scale, cells in rows and genes in columns.
# A correlation is undefined (NaN) where either side is constant: an all-zero gene, or a
# constant prediction such as a per-gene mean. Summaries leave NaNs out of the mean and count
# them (see ``mean_and_undefined``).


ROUNDING = 1e-6  # relative differences below this are float32 rounding, not signal


def rmse(y_true, y_pred, per_gene: bool = False):
    """Root mean squared error over all entries, or one value per gene if ``per_gene``."""
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    squared = np.square(y_true - y_pred).mean(axis=0)
    return np.sqrt(squared) if per_gene else float(np.sqrt(squared.mean()))


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of matching columns; NaN where a column is constant."""

    def centred(x):
        deviation = x - x.mean(axis=0)
        norm = np.sqrt((deviation**2).sum(axis=0))
        # A spread below 1e-6 of the values' size is float32 rounding: the column is constant.
        constant = norm <= ROUNDING * np.sqrt((x**2).sum(axis=0))
        return deviation, np.where(constant, np.nan, norm)

    (a, a_norm), (b, b_norm) = centred(a), centred(b)
    r = (a * b).sum(axis=0) / (a_norm * b_norm)
    return np.clip(r, -1.0, 1.0)


def per_gene_pearson(y_true, y_pred) -> np.ndarray:
    """Pearson's r between true and predicted expression of each gene, over the cells.

    Returns one value per gene; NaN where the gene or its prediction is constant.
    """
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    return _columnwise_pearson(y_true, y_pred)


def per_gene_spearman(y_true, y_pred) -> np.ndarray:
    """Spearman's rank correlation of each gene (ties get their average rank); NaN if constant."""
    from scipy.stats import rankdata

    y_true, y_pred = _matched_arrays(y_true, y_pred)
    return _columnwise_pearson(rankdata(y_true, axis=0), rankdata(y_pred, axis=0))


def per_cell_pearson(y_true, y_pred, center=None) -> np.ndarray:
    """Centred per-cell r: Pearson's r over the genes of each cell, after subtracting ``center``.

    Without centring every sensible prediction scores high, because highly expressed genes are
    high in every cell. Subtracting a per-gene reference (the training cells' mean, or by
    default the mean of ``y_true``) asks whether the prediction gets each cell's *deviation*
    from the average cell right. NaN for a cell whose centred prediction is constant.
    """
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    center = y_true.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64)
    if center.shape != (y_true.shape[1],):
        raise ValueError(
            f"center must have one value per gene, shape ({y_true.shape[1]},), got "
            f"{center.shape}."
        )
    deviation = y_pred - center
    # A prediction equal to the center up to float32 rounding has no deviation at all.
    deviation[np.abs(deviation) <= ROUNDING * np.abs(center)] = 0.0
    return _columnwise_pearson((y_true - center).T, deviation.T)


def variance_ratio(y_true, y_pred) -> np.ndarray:
    """Per-gene variance of the prediction over that of the truth (1: realistic spread).

    A regression to the mean gives ratios well below 1 (blurry predictions); NaN for a gene
    without variance in the truth.
    """
    y_true, y_pred = _matched_arrays(y_true, y_pred)
    true_variance = y_true.var(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(true_variance > 0, y_pred.var(axis=0) / true_variance, np.nan)


def zero_fraction(expression, threshold: float = 0.5) -> float:
    """Share of entries below ``threshold`` on the log1p scale: 'not detected'.

    A measured zero is exactly 0 while one count in a cell of 20,000 counts is already
    log1p(0.5) = 0.41 on the log1p(counts per 10,000) scale, so 0.5 separates "not detected"
    from "detected" without treating a small predicted value as expression.
    """
    expression = np.asarray(expression, dtype=np.float64)
    return float((expression < threshold).mean())


def detection_rate(expression, threshold: float = 0.5) -> np.ndarray:
    """Per gene, the share of cells in which it is detected (log1p value >= ``threshold``)."""
    expression = np.asarray(expression, dtype=np.float64)
    return (expression >= threshold).mean(axis=0)


def mean_and_undefined(values) -> tuple[float, int]:
    """The mean of the defined values and the number of undefined (NaN) ones.

    An undefined correlation (a constant gene or prediction) is neither 0 nor 1: it is left out
    of the mean and reported as a count. The mean of no defined values is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    mean = float(values[defined].mean()) if defined.any() else float("nan")
    return mean, int((~defined).sum())


def expression_knn_accuracy(
    train_expression, train_labels, expression, labels, k: int = 15, n_components: int = 50
) -> float:
    """Cell-type accuracy of a kNN classifier fitted on real cells, applied to ``expression``.

    The classifier (k neighbours in the principal components of the real training cells) asks:
    does a predicted profile land among real cells of the right type? Apply it to the true
    test expression for the ceiling.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    train_expression = np.asarray(train_expression, dtype=np.float64)
    expression = np.asarray(expression, dtype=np.float64)
    if train_expression.shape[1] != expression.shape[1]:
        raise ValueError(
            f"The training and scored expression differ in genes: {train_expression.shape[1]} "
            f"vs {expression.shape[1]}."
        )
    components = min(n_components, *train_expression.shape)
    classifier = make_pipeline(
        PCA(components, random_state=0),
        KNeighborsClassifier(n_neighbors=min(k, len(train_expression))),
    )
    classifier.fit(train_expression, np.asarray(train_labels))
    return float(classifier.score(expression, np.asarray(labels)))


# Proper scoring rules of conditional samples --------------------------------------------------


def _conditional_draws(samples, y_true) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` as (cells, draws, features) and ``y_true`` as (cells, features), float64."""
    samples, y_true = np.asarray(samples, np.float64), np.asarray(y_true, np.float64)
    if samples.ndim == 2:  # A point prediction: one draw per cell.
        samples = samples[:, None, :]
    if samples.ndim != 3 or y_true.ndim != 2 or samples.shape[::2] != y_true.shape:
        raise ValueError(
            "Expected samples of shape (cells, draws, features) (or a point prediction of shape "
            f"(cells, features)) and truth of shape (cells, features), got {samples.shape} and "
            f"{y_true.shape}."
        )
    if not (np.all(np.isfinite(samples)) and np.all(np.isfinite(y_true))):
        raise ValueError("The samples or the truth contain NaN or infinite values.")
    return samples, y_true


def energy_score(samples, y_true) -> np.ndarray:
    """Per cell, the energy score of draws from a conditional distribution (lower is better).

    ES(F, y) = E|X - y| - 1/2 E|X - X'|, with X, X' ~ F independent and |.| the Euclidean norm
    over features (Gneiting & Raftery 2007, JASA 102:359, with beta = 1). It is a strictly
    proper scoring rule: in expectation only the true conditional distribution scores best, so
    a sampler cannot win by blurring (the first term alone rewards the mean) nor by spreading
    (the second term pays for spread only as much as it helps). From M draws x_1..x_M per cell
    the fair (unbiased) estimator is

        (1/M) sum_i |x_i - y| - 1/(2 M (M - 1)) sum_{i != j} |x_i - x_j|;

    a point prediction (M = 1) scores |x - y|.

    Args:
        samples: (cells, draws, features), or a point prediction (cells, features).
        y_true: (cells, features).

    Returns:
        The score of each cell, shape (cells,).
    """
    samples, y_true = _conditional_draws(samples, y_true)
    n_draws = samples.shape[1]
    to_truth = np.sqrt(np.sum(np.square(samples - y_true[:, None, :]), axis=-1)).mean(axis=1)
    if n_draws == 1:
        return to_truth
    # Pairwise distances of the draws of each cell from their Gram matrix (no cells x M x M x
    # features array).
    squared_norms = np.sum(np.square(samples), axis=-1)
    gram = np.einsum("cif,cjf->cij", samples, samples)
    squared = squared_norms[:, :, None] + squared_norms[:, None, :] - 2.0 * gram
    between = np.sqrt(np.maximum(squared, 0.0)).sum(axis=(1, 2))  # The diagonal is 0.
    return to_truth - between / (2.0 * n_draws * (n_draws - 1))


def crps(samples, y_true) -> np.ndarray:
    """Per feature, the mean over cells of the CRPS of draws from a conditional distribution
    (lower is better).

    CRPS(F, y) = E|X - y| - 1/2 E|X - X'| for one feature (the energy score in one dimension),
    estimated from M draws with the fair estimator of :func:`energy_score`. The pairwise term
    uses the sorted draws x_(1) <= ... <= x_(M): sum_{i != j} |x_i - x_j| =
    2 sum_k (2k - M - 1) x_(k). A point prediction (M = 1) scores its absolute error.

    Args:
        samples: (cells, draws, features), or a point prediction (cells, features).
        y_true: (cells, features).

    Returns:
        The mean CRPS over cells of each feature, shape (features,).
    """
    samples, y_true = _conditional_draws(samples, y_true)
    n_draws = samples.shape[1]
    to_truth = np.abs(samples - y_true[:, None, :]).mean(axis=1)
    if n_draws == 1:
        return to_truth.mean(axis=0)
    ranks = 2.0 * np.arange(1, n_draws + 1) - n_draws - 1
    between = 2.0 * np.einsum("cmf,m->cf", np.sort(samples, axis=1), ranks)
    return (to_truth - between / (2.0 * n_draws * (n_draws - 1))).mean(axis=0)
