"""The data of a run, opened again: the one function that reads a run's data options back, and the run whose
decoder a latent-space model needs."""

from __future__ import annotations

from pathlib import Path

from ..data import Dataset, TrainData, load_dataset, open_cube, prepare_data
from ..errors import DataError, RunError
from ..files import read_json
from ..models import CanDecode
from .folder import CONFIG, load


def run_config(run: str | Path) -> dict:
    """The content of ``RUN/config.json``."""
    return read_json(Path(run) / CONFIG)


def open_run_dataset(run: str | Path | dict, data_dir: str | None = None) -> Dataset:
    """The data a run trained on, opened as its ``config.json`` records it: spec, data folder (``data_dir`` first),
    binarization, per-class cap and seed, so the training subset is the one the run saw. ``run`` is a run folder
    or its parsed ``config.json``."""
    config = run if isinstance(run, dict) else run_config(run)
    saved = config.get("data")
    if not saved or not saved.get("spec"):
        where = "its config" if isinstance(run, dict) else Path(run) / CONFIG
        raise DataError(f"{where} records no training data; use a run folder written by `ppmodels train`")
    return load_dataset(saved["spec"], data_dir=data_dir or saved.get("data_dir"), binarize=saved.get("binarize") or "none",
                        max_per_class=saved.get("max_per_class"), seed=config.get("seed") or 0)


def open_for_run(run: str | Path | dict, spec: str, data_dir: str | None = None, cube: bool = False, **options) -> Dataset:
    """Data ``spec`` to apply a run's model to: an image cube standardised with the transform the run recorded
    (``data.cube`` in its config, written when it trained on a cube), other data as :func:`load_dataset` opens it
    (with ``options``). ``cube=True`` opens ``spec`` as an image cube whatever the run trained on."""
    config = run if isinstance(run, dict) else run_config(run)
    record = (config.get("data") or {}).get("cube")
    if record or cube:
        return open_cube(spec, record, data_dir)
    return load_dataset(spec, data_dir=data_dir, **options)


def open_run_data(run: str | Path | dict, data_dir: str | None = None, dataset: Dataset | None = None) -> TrainData:
    """:func:`open_run_dataset` (or ``dataset``, when the caller opened it already) with the training labels hidden
    as the run hid them (the same ``--labels`` draw)."""
    config = run if isinstance(run, dict) else run_config(run)
    dataset = open_run_dataset(config, data_dir) if dataset is None else dataset
    return prepare_data(dataset, (config.get("data") or {}).get("labels"), seed=config.get("seed") or 0)


def latent_decoder(model):
    """The model whose decoder maps ``model``'s data back to observations when ``model`` was fitted on
    ``latents:RUN`` (its config names ``decoder_run``), else ``None``."""
    run = getattr(model.config, "decoder_run", "")
    if not run:
        return None
    decoder = load(run)
    if not isinstance(decoder, CanDecode):
        raise RunError(f"run {run} (the decoder of these latents) holds model {decoder.name!r}, which cannot decode")
    return decoder
