"""Landmark -> target gene prediction on PBMC cells, measured by ``course.evaluation``.

LandmarkGAN (its point prediction and its conditional draws) against the floors (per-gene mean
and median), ridge regression, kNN regression, the D-GEX MLP trained with MSE or L1, and two
conditional samplers (a random near neighbour's profile; ridge plus a resampled residual), over
several random cell splits. The protocol trains its many small models on one device
(``--strategy`` does not apply here).
"""

from __future__ import annotations

import json

from course.demos import Run, demo

N_SPLITS = 5

@demo("landmark-pbmc", "PBMC landmark -> target genes: LandmarkGAN vs ridge, kNN, MLPs "
                             "and floors, 5 random splits", epochs=200, data="pbmc")
def landmark_pbmc(run: Run) -> dict:
    from course import evaluation, plots
    from course.demos import data_source_name

    adata = run.single_cell()
    predictions: dict = {}
    rows = evaluation.evaluate(adata, n_splits=N_SPLITS, epochs=run.epochs, seed=run.seed,
                               first_split_predictions=predictions)
    summary = evaluation.summarize(rows)
    print(evaluation.table(summary))
    run.path("table.md").write_text(evaluation.table(summary, markdown=True) + "\n")
    run.path("splits.json").write_text(json.dumps(evaluation.json_ready(rows), indent=1) + "\n")
    run.save_figure(plots.protocol_bars(summary, evaluation.FIGURE_PANELS), "protocol.png")
    for name in ("LandmarkGAN", "ridge"):
        figure = plots.predicted_vs_true(predictions["truth"], predictions[name],
                                         title=f"{name}, test cells of split 0 (log1p)")
        run.save_figure(figure, f"predicted_vs_true_{name.lower()}.png")
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC", "source": data_source_name("pbmc", run.source),
              "n_cells": adata.n_obs, "n_landmarks": evaluation.N_LANDMARKS,
              "n_targets": adata.n_vars - evaluation.N_LANDMARKS, "n_splits": N_SPLITS},
        metrics=evaluation.json_ready(summary),
    )
