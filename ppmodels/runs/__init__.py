"""Run folders: their layout, saving and loading models, the data a run trained on, and the callbacks that write
them. Importing this package also registers the data source ``latents:RUN``.
"""

from . import latents  # noqa: F401  (registers the latents:RUN source)
from .callbacks import BestCheckpoint, MetricsLog, SampleGrid
from .data import latent_decoder, open_for_run, open_run_data, open_run_dataset, run_config
from .folder import CONFIG, METRICS, SUMMARY, WEIGHTS, build_model, check_run_dir, load, prepare_run_dir, save_model
from .latents import start_gmvae_from_runs
from .provenance import peak_memory_mb, versions

__all__ = ["BestCheckpoint", "CONFIG", "METRICS", "MetricsLog", "SUMMARY", "SampleGrid", "WEIGHTS", "build_model", "check_run_dir",
           "latent_decoder", "load", "open_for_run", "open_run_data", "open_run_dataset", "peak_memory_mb", "prepare_run_dir", "run_config", "save_model",
           "start_gmvae_from_runs", "versions"]
