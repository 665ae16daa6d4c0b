"""Run folders: their layout, saving and loading models, the data a run trained on, and the callbacks that write
them. Importing this package also registers the data source ``latents:RUN``.
"""

from . import latents  # noqa: F401  (registers the latents:RUN source)
from .callbacks import BestCheckpoint, DropSetAside, MetricsLog, SampleGrid
from .data import latent_decoder, open_run_data, open_run_dataset, run_config
from .folder import CONFIG, METRICS, SUMMARY, WEIGHTS, build_model, check_run_dir, load, prepare_run_dir, run_dir_transaction, save_model
from .outputs import check_output, check_output_folder, record_output
from .latents import start_gmvae_from_runs
from .provenance import available_memory, check_memory, peak_memory_mb, versions

__all__ = ["BestCheckpoint", "CONFIG", "available_memory", "check_memory", "DropSetAside", "METRICS", "MetricsLog", "SUMMARY", "SampleGrid", "WEIGHTS", "build_model",
           "check_output", "check_output_folder", "check_run_dir", "latent_decoder", "load", "open_run_data", "open_run_dataset",
           "peak_memory_mb", "prepare_run_dir", "record_output", "run_config", "run_dir_transaction", "save_model",
           "start_gmvae_from_runs", "versions"]
