"""What every model shares that is not its math: its configuration for saving.

Keras saves a model subclass as ``get_config()`` and re-creates it with ``cls(**config)``. Keras
3.15's automatic config of Model subclasses records the constructor's DEFAULT values, not the
ones passed (``Model.__new__`` drops the arguments), so a model must say what it was built with.
:class:`Configurable` does it once for all of them, by a rule each model follows: every argument
of ``__init__`` is stored as an attribute of the same name.
"""

from __future__ import annotations

import inspect

import keras

from course import distribute


def constructor_arguments(cls) -> list[str]:
    """The named arguments of ``cls.__init__`` and of the classes it passes ``**kwargs`` on to
    (e.g. ConditionalGAN -> GAN), in order, up to Keras' own classes (whose arguments, such as
    ``name``, Keras' ``get_config`` records itself)."""
    names = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] == "keras":
            break
        if "__init__" not in vars(klass):
            continue
        for parameter in inspect.signature(klass.__init__).parameters.values():
            if parameter.name != "self" and parameter.kind in (
                parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY
            ) and parameter.name not in names:
                names.append(parameter.name)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(klass.__init__).parameters
                   .values()):
            break  # This constructor passes nothing on to its parents.
    return names


class Configurable:
    """``get_config`` of a model whose constructor arguments are attributes of the same name."""

    def get_config(self) -> dict:
        config = super().get_config()
        for name in constructor_arguments(type(self)):
            if not hasattr(self, name):
                raise AttributeError(
                    f"{type(self).__name__} must store its constructor argument {name!r} as "
                    f"self.{name} (course.models.base.Configurable builds the config from it)."
                )
            config[name] = getattr(self, name)
        return config


# --- Two optimizers ----------------------------------------------------------------------------


class TwoOptimizers:
    """``compile`` with two optimizers, and its saving: a GAN trains each player with its own,
    the DGD its network and its per-cell representations.

    A subclass names its two ``compile`` arguments in ``optimizer_names`` and says, for each
    name, what that optimizer trains (:meth:`optimized_variables`) and which optimizer an
    argument left out gets (:meth:`default_optimizer`). ``compile`` builds both optimizers at
    once, inside the caller's strategy scope: Keras 3.15 fails to create a second optimizer's
    variables lazily inside a MirroredStrategy step. ``get_compile_config`` saves both, and
    ``compile_from_config`` re-creates them when a ``.keras`` file is loaded (Keras 3.15 skips
    its own for any model that overrides ``compile``); their state is restored afterwards.
    """

    optimizer_names: tuple[str, str] = ("d_optimizer", "g_optimizer")

    def default_optimizer(self, name: str):
        """The optimizer that the ``compile`` argument ``name`` gets when it is left out."""
        raise NotImplementedError(f"{type(self).__name__} must define default_optimizer.")

    def optimized_variables(self, name: str) -> list:
        """The variables that the optimizer passed as ``name`` trains."""
        raise NotImplementedError(f"{type(self).__name__} must define optimized_variables.")

    def compile(self, **kwargs) -> None:
        """Configure training with the two optimizers named in ``optimizer_names`` (each an
        optimizer or its name; left out: :meth:`default_optimizer`); every other argument goes
        to ``keras.Model.compile`` (e.g. ``run_eagerly``, ``jit_compile``)."""
        if "optimizer" in kwargs and "optimizer" not in self.optimizer_names:
            raise ValueError(
                f"{type(self).__name__} trains with two optimizers: pass "
                f"{' and '.join(self.optimizer_names)} instead of optimizer."
            )
        optimizers = {}
        for name in self.optimizer_names:
            given = kwargs.pop(name, None)
            optimizers[name] = keras.optimizers.get(given) if given else \
                self.default_optimizer(name)
        first, second = optimizers.values()
        if first is second:
            raise ValueError(
                f"{' and '.join(self.optimizer_names)} are the same object; create one optimizer "
                "for each (their moment estimates must not be shared)."
            )
        # optimizer=None: a plain compile() would create an unused RMSprop.
        super().compile(optimizer=None, **kwargs)
        for name, optimizer in optimizers.items():
            optimizer = distribute.wrap_for_mixed_precision(optimizer)
            setattr(self, name, optimizer)
            if not optimizer.built:
                optimizer.build(self.optimized_variables(name))

    def get_compile_config(self) -> dict:
        """The compile arguments, with both optimizers serialized (for ``.keras`` saving)."""
        config = super().get_compile_config()
        if not self.compiled:  # Nothing to save (a model is saved before compile()).
            return config
        config.pop("optimizer", None)
        for name in self.optimizer_names:
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        return config

    def compile_from_config(self, config: dict) -> None:
        """Compile a loaded model with both optimizers re-created from the saved config."""
        config = dict(config)
        for name in self.optimizer_names:
            config[name] = keras.saving.deserialize_keras_object(config.pop(name))
        self.compile(**config)
