"""models.load: a saved model comes back with its configuration and outputs; a bad file gets an
error that says what is wrong."""

from __future__ import annotations

import inspect
import zipfile

import numpy as np
import pytest

from course import models
from course.models.base import constructor_arguments

RNG = np.random.default_rng(0)
COUNTS = RNG.poisson(3.0, size=(6, 12)).astype("float32") + 1
LANDMARKS = RNG.normal(size=(6, 5)).astype("float32")

# Every model built with non-default values of its arguments (a config that fell back to the
# defaults would be caught), and what it computes from them.
NON_DEFAULT = {
    "GAN": (lambda: models.GAN((8, 8, 1), latent_dim=5, network="conv", hidden_units=(4, 8),
                               generator_loss="saturating", label_smoothing=0.1,
                               output_activation="tanh", seed=3),
            lambda model: model.generate(3, seed=1)),
    "ConditionalGAN": (lambda: models.ConditionalGAN((8, 8, 1), num_classes=4, latent_dim=3,
                                                     network="conv", hidden_units=(4, 8),
                                                     generator_loss="saturating",
                                                     label_smoothing=0.05,
                                                     output_activation="tanh", seed=4),
                       lambda model: model.generate([0, 3, 1], seed=1)),
    "LandmarkGAN": (lambda: models.LandmarkGAN(5, 3, latent_dim=2, hidden_units=(8, 4),
                                               reconstruction="l1", reconstruction_weight=2.0,
                                               adversarial_weight=0.5, consistency_weight=0.3,
                                               energy_weight=2.0, noise_std=0.1,
                                               label_smoothing=0.2, seed=6),
                    lambda model: [model.predict(LANDMARKS, verbose=0),
                                   model.generate(LANDMARKS, seed=1)]),
    "MLPRegressor": (lambda: models.MLPRegressor(5, 3, hidden_units=(7, 6), activation="relu"),
                     lambda model: model.predict(LANDMARKS, verbose=0)),
    "ScGAN": (lambda: models.ScGAN(12, latent_dim=3, generator_units=(8,), critic_units=(6,),
                                   library_size=50.0, n_critic=2, gp_weight=5.0, seed=2),
              lambda model: [model.generate(3, seed=1), model.predict(COUNTS, verbose=0)]),
    "ConditionalScGAN": (lambda: models.ConditionalScGAN(12, 3, latent_dim=3, generator_units=(8,),
                                                         critic_units=(6,), library_size=50.0,
                                                         n_critic=3, gp_weight=1.0, seed=2),
                         lambda model: model.generate([2, 0], seed=1)),
    "DNAGAN": (lambda: models.DNAGAN(10, latent_dim=3, filters=(4, 6), kernel_size=3, n_critic=2,
                                     gp_weight=2.0, seed=8),
               lambda model: model.generate(2, seed=1, one_hot=False)),
    "DGD": (lambda: models.DGD(12, 6, latent_dim=2, n_components=3, hidden_units=(8, 4),
                               component_scale=0.3, seed=9),
            lambda model: [model.generate(4, seed=1), model.get_representations()]),
    "DCA": (lambda: models.DCA(12, latent_dim=3, hidden_units=(8, 6), batch_norm=False),
            lambda model: model.denoise(COUNTS)),
}


def defaults(cls) -> dict:
    """The default value of each constructor argument that has one (those of the parent
    classes it passes ``**kwargs`` on to included)."""
    found = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for parameter in inspect.signature(klass.__init__).parameters.values():
                if parameter.default is not inspect.Parameter.empty:
                    found[parameter.name] = parameter.default
    return {name: found[name] for name in constructor_arguments(cls) if name in found}


@pytest.mark.parametrize("name", NON_DEFAULT)
def test_non_default_arguments_survive_save_and_load(name, tmp_path):
    build, outputs = NON_DEFAULT[name]
    model = build()
    config = model.get_config()
    for name, default in defaults(type(model)).items():
        assert config[name] != default, f"{name} is built with its default value"
    model.save(tmp_path / "model.keras")
    loaded = models.load(tmp_path / "model.keras")
    assert type(loaded) is type(model)
    assert loaded.get_config() == config
    pairs = zip(*(x if isinstance(x, list) else [x] for x in (outputs(model), outputs(loaded))))
    for expected, got in pairs:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = models.GAN((4,), latent_dim=2, hidden_units=(8,))
    model.compile()
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
