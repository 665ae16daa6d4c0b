"""Inference: the one trainer (SVI on each model's Pyro ELBO), its progress bar and importance weights.

This layer sits below the models: it calls their methods and imports none of them.
"""

from .callbacks import ProgressBar
from .trainer import TrainConfig, Trainer, TrainState, fit, nonfinite_terms
from .crossval import fit_cv

__all__ = ["ProgressBar", "TrainConfig", "TrainState", "Trainer", "fit", "fit_cv", "nonfinite_terms"]
