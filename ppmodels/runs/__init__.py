"""Run folders: their layout, saving and loading models, the data a run trained on, and the callbacks that write
them. Importing this package also registers the data source ``latents:RUN``.
"""

from . import latents  # noqa: F401  (registers the latents:RUN source)
from .callbacks import BestCheckpoint, MetricsLog, SampleGrid
from .data import data_locations, latent_decoder, located_data, open_applied_data, open_for_run, open_run_data, open_run_dataset, run_config, saved_selection
from .folder import (CONFIG, METRICS, SUMMARY, WEIGHTS, build_model, check_run_dir, find_recorded, fingerprint, load, prepare_run_dir,
                     record_location, resume_dir, run_dir_transaction, save_model, work_dir)
from .lock import run_lock
from .outputs import check_output, check_output_folder, output_lock, record_output
from .latents import start_gmvae_from_runs
from .provenance import available_memory, check_memory, check_model_memory, check_particles_memory, peak_memory_mb, versions

__all__ = ["BestCheckpoint", "CONFIG", "METRICS", "MetricsLog", "SUMMARY", "SampleGrid", "WEIGHTS", "available_memory", "check_model_memory", "check_particles_memory",
           "build_model", "check_memory", "check_output", "check_output_folder", "check_run_dir", "data_locations", "find_recorded",
           "fingerprint", "latent_decoder", "load", "located_data", "open_applied_data", "open_for_run", "open_run_data", "open_run_dataset", "output_lock", "peak_memory_mb",
           "prepare_run_dir", "record_location", "record_output", "resume_dir", "run_config", "run_dir_transaction", "run_lock", "save_model", "saved_selection",
           "start_gmvae_from_runs", "versions", "work_dir"]
