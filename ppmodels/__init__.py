"""ppmodels: deep generative models for semi-supervised learning, written as Pyro model/guide pairs.

Quick start::

    import ppmodels
    model, summary = ppmodels.train("m1", "digits", out="runs/m1", labels=50)
    model = ppmodels.load("runs/m1")
    model.predict(x)

The package is layered; each layer imports only those above it in this list:
``errors``, ``config``, ``files``, ``metrics``, ``registry``, ``plugins``, ``nets``, ``corruption``, ``plots`` (foundations) ->
``data`` -> ``infer`` (trainer, importance weights) -> ``models`` (Pyro pairs) -> ``runs`` (run folders) ->
``analysis`` (diagnostics, baselines, InferenceData, report) -> ``commands`` (one module per CLI command) -> this
module and the CLI.
"""

from .version import __version__  # noqa: E402,F401

from .commands.encode import encode  # noqa: E402
from .commands.evaluate import evaluate  # noqa: E402
from .commands.predict import predict  # noqa: E402
from .commands.sample import sample  # noqa: E402
from .commands.score import score, score_data  # noqa: E402
from .commands.train import train  # noqa: E402
from .data import load_dataset, prepare_data  # noqa: E402
from .errors import ConfigError, DataError, DataNotFoundError, PPModelsError, RunError, TrainingError  # noqa: E402
from .infer import TrainConfig, Trainer, fit  # noqa: E402
from .models import get_model_class, list_models  # noqa: E402
from .plugins import import_plugin  # noqa: E402
from .registry import register_model  # noqa: E402
from .runs import load, save_model  # noqa: E402

__all__ = [
    "ConfigError", "DataError", "DataNotFoundError", "PPModelsError", "RunError", "TrainConfig", "Trainer", "TrainingError",
    "diagnose", "encode", "evaluate", "fit", "get_model_class", "import_plugin", "list_models", "load", "load_dataset",
    "predict", "prepare_data", "register_model", "sample", "save_model", "score", "score_data", "train",
]


def __getattr__(name: str):
    # diagnose pulls in xarray and ArviZ (seconds to import): load it on first use, not with the package
    if name == "diagnose":
        from .commands.diagnose import diagnose

        return diagnose
    raise AttributeError(f"module 'ppmodels' has no attribute {name!r}")
