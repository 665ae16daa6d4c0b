"""The model registry: models are found by name, never through if/elif chains.

A model class registers itself with :func:`register_model`; a saved run names its model, and
:func:`ppmodels.load` rebuilds it from that name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    from .models.base import PPModel

_REGISTRY: dict[str, type["PPModel"]] = {}
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


def get_model_class(name: str) -> type["PPModel"]:
    """The model class registered under ``name``; a :class:`ConfigError` listing the known names otherwise."""
    _import_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown model {name!r}; known models: {known} (see `ppmodels models`; user models: --plugin FILE.py)") from None


def list_models() -> dict[str, type["PPModel"]]:
    """All registered models by name, sorted."""
    _import_builtin_models()
    return dict(sorted(_REGISTRY.items()))


def _import_builtin_models() -> None:
    from . import models  # noqa: F401  (importing the package registers the built-in models)
    from .plugins import load_external_plugins

    load_external_plugins()
