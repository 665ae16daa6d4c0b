"""The model zoo. Importing this package registers every built-in model by name."""

from .base import ModelConfig, PPModel, data_plate
from .gmm import GMM, GMMConfig
from .gmvae import GMVAE, GMVAEConfig
from .m1 import M1, M1Config
from .m1m2 import M1M2, M1M2Config
from .m2 import M2, M2Config
from .ppca import PPCA, PPCAConfig
from .vae import VAE, VAEConfig, observation_dist

__all__ = ["GMM", "GMMConfig", "GMVAE", "GMVAEConfig", "M1", "M1Config", "M1M2", "M1M2Config", "M2", "M2Config", "ModelConfig", "PPCA",
           "PPCAConfig", "PPModel", "VAE", "VAEConfig", "data_plate", "observation_dist"]
