"""ppmodels: deep generative models for semi-supervised learning, written as Pyro model/guide pairs.

Quick start::

    import ppmodels
    model, summary = ppmodels.train("m1", "digits", out="runs/m1", labels=50)
    model = ppmodels.load("runs/m1")
    model.predict(x)
"""

__version__ = "0.1.0"

from .api import encode, sample, train  # noqa: E402
from .data import load_dataset, prepare_data  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .errors import ConfigError, DataError, DataNotFoundError, PPModelsError, RunError, TrainingError  # noqa: E402
from .plugins import import_plugin  # noqa: E402
from .registry import get_model_class, list_models, register_model  # noqa: E402
from .run import load  # noqa: E402
from .scoring import score, score_data  # noqa: E402
from .train import TrainConfig, Trainer  # noqa: E402

__all__ = [
    "ConfigError", "DataError", "DataNotFoundError", "PPModelsError", "RunError", "TrainConfig", "Trainer", "TrainingError",
    "encode", "evaluate", "get_model_class", "import_plugin", "list_models", "load", "load_dataset", "prepare_data", "register_model",
    "sample", "score", "score_data", "train",
]

__all__ += ["diagnose"]


def __getattr__(name: str):
    # diagnose pulls in xarray and ArviZ (seconds to import): load it on first use, not with the package
    if name == "diagnose":
        from .diagnosis import diagnose

        return diagnose
    raise AttributeError(f"module 'ppmodels' has no attribute {name!r}")
