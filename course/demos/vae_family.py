"""Demos of the VAE family for genomics: LDVAE gene loadings (``ldvae-pbmc``), DCA imputation
(``dca-pbmc``) and scGen perturbation prediction (``scgen-synthetic``).

The measurements are plain functions (:func:`ldvae_comparison`, :func:`dca_imputation`,
:func:`scgen_holdout`) that the demos and ``benchmarks/gallery_vae_family.py`` share.
"""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
LATENT_DIM = 10
# Known PBMC markers (B cells, monocytes, NK cells, T cells, platelets, dendritic cells).
PBMC_MARKERS = ("CD79A", "CD79B", "MS4A1", "LYZ", "CD14", "S100A8", "S100A9", "FCGR3A", "NKG7",
                "GNLY", "GZMB", "CD3E", "CD3D", "IL7R", "CCR7", "CD8A", "PPBP", "FCER1A", "CST3")
N_TOP_GENES = 10


def _train(model, data, epochs: int, seed: int, strategy=None, verbose: int = 0):
    """Compile (inside the strategy scope) and fit on a shuffled tf.data pipeline."""
    import keras

    from course import datasets

    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    if strategy is not None:
        with strategy.scope():
            model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    else:
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    pipeline = datasets.as_dataset(data, batch_size=BATCH_SIZE, seed=seed,
                                   drop_remainder=replicas > 1)
    return model.fit(pipeline, epochs=epochs, verbose=verbose)


def _in_scope(strategy, build):
    if strategy is None:
        return build()
    with strategy.scope():
        return build()


def train_test_split(n: int, test_fraction: float = 0.2, seed: int = 0):
    """Seeded random train and test row indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# LDVAE -----------------------------------------------------------------------------------------


def reconstruction_log_likelihood(model, x) -> float:
    """Mean log p(x | z = posterior mean) per cell: the reconstruction cost, without sampling."""
    from course.models.vae_arrays import in_batches

    x = model.checked_data(x)
    z = model.encode(x)
    return float(np.mean(in_batches(model.log_likelihood, [x, z])))


def ldvae_comparison(counts, gene_names, epochs: int, seed: int = 0, strategy=None,
                     verbose: int = 0) -> dict:
    """Train an LDVAE and the deep NB VAE on 80% of the cells; score both on the other 20%.

    Returns the models, test ELBO and NB reconstruction log-likelihood of each, the top genes of
    every LDVAE factor, and the known PBMC markers among them.
    """
    import keras

    from course import metrics, models

    train, test = train_test_split(len(counts), seed=seed)
    results, trained = {}, {}
    for name, linear_decoder in (("ldvae", True), ("deep_vae", False)):
        keras.utils.set_random_seed(seed)
        model = _in_scope(strategy, lambda linear_decoder=linear_decoder: models.VAE(
            (counts.shape[1],), latent_dim=LATENT_DIM, likelihood="nb",
            linear_decoder=linear_decoder, seed=seed))
        _train(model, counts[train], epochs, seed, strategy, verbose)
        trained[name] = model
        results[f"{name}_test_elbo"] = metrics.elbo(model, counts[test])
        results[f"{name}_test_reconstruction_ll"] = reconstruction_log_likelihood(
            model, counts[test])
    loadings = trained["ldvae"].loadings()
    top = {f"factor_{k}": [str(gene_names[g]) for g in np.argsort(-np.abs(loadings[:, k]))
                           [:N_TOP_GENES]] for k in range(loadings.shape[1])}
    top_set = {gene for genes in top.values() for gene in genes}
    present = set(PBMC_MARKERS) & {str(gene) for gene in gene_names}
    # How many markers a random choice of as many genes would catch, for comparison.
    chance = len(present) * len(top_set) / len(gene_names)
    return {**results, "n_train": len(train), "n_test": len(test), "top_genes": top,
            "markers_in_top_genes": sorted(top_set & present),
            "markers_expected_by_chance": round(chance, 2), "models": trained}


@demo("ldvae-pbmc", "LDVAE (linear decoder) on PBMC counts: top genes per factor, "
                          "test ELBO vs the deep decoder", epochs=200, data="pbmc")
def ldvae_pbmc(run: Run) -> dict:
    from course import datasets, plots

    adata = run.single_cell()
    counts = datasets.counts(adata)
    epochs = run.epochs_or(200)
    result = ldvae_comparison(counts, np.asarray(adata.var_names), epochs, run.seed,
                              run.strategy, run.verbose)
    ldvae = result.pop("models")["ldvae"]
    run.save_model(ldvae, "ldvae.keras")
    run.save_figure(plots.top_genes_per_factor(ldvae.loadings(), adata.var_names), "factors.png")
    for factor, genes in result["top_genes"].items():
        print(f"  {factor}: {', '.join(genes[:6])}")
    print(f"  test ELBO: LDVAE {result['ldvae_test_elbo']:.1f}, deep decoder "
          f"{result['deep_vae_test_elbo']:.1f}")
    data = {"name": "pbmc", "source": run.source, "n_genes": int(counts.shape[1]),
            "n_train": result.pop("n_train"), "n_test": result.pop("n_test")}
    return run.report(epochs=epochs, data=data, metrics=result)


# DCA imputation --------------------------------------------------------------------------------


def mask_nonzero(counts, fraction: float = 0.1, seed: int = 0):
    """Zero a random ``fraction`` of the non-zero counts; return the corrupted matrix and the
    boolean mask of the zeroed entries (the ones an imputation must recover)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    counts = np.asarray(counts)
    rows, columns = np.nonzero(counts)
    chosen = np.random.default_rng(seed).choice(len(rows), int(round(fraction * len(rows))),
                                                replace=False)
    mask = np.zeros(counts.shape, bool)
    mask[rows[chosen], columns[chosen]] = True
    corrupted = counts.copy()
    corrupted[mask] = 0
    # A cell whose every count was masked has nothing left to learn from: keep one count.
    empty = corrupted.sum(axis=1) == 0
    mask[empty] = False
    corrupted[empty] = counts[empty]
    return corrupted, mask


