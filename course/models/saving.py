"""Loading a saved model with errors that say what is wrong with the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras


def load(path: str | Path, compile: bool = True) -> keras.Model:
    """Load a ``.keras`` file written by ``model.save`` (any ``course`` model).

    Unlike ``keras.models.load_model`` alone, this registers every ``course`` model class
    first, and tells a missing file from a damaged one (Keras says "File not found" for both).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a complete ``.keras`` archive (truncated or not a model).
    """
    import course.models  # noqa: F401  (registers the model classes with Keras)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved model at {path}.")
    if path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras file; save models with model.save('name.keras').")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(
            f"{path} is not a complete .keras file ({error}): it was probably cut short while "
            "being written. Save or train the model again."
        ) from None
    if damaged is not None or not {"config.json", "model.weights.h5"} <= names:
        raise ValueError(
            f"{path} is damaged or is not a saved Keras model (bad or missing entry: "
            f"{damaged or sorted({'config.json', 'model.weights.h5'} - names)}). Save or train "
            "the model again."
        )
    return keras.models.load_model(path, compile=compile)
