"""Run folders: their layout, saving and loading models, the data a run trained on, and the callbacks that write
them. Importing this package also registers the data source ``latents:RUN``.
"""

from . import latents  # noqa: F401  (registers the latents:RUN source)
from .callbacks import BestCheckpoint, DropSetAside, MetricsLog, SampleGrid
from .data import data_locations, latent_decoder, located_data, open_applied_data, open_for_run, open_run_data, open_run_dataset, run_config
from .folder import (CONFIG, METRICS, SUMMARY, WEIGHTS, build_model, check_run_dir, find_recorded, fingerprint, load, prepare_run_dir,
                     record_location, run_dir_transaction, save_model)
from .outputs import check_output, check_output_folder, record_output
from .latents import start_gmvae_from_runs
from .provenance import available_memory, check_memory, peak_memory_mb, versions

__all__ = ["BestCheckpoint", "CONFIG", "DropSetAside", "METRICS", "MetricsLog", "SUMMARY", "SampleGrid", "WEIGHTS", "available_memory",
           "build_model", "check_memory", "check_output", "check_output_folder", "check_run_dir", "data_locations", "find_recorded",
           "fingerprint", "latent_decoder", "load", "located_data", "open_applied_data", "open_for_run", "open_run_data", "open_run_dataset", "peak_memory_mb",
           "prepare_run_dir", "record_location", "record_output", "run_config", "run_dir_transaction", "save_model",
           "start_gmvae_from_runs", "versions"]