def library_normalized_mean(counts) -> np.ndarray:
    """The baseline imputation: each gene's mean share of the transcripts times the cell's
    library size (the expected count if every cell were alike)."""
    counts = np.asarray(counts, np.float64)
    library = counts.sum(axis=1, keepdims=True)
    return library * (counts / library).mean(axis=0)


def imputation_scores(true_counts, imputed, mask) -> dict:
    """How well ``imputed`` recovers the masked counts: MAE and Pearson r of log1p values
    (r is NaN for a constant imputation)."""
    truth = np.log1p(np.asarray(true_counts, np.float64)[mask])
    guess = np.log1p(np.asarray(imputed, np.float64)[mask])
    constant = guess.std() == 0 or truth.std() == 0
    return {"mae_log1p": float(np.mean(np.abs(truth - guess))),
            "pearson_log1p": float("nan") if constant else float(np.corrcoef(truth, guess)[0, 1])}


def dca_imputation(counts, epochs: int, seed: int = 0, fraction: float = 0.1, strategy=None,
                   verbose: int = 0) -> dict:
    """Mask ``fraction`` of the non-zero counts, train DCA and the NB VAE on the rest, and
    score the recovery of the masked counts against the library-normalized mean."""
    import keras

    from course import models

    corrupted, mask = mask_nonzero(counts, fraction, seed)
    keras.utils.set_random_seed(seed)
    dca = _in_scope(strategy, lambda: models.DCA(counts.shape[1]))
    _train(dca, corrupted, epochs, seed, strategy, verbose)
    keras.utils.set_random_seed(seed)
    vae = _in_scope(strategy, lambda: models.VAE((counts.shape[1],), latent_dim=LATENT_DIM,
                                                 likelihood="nb", seed=seed))
    _train(vae, corrupted, epochs, seed, strategy, verbose)
    imputed = {"dca": dca.denoise(corrupted), "nb_vae": vae.reconstruct(corrupted),
               "library_normalized_mean": library_normalized_mean(corrupted)}
    return {"masked_fraction": fraction, "n_masked": int(mask.sum()),
            "scores": {name: imputation_scores(counts, values, mask)
                       for name, values in imputed.items()},
            "models": {"dca": dca, "nb_vae": vae}, "imputed": imputed, "mask": mask}


@demo("dca-pbmc", "DCA (ZINB count autoencoder) on PBMC: recovery of masked counts vs "
                        "the NB VAE and the library-normalized mean", epochs=200, data="pbmc")
def dca_pbmc(run: Run) -> dict:
    from course import datasets, plots

    counts = datasets.counts(run.single_cell())
    epochs = run.epochs_or(200)
    result = dca_imputation(counts, epochs, run.seed, strategy=run.strategy, verbose=run.verbose)
    run.save_model(result["models"]["dca"], "dca.keras")
    mask = result["mask"]
    for name, imputed in result["imputed"].items():
        run.save_figure(plots.predicted_vs_true(
            np.log1p(counts[mask]), np.log1p(imputed[mask]), seed=run.seed, units="log1p",
            title=f"Masked counts, log1p: {name}"), f"imputation_{name}.png")
    for name, scores in result["scores"].items():
        print(f"  {name:<24} MAE(log1p) {scores['mae_log1p']:.3f}  "
              f"r {scores['pearson_log1p']:.3f}")
    data = {"name": "pbmc", "source": run.source, "n_cells": int(counts.shape[0]),
            "n_genes": int(counts.shape[1])}
    metrics = {key: result[key] for key in ("masked_fraction", "n_masked", "scores")}
    return run.report(epochs=epochs, data=data, metrics=metrics)


