"""The shared trainer and its callbacks."""

from .callbacks import BestCheckpoint, MetricsLog, ProgressBar, SampleGrid
from .trainer import Trainer, TrainConfig, TrainState, nonfinite_terms

__all__ = ["BestCheckpoint", "MetricsLog", "ProgressBar", "SampleGrid", "TrainConfig", "TrainState", "Trainer", "nonfinite_terms"]
