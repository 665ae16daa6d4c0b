"""The data of a run, opened again: the one function that reads a run's data options back, and the run whose
decoder a latent-space model needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import LEGACY_MIN_SELECTION_PER_CLASS, Dataset, TrainData, load_dataset, open_cube, parse_spec, prepare_data
from ..errors import DataError, DataNotFoundError, RunError
from ..files import read_json
from ..models import CanDecode
from .folder import CONFIG, find_recorded, load, record_location


def run_config(run: str | Path) -> dict:
    """The content of ``RUN/config.json``."""
    return read_json(Path(run) / CONFIG)


def config_and_folder(run: str | Path | dict, run_dir: str | Path | None) -> tuple[dict, str | Path | None]:
    """``(config, folder)`` of a run given as its folder, or as its parsed ``config.json`` with ``run_dir`` naming the
    folder (``None`` when there is none): what every opener below accepts."""
    return (run, run_dir) if isinstance(run, dict) else (run_config(run), run)


def data_locations(spec: str, data_dir: str | None, run_dir: str | Path) -> dict:
    """What ``config.json`` records to find a run's data again from another folder, or after the folders moved:
    under ``location``, the file (or upstream run, for ``latents:RUN``) the spec names, and under
    ``data_dir_location`` the ``--data-dir`` folder (see :func:`ppmodels.runs.folder.record_location`). A spec whose
    path names nothing on disk (a plugin source's own kind of name) records none."""
    path = parse_spec(spec)[1]
    found = {"location": record_location(path, run_dir)} if path and Path(path).expanduser().exists() else {}
    if data_dir:
        found["data_dir_location"] = record_location(data_dir, run_dir)
    return found


def located_data(saved: dict, run_dir: str | Path | None) -> tuple[str, str | None, str]:
    """``(spec, data_dir, where)``: the run's recorded data spec and ``--data-dir`` with their paths replaced by where
    the files are now (:func:`ppmodels.runs.folder.find_recorded`), and a phrase saying where the data was found.
    Runs written before locations were recorded get their spec back as typed."""
    spec, data_dir, location = saved["spec"], saved.get("data_dir"), saved.get("location")
    if run_dir is not None and saved.get("data_dir_location"):
        found_dir = find_recorded(saved["data_dir_location"], run_dir)
        data_dir = str(found_dir[0]) if found_dir else data_dir
    if run_dir is None or not location:
        return spec, data_dir, spec
    found = find_recorded(location, run_dir)
    if found is None:
        raise DataNotFoundError(f"the data of run {run_dir} is gone: neither {location['absolute']} nor {location['relative']} "
                                f"relative to the run folder exists; put it back, or pass --data to use other data")
    kind, _, _ = parse_spec(spec)
    query = spec.partition("?")[2]
    return f"{kind}:{found[0]}" + (f"?{query}" if query else ""), data_dir, f"{found[0]} (found {found[1]})"


def open_run_dataset(run: str | Path | dict, data_dir: str | None = None, run_dir: str | Path | None = None) -> Dataset:
    """The data a run trained on, opened as its ``config.json`` records it: spec, data folder (``data_dir`` first),
    binarization, per-class cap and seed, so the training subset is the one the run saw (a partly labeled file split
    as the run split it: runs that record no ``test_labels`` gave a fifth of each class's labels to test). ``run`` is a run folder
    or its parsed ``config.json`` (then ``run_dir`` names the folder, so that files are found relative to it).
    The file is looked for where it was, then relative to the run folder, and refused if its checksum changed
    (:func:`located_data`); ``dataset.metadata["found"]`` says where it was found."""
    config, run_dir = config_and_folder(run, run_dir)
    saved = config.get("data")
    if not saved or not saved.get("spec"):
        where = "its config" if isinstance(run, dict) else Path(run) / CONFIG
        raise DataError(f"{where} records no training data; use a run folder written by `ppmodels train`")
    spec, saved_dir, where = located_data(saved, run_dir)
    dataset = load_dataset(spec, data_dir=data_dir or saved_dir, binarize=saved.get("binarize") or "none",
                           max_per_class=saved.get("max_per_class"), seed=config.get("seed") or 0, legacy_split="test_labels" not in saved)
    dataset.metadata["found"] = where
    return dataset


def open_for_run(run: str | Path | dict, spec: str, data_dir: str | None = None, cube: bool = False, **options) -> Dataset:
    """Data ``spec`` to apply a run's model to, prepared as the run's training data was: an image cube standardised
    with the transform the run recorded (``data.cube`` in its config, written when it trained on a cube), other data
    binarized as the run's was (a model fitted to binary pixels never sees grey levels), opened by
    :func:`load_dataset` with ``options`` (which may override ``binarize``). ``cube=True`` opens ``spec`` as an image
    cube whatever the run trained on (``download``, the one option a cube takes, fetches a public scene)."""
    config = run if isinstance(run, dict) else run_config(run)
    saved = config.get("data") or {}
    if saved.get("cube") or cube:
        return open_cube(spec, saved.get("cube"), data_dir, options.get("download", False))
    options.setdefault("binarize", saved.get("binarize") or "none")
    return load_dataset(spec, data_dir=data_dir, **options)


def open_applied_data(run: str | Path | dict, spec: str | None, data_dir: str | None = None,
                      run_dir: str | Path | None = None) -> tuple[Dataset, bool]:
    """``(dataset, own)``: the data a command applies a run's model to. ``spec`` ``None`` or the run's own spec gives
    the run's training data (:func:`open_run_dataset`: the same file, binarization and per-class cap) and
    ``own=True``; any other spec is opened by :func:`open_for_run` (the run's binarization, or its cube transform),
    looked for in ``data_dir``, else the run's ``--data-dir``. ``run`` is a run folder or its parsed config (then
    ``run_dir`` names the folder)."""
    config, run_dir = config_and_folder(run, run_dir)
    saved = config.get("data") or {}
    if spec is None or spec == saved.get("spec"):
        try:
            return open_run_dataset(config, data_dir, run_dir), True
        except (DataError, DataNotFoundError, RunError):  # gone, or changed since the run trained on it
            if spec is None:
                raise
            # named on the command line: the file as it is now, like other data (its hint "pass --data" would go in a circle)
    return open_for_run(config, spec, data_dir or saved.get("data_dir")), False


#: the data options that chose a run's selection labels, with the value a run saved before each option existed reads
#: as: the paper protocol (before the budget protocol), and 2 labels a class as the least worth holding out
SELECTION_DEFAULTS = {"protocol": "paper", "valid_labels": None, "valid_data": None,
                      "min_selection_per_class": LEGACY_MIN_SELECTION_PER_CLASS}


def saved_selection(saved_data: dict) -> dict[str, Any]:
    """The selection options a run trained under, from its ``config.json``'s ``data`` (:data:`SELECTION_DEFAULTS` for
    those it predates), so ``--resume``, ``evaluate`` and ``predict`` hold out the labels it held out."""
    return {key: saved_data.get(key, default) for key, default in SELECTION_DEFAULTS.items()}


def open_run_data(run: str | Path | dict, data_dir: str | None = None, dataset: Dataset | None = None,
                  run_dir: str | Path | None = None) -> TrainData:
    """:func:`open_run_dataset` (or ``dataset``, when the caller opened it already) with the training labels hidden
    as the run hid them (the same ``--labels`` draw, the same labels held out for selection; runs written before
    the budget protocol selected on the validation split: ``paper``)."""
    config, run_dir = config_and_folder(run, run_dir)
    dataset = open_run_dataset(config, data_dir, run_dir) if dataset is None else dataset
    saved = config.get("data") or {}
    selection = saved_selection(saved)
    valid = selection["valid_data"]
    selection["valid_data"] = None if valid is None else load_dataset(valid, data_dir=data_dir or saved.get("data_dir"),
                                                                      binarize=saved.get("binarize") or "none")
    return prepare_data(dataset, saved.get("labels"), seed=config.get("seed") or 0, **selection)


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