# scGen -----------------------------------------------------------------------------------------


def r_squared(x, y) -> float:
    """Squared Pearson correlation (scGen's R^2 of mean expression)."""
    return float(np.corrcoef(np.asarray(x, np.float64), np.asarray(y, np.float64))[0, 1] ** 2)


def _type_means(x, conditions, cell_types, cell_type):
    in_type = cell_types == cell_type
    return (x[in_type & (conditions == "control")].mean(axis=0),
            x[in_type & (conditions == "stimulated")].mean(axis=0))


def scgen_holdout(adata, held_out: str, epochs: int, seed: int = 0, n_top_genes: int = 20,
                  strategy=None, verbose: int = 0) -> dict:
    """Hold out the stimulated cells of one type, predict them with scGen, and score the R^2 of
    the predicted vs the true mean log-normalized expression (all genes, and the
    ``n_top_genes`` that respond most in the held-out type), next to the baselines "no change"
    and "the average response of the other types".

    ``adata`` needs log-normalized ``X`` and ``obs["condition"]`` ("control"/"stimulated") and
    ``obs["cell_type"]``: :func:`course.datasets.synthetic_perturbation`, or real data.
    """
    import keras

    from course import models

    for column in ("condition", "cell_type"):
        if column not in adata.obs:
            raise ValueError(f"scgen_holdout needs adata.obs[{column!r}].")
    x = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, np.float32)
    conditions = adata.obs["condition"].astype(str).to_numpy()
    cell_types = adata.obs["cell_type"].astype(str).to_numpy()
    if held_out not in set(cell_types):
        raise ValueError(f"Unknown cell type {held_out!r}; choose one of "
                         f"{', '.join(sorted(set(cell_types)))}.")
    train = ~((cell_types == held_out) & (conditions == "stimulated"))
    keras.utils.set_random_seed(seed)
    model = _in_scope(strategy, lambda: models.ScGen((x.shape[1],), seed=seed))
    _train(model, x[train], epochs, seed, strategy, verbose)
    delta = model.latent_delta(x[train], conditions[train], cell_types[train])
    control_cells = x[(cell_types == held_out) & (conditions == "control")]
    control_mean, true_mean = _type_means(x, conditions, cell_types, held_out)
    others = [np.subtract(*_type_means(x, conditions, cell_types, t)[::-1])
              for t in sorted(set(cell_types) - {held_out})]
    predictions = {"scgen": model.predict_perturbation(control_cells, delta).mean(axis=0),
                   "no_change": control_mean,
                   "other_types_average_response": control_mean + np.mean(others, axis=0)}
    top = np.argsort(-np.abs(true_mean - control_mean))[:n_top_genes]
    return {"held_out": held_out, "model": model, "true_mean": true_mean, "top_genes": top,
            "predictions": predictions,
            "r2_all_genes": {k: r_squared(v, true_mean) for k, v in predictions.items()},
            "r2_top_genes": {k: r_squared(v[top], true_mean[top]) for k, v in predictions.items()}}


@demo("scgen-synthetic", "scGen on synthetic perturbation data: predict a held-out cell "
                               "type's response, R^2 vs two baselines", epochs=100)
def scgen_synthetic(run: Run) -> dict:
    from course import datasets, plots

    adata = datasets.synthetic_perturbation(seed=run.seed)
    epochs = run.epochs_or(100)
    result = scgen_holdout(adata, "type_0", epochs, run.seed, strategy=run.strategy,
                           verbose=run.verbose)
    run.save_model(result["model"], "scgen.keras")
    run.save_figure(plots.predicted_vs_true(
        result["true_mean"], result["predictions"]["scgen"], seed=run.seed,
        units="mean log-normalized", title="Held-out type_0, stimulated: scGen vs truth"),
        "scgen_mean_expression.png")
    for name in result["predictions"]:
        print(f"  {name:<30} R^2 all genes {result['r2_all_genes'][name]:.3f}, top genes "
              f"{result['r2_top_genes'][name]:.3f}")
    data = {"name": "synthetic_perturbation", "source": "synthetic", "n_cells": adata.n_obs,
            "n_genes": adata.n_vars, "held_out": result["held_out"]}
    metrics = {key: result[key] for key in ("r2_all_genes", "r2_top_genes")}
    return run.report(epochs=epochs, data=data, metrics=metrics)
