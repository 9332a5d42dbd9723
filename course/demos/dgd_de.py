"""N-of-one differential expression with the DGD: a cell type's markers without controls.

Prada-Luengo et al. (Genome Biology 2023), on the PBMC cells: a DGD is trained on every cell
type but one (default: the B cells); each held-out cell gets its representation by MAP
inference, its decoded counts are its "closest reference cell", and each gene is tested against
that negative-binomial control (``course.differential``). Genes are ranked by their mean signed
-log10 p-value over the held-out cells. The ranking is scored by how high the held-out type's
known markers (``course.datasets.markers``) come, AUROC and average precision, against Welch's
t-test of the held-out type against all other cells: a test that HAS controls.
"""

from __future__ import annotations

import contextlib

import numpy as np

from course.demos import Run, demo
from course.demos.dgd import BATCH_SIZE, build_dgd

HELD_OUT = "CD19+ B"
INFERENCE_STEPS = 300
METHODS = ("DGD, no controls", "t-test with controls")


def held_out_markers(held_out: str, names) -> tuple[str, ...]:
    """The known markers of ``held_out``, or a ValueError naming the types that have some."""
    from course.datasets.markers import PBMC_CELL_TYPE_MODULES, PBMC_MARKERS

    names = [str(name) for name in names]
    if held_out not in PBMC_CELL_TYPE_MODULES or held_out not in names:
        raise ValueError(f"held_out must be a cell type with known markers: one of "
                         f"{', '.join(t for t in PBMC_CELL_TYPE_MODULES if t in names)}.")
    return PBMC_MARKERS[PBMC_CELL_TYPE_MODULES[held_out]]


def held_out_de(adata, held_out: str, epochs: int, seed: int, strategy=None,
                fit=None) -> dict:
    """Train a DGD without the cells of ``held_out``, test each of their genes against it, run
    the t-test with controls, and score both rankings on the type's known markers.

    Args:
        fit: ``fit(model, dataset) -> history`` (default: ``model.fit`` for ``epochs``).
    """
    import keras

    from course import datasets, differential

    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata, "cell_type")
    markers = held_out_markers(held_out, names)
    in_group = cell_types == [str(name) for name in names].index(held_out)
    reference = counts[~in_group]
    keras.utils.set_random_seed(seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        dgd = build_dgd(reference, n_components=len(names) - 1, seed=seed)
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    data = datasets.as_dataset((reference, np.arange(len(reference))), batch_size=BATCH_SIZE,
                               seed=seed, drop_remainder=replicas > 1)
    fit = fit or (lambda model, dataset: model.fit(dataset, epochs=epochs, verbose=0))
    history = fit(dgd, data)
    result = differential.dgd_scores(dgd, counts[in_group], steps=INFERENCE_STEPS)
    t_statistic = differential.t_test_scores(adata.X, in_group)
    gene_names = list(adata.var_names)
    ranking = {"DGD, no controls": differential.marker_ranking(result["scores"], gene_names,
                                                               markers),
               "t-test with controls": differential.marker_ranking(t_statistic, gene_names,
                                                                   markers)}
    return {"dgd": dgd, "history": history, "counts": counts[in_group], "markers": markers,
            "t_statistic": t_statistic, "ranking": ranking, **result}


def scores_scatter(result: dict, gene_names, held_out: str):
    """Each gene's DGD score (no controls) against its t statistic (with controls); the known
    markers in red and labelled, the other top genes of the DGD labelled in grey."""
    import matplotlib.pyplot as plt

    gene_names = np.asarray(gene_names).astype(str)
    dgd, t = result["scores"], result["t_statistic"]
    is_marker = np.isin(gene_names, result["markers"])
    figure, axis = plt.subplots(figsize=(7, 5.5))
    axis.scatter(t[~is_marker], dgd[~is_marker], s=6, color="tab:gray", alpha=0.5,
                 label="other genes")
    axis.scatter(t[is_marker], dgd[is_marker], s=30, color="tab:red",
                 label=f"known {held_out} markers")
    top = set(np.argsort(-dgd)[:8]) | set(np.flatnonzero(is_marker))
    for index in top:
        axis.annotate(gene_names[index], (t[index], dgd[index]), fontsize=7,
                      color="tab:red" if is_marker[index] else "dimgray",
                      xytext=(3, 3), textcoords="offset points")
    axis.axhline(0, color="black", linewidth=0.5)
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_xlabel(f"Welch t statistic, {held_out} vs all other cells (needs controls)")
    axis.set_ylabel("DGD score: mean signed -log10 p over held-out cells (no controls)")
    axis.set_title(f"Genes up in held-out {held_out} cells: DGD vs t-test (higher = more up)")
    axis.legend(loc="upper left")
    figure.tight_layout()
    return figure


def roc_curves(result: dict, gene_names, held_out: str):
    """ROC curves of finding the known markers among all genes, by each ranking."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    is_marker = np.isin(np.asarray(gene_names).astype(str), result["markers"])
    figure, axis = plt.subplots(figsize=(5, 4.5))
    for (name, values), scores in zip(result["ranking"].items(),
                                      (result["scores"], result["t_statistic"])):
        false_positive, true_positive, _ = roc_curve(is_marker, scores)
        axis.plot(false_positive, true_positive,
                  label=f"{name} (AUROC {values['auroc']:.3f})")
    axis.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    axis.set_xlabel("share of other genes ranked above (false positive rate)")
    axis.set_ylabel("share of known markers found (true positive rate)")
    axis.set_title(f"Finding the {held_out} markers (higher curve is better)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


@demo("dgd-de-pbmc", "N-of-one DE with the DGD: held-out B-cell markers without controls vs a "
                     "t-test with controls", epochs=200, data="pbmc")
def dgd_de_pbmc(run: Run) -> dict:
    from course import datasets, plots
    from course.demos import data_source_name

    adata = datasets.load_pbmc(source=run.source)

    def fit(model, dataset):
        return run.fit(model, dataset, int(model.n_cells), epochs=run.epochs)

    print(f"  training the DGD on every cell type but {HELD_OUT}")
    result = held_out_de(adata, HELD_OUT, run.epochs, run.seed, run.strategy, fit=fit)
    run.save_model(result["dgd"])
    run.save_figure(plots.history(result["history"], title=f"DGD on PBMC without {HELD_OUT}: "
                                  "negative log posterior", units="nats per cell"),
                    "history.png")
    gene_names = list(adata.var_names)
    for name, values in result["ranking"].items():
        print(f"  {name}: marker AUROC {values['auroc']:.3f}, average precision "
              f"{values['average_precision']:.3f}, ranks {values['marker_ranks']}")
    run.save_figure(scores_scatter(result, gene_names, HELD_OUT), "dgd_vs_ttest.png")
    run.save_figure(roc_curves(result, gene_names, HELD_OUT), "marker_roc.png")
    order = np.argsort(-result["scores"])[:20]
    significant = result["p_values"] < 0.05 / result["p_values"].shape[1]  # Bonferroni per cell
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC", "source": data_source_name("pbmc", run.source),
              "n_reference_cells": int(result["dgd"].n_cells),
              "n_held_out_cells": int(len(result["counts"])), "held_out": HELD_OUT,
              "n_genes": int(adata.n_vars), "markers": list(result["markers"])},
        metrics={"ranking": result["ranking"],
                 "dgd_top_genes": [gene_names[i] for i in order],
                 "mean_genes_significant_per_cell": float(significant.sum(axis=1).mean()),
                 "final_loss": float(result["history"].history["loss"][-1])},
    )
