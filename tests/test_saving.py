"""models.load: a saved model comes back; a bad file gets an error that says what is wrong."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from course import models


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = models.VAE(input_shape=(4,), latent_dim=2, hidden_units=(8,), likelihood="gaussian")
    model.compile(optimizer="adam")
    model.fit(np.random.default_rng(0).random((16, 4), dtype="float32"), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return model, path


def test_a_saved_model_loads_with_the_same_weights(saved):
    model, path = saved
    loaded = models.load(path)
    for original, reloaded in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(original, reloaded)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved model at"):
        models.load(tmp_path / "nothing.keras")


def test_a_truncated_file_is_called_cut_short_not_missing(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.keras"
    whole = path.read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="not a complete .keras file"):
        models.load(truncated)


def test_a_zip_without_a_model_is_refused(tmp_path):
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="not a saved Keras model"):
        models.load(foreign)
