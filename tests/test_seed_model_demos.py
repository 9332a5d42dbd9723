"""The demos of the seed models run end to end with --epochs 1: vega-pbmc, gmvae-pbmc and
dgd-de-pbmc write metrics.json in the shared schema, their figures and a loadable model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from course import demos, distribute

FIGURES = {
    "vega-pbmc": ("history.png", "module_activity.png", "knn_accuracy.png"),
    "gmvae-pbmc": ("history.png", "ari.png", "components_vs_cell_types.png"),
    "dgd-de-pbmc": ("history.png", "dgd_vs_ttest.png", "marker_roc.png"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each demo once, one epoch, in this process (about 60 s of CPU; 3.5 min wall at load ~10)."""
    root = tmp_path_factory.mktemp("seed-model-demos")
    with pytest.MonkeyPatch.context() as patch:  # the session may already hold a MirroredStrategy
        patch.setattr(distribute, "get_strategy", lambda *args, **kwargs: tf.distribute
                      .get_strategy())
        return {name: (demos.run(name, out=root / name, epochs=1, source="bundled"), root / name)
                for name in FIGURES}


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_the_demo_writes_metrics_figures_and_a_model(runs, name):
    record, out = runs[name]
    assert tuple(record) == demos.METRICS_KEYS and record["epochs"] == 1
    assert json.loads((out / "metrics.json").read_text())["demo"] == name
    for figure in FIGURES[name]:
        assert (out / figure).stat().st_size > 1000, figure
    from course import models  # noqa: F401  (registers the model classes with Keras)

    assert keras.models.load_model(out / "model.keras") is not None


@pytest.mark.slow
def test_the_demos_report_their_comparisons(runs):
    vega = runs["vega-pbmc"][0]["metrics"]
    assert {"vega", "nb_vae", "pca"} <= set(vega)
    assert all(0 <= vega[key]["knn_accuracy"] <= 1 for key in ("vega", "nb_vae", "pca"))
    gmvae = runs["gmvae-pbmc"][0]["metrics"]["ari"]
    assert set(gmvae) == {"GMVAE components", "k-means on NB VAE latent", "DGD components"}
    assert all(len(values["runs"]) == 3 for values in gmvae.values())
    ranking = runs["dgd-de-pbmc"][0]["metrics"]["ranking"]
    for method in ("DGD, no controls", "t-test with controls"):
        assert 0 <= ranking[method]["auroc"] <= 1
        assert set(ranking[method]["marker_ranks"]) == {"MS4A1", "CD79A", "CD79B", "BANK1"}
    assert np.isfinite(runs["dgd-de-pbmc"][0]["metrics"]["final_loss"])
