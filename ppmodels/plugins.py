"""User models from outside the package: Python files or modules whose import registers a model.

A user model is a class decorated with :func:`ppmodels.register_model` in a file of its own. Three ways make it
known to the registry, all of which just import that file or module:

1. The CLI option ``ppmodels --plugin my_model.py COMMAND ...`` (or ``--plugin my_package.my_model``), and in
   Python :func:`import_plugin` (or ``ppmodels.train(..., plugins=[...])``).
2. The environment variable ``PPMODELS_PLUGINS``: files or modules separated by ``:`` (``;`` on Windows),
   imported at the first registry lookup of every process.
3. An installed package's entry point in the group ``ppmodels.models``, loaded at the first registry lookup.

A run of a user model records its plugin in ``config.json``. Loading the run does *not* import it on its own
(that would let a run folder from someone else run code, which the safetensors weights were chosen to avoid):
:func:`ppmodels.load` asks for the plugin by name, with a one-line error saying how to pass it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import ConfigError, PPModelsError, RunError

ENV_VAR = "PPMODELS_PLUGINS"
ENTRY_POINT_GROUP = "ppmodels.models"
MODULE_PREFIX = "ppmodels_plugin_"
_entry_points_loaded = False


def is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec


def import_plugin(spec: str) -> ModuleType:
    """Import a plugin, a ``.py`` file path or a dotted module name, once per process; its import registers models."""
    spec = str(spec).strip()
    if not is_file_spec(spec):
        try:
            return importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"plugin module {spec!r} cannot be imported ({exc}); give an importable module or a .py file path") from None
    path = Path(spec).expanduser().resolve()
    name = _file_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise ConfigError(f"plugin file {spec} does not exist; give a .py file that registers a model with @register_model")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look classes up through sys.modules while the file runs
    try:
        module_spec.loader.exec_module(module)
    except PPModelsError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"plugin {spec} failed to import ({type(exc).__name__}: {exc}); fix the file or leave it out") from None
    return module


def _file_module_name(path: Path) -> str:
    return MODULE_PREFIX + path.stem + "_" + hashlib.sha1(str(path).encode()).hexdigest()[:8]


def import_plugins(specs: list[str] | None) -> None:
    for spec in specs or []:
        import_plugin(spec)


def is_imported(spec: str) -> bool:
    """Whether the plugin ``spec`` has been imported in this process."""
    spec = str(spec).strip()
    return (_file_module_name(Path(spec).expanduser().resolve()) if is_file_spec(spec) else spec) in sys.modules


def require_plugins(specs: list[str] | None, model_name: str) -> None:
    """Check that the plugins a run recorded are imported (by ``--plugin``, ``PPMODELS_PLUGINS`` or the caller)."""
    load_external_plugins()
    for spec in specs or []:
        if not is_imported(spec):
            raise RunError(f"this run's model {model_name!r} comes from the plugin {spec}, which is not imported: pass "
                           f"--plugin {spec} (before the command), set {ENV_VAR}={spec}, or call ppmodels.import_plugin first")


def load_external_plugins() -> None:
    """Import the plugins named by ``PPMODELS_PLUGINS`` and, once, the ``ppmodels.models`` entry points."""
    global _entry_points_loaded
    import_plugins([s for s in os.environ.get(ENV_VAR, "").split(os.pathsep) if s.strip()])
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            entry_point.load()


def plugin_of(cls: type) -> str | None:
    """How to import ``cls`` again in a new process: ``None`` for built-in models, else a file path or module name.

    A class defined in a script run as ``__main__`` gets ``None``: re-running a script to load a model would run
    the whole script; put the model in a file of its own and pass it with ``--plugin``.
    """
    module_name = cls.__module__
    if module_name == "ppmodels" or module_name.startswith("ppmodels.") or module_name == "__main__":
        return None
    module = sys.modules.get(module_name)
    if module_name.startswith(MODULE_PREFIX) and getattr(module, "__file__", None):
        return str(Path(module.__file__).resolve())
    return module_name


def config_entry(cls: type) -> dict[str, list[str]]:
    """``{"plugins": [spec]}`` for a run's ``config.json`` when ``cls`` is a user model, else ``{}``."""
    spec = plugin_of(cls)
    return {"plugins": [spec]} if spec else {}
