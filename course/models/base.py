"""What every model shares that is not its math: its configuration for saving.

Keras saves a model subclass as ``get_config()`` and re-creates it with ``cls(**config)``. Keras
3.15's automatic config of Model subclasses records the constructor's DEFAULT values, not the
ones passed (``Model.__new__`` drops the arguments), so a model must say what it was built with.
:class:`Configurable` does it once for all of them, by a rule each model follows: every argument
of ``__init__`` is stored as an attribute of the same name.
"""

from __future__ import annotations

import inspect


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
