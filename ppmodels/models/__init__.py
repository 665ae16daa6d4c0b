"""The model zoo: Pyro model/guide pairs and their configs. Importing this package registers every built-in model.

Models know nothing of run folders or commands: the one trainer, a layer below (:func:`ppmodels.fit`, which
``model.fit(data, config)`` calls), trains them, and :mod:`ppmodels.runs` saves and loads them.
"""

from ..errors import ConfigError
from ..plugins import load_external_plugins
from ..registry import registered
from .adgm import ADGM, ADGMConfig
from .base import (CanClassify, CanCluster, CanDecode, CanEncode, CanReconstruct, CanSample, CanSampleCodes, CanStyle, LabeledGenerator, ModelConfig, PPModel,
                   data_plate)
from .gan import GAN, GANConfig
from .gmm import GMM, GMMConfig
from .gmvae import GMVAE, GMVAEConfig
from .m1 import M1, M1Config
from .m1m2 import M1M2, M1M2Config
from .m2 import M2, M2Config
from .ppca import PPCA, PPCAConfig
from .vae import VAE, VAEConfig, observation_dist

__all__ = ["ADGM", "ADGMConfig", "CanClassify", "CanCluster", "CanDecode", "CanEncode", "CanReconstruct", "CanSample", "CanSampleCodes", "CanStyle", "GAN", "GANConfig", "GMM", "GMMConfig", "GMVAE", "GMVAEConfig", "M1", "M1Config", "M1M2", "M1M2Config",
           "LabeledGenerator", "M2", "M2Config", "ModelConfig", "PPCA", "PPCAConfig", "PPModel", "VAE", "VAEConfig", "data_plate",
           "get_model_class", "list_models", "observation_dist"]


def get_model_class(name: str) -> type[PPModel]:
    """The model class registered under ``name`` (built-in, plugin or entry point); a :class:`ConfigError` listing
    the known names otherwise."""
    models = list_models()
    try:
        return models[name]
    except KeyError:
        known = ", ".join(models)
        raise ConfigError(f"unknown model {name!r}; known models: {known} (see `ppmodels models`; user models: --plugin FILE.py)") from None


def list_models() -> dict[str, type[PPModel]]:
    """All registered models by name, sorted: the built-ins, plugins named in ``PPMODELS_PLUGINS`` and entry points."""
    load_external_plugins()
    return dict(sorted(registered().items()))
