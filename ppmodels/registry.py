"""The model registry: models are found by name, never through if/elif chains.

A model class registers itself with :func:`register_model`; a saved run names its model, and
:func:`ppmodels.load` rebuilds it from that name. This module sits below the models (they import it to register);
the lookups that import the built-in models first live in :mod:`ppmodels.models`.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from .errors import ConfigError

_REGISTRY: dict[str, type] = {}  # name -> a PPModel subclass
T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator that registers a model class under ``name``.

    Example::

        @register_model("my_vae")
        class MyVAE(VAE):
            ...
    """

    def decorator(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"a model named {name!r} is already registered ({_REGISTRY[name].__qualname__}); pick another name")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered() -> dict[str, type]:
    """Every class registered so far, by name. Lookups that must also see the built-in models and plugins go through
    :func:`ppmodels.models.get_model_class` and :func:`ppmodels.models.list_models`."""
    return dict(_REGISTRY)
