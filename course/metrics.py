"""Evaluation: ELBO and importance-weighted log-likelihood, latent-space quality (kNN accuracy,
ARI/NMI), regression quality (MAE, concordance correlation), and generated-sample quality
(real-vs-generated classifier AUC, MMD, digit-classifier scores)."""

from __future__ import annotations

import numpy as np


# --- Likelihood bounds and latent-space quality (VAE family) ---------------------------------


def _batches(n: int, batch_size: int):
    """Slices that cover ``n`` rows, ``batch_size`` at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    return [slice(start, start + batch_size) for start in range(0, n, batch_size)]


def _rows(labels, rows: slice):
    return None if labels is None else labels[rows]


def elbo(model, x, labels=None, batch_size: int = 256) -> float:
    """Mean per-example evidence lower bound (nats, one posterior sample per example).

    The KL term has weight 1 whatever the model's ``beta``: this is the true ELBO.

    Args:
        model: a trained ``course.models.VAE`` (or ``ConditionalVAE``, then pass ``labels``).
        x: examples in the model's input format (raw counts for count likelihoods).
    """
    x, labels = model.check_inputs(x, labels)
    total = 0.0
    for rows in _batches(len(x), batch_size):
        reconstruction_loss, kl_loss = model.loss_terms(x[rows], _rows(labels, rows))
        total += float(np.sum(np.asarray(reconstruction_loss) + np.asarray(kl_loss)))
    return -total / len(x)


def marginal_log_likelihood(
    model, x, labels=None, n_samples: int = 100, batch_size: int = 256, seed: int = 0
) -> float:
    """Importance-weighted estimate of the mean log p(x) (Burda et al. 2016, IWAE bound).

    log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) with z_k ~ q(z|x); the bound
    tightens as K = ``n_samples`` grows and equals the ELBO (in expectation) for K = 1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    from scipy.special import logsumexp
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    x, labels = model.check_inputs(x, labels)
    condition = [] if labels is None else [labels]
    z_mean, z_log_var = model.encode(x, *condition, return_distribution=True)
    z_std = np.exp(0.5 * z_log_var)
    total = 0.0
    for rows in _batches(len(x), batch_size):
        mean, std = z_mean[rows], z_std[rows]
        log_weights = []
        for _ in range(n_samples):
            z = (mean + std * rng.standard_normal(mean.shape)).astype(np.float32)
            log_likelihood = np.asarray(model.log_likelihood(x[rows], z, _rows(labels, rows)))
            log_prior = norm.logpdf(z).sum(axis=-1)
            log_posterior = norm.logpdf(z, mean, std).sum(axis=-1)
            log_weights.append(log_likelihood + log_prior - log_posterior)
        total += float(np.sum(logsumexp(np.stack(log_weights), axis=0) - np.log(n_samples)))
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
