"""The run folder: one place per training run, and the only code that reads or writes one.

Layout (names are stable; docs/cli.md documents them)::

    RUN/config.json        model name, model config, training config, data spec, seed
    RUN/metrics.jsonl      one JSON record per epoch
    RUN/checkpoints/       last.pt (resume state) and best.pt (best validation weights), torch tensors only
    RUN/model.safetensors  the final weights (plus fitted extras such as M1's classifier features)
    RUN/summary.json       final ELBOs, epochs, wall time, test accuracy, library versions

Every write is atomic (:mod:`ppmodels.files`). Nothing here unpickles objects: weights are safetensors,
checkpoints are loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ConfigError, RunError, check_path
from ..files import atomic_write, check_writable, file_sha256, load_state, read_json, write_json
from ..infer.crossval import CV_RECORD
from ..infer.trainer import CHECKPOINTS
from ..models import get_model_class
from ..plugins import config_entry, require_plugins
from .lock import LOCK, alive, describe, held_by_launcher, holders, run_lock
from .provenance import check_model_memory

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
EXTRA_PREFIX = "extra."
PENDING = ".new"  # RUN.new: the run an --overwrite builds until it replaces RUN


def check_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse, without touching anything, an output folder that :func:`run_dir_transaction` would not take.

    A symlink is followed (the run is written where it points); ``--out .`` or a folder holding the working
    directory cannot be replaced (the replacement would pull the folder from under the shell).
    """
    path = _followed(check_path(path, "--out (the run folder)"))
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path} is a file; give a folder path for the run")
    check_unlocked(path)
    if resume:
        work = resume_dir(path)
        last = work / CHECKPOINTS / "last.pt"
        if (work / WEIGHTS).is_file() and not last.is_file():
            raise RunError(f"cannot resume: {last} does not exist, but the run finished ({work / WEIGHTS} is there); "
                           f"use it as it is, or train a new run with another --out")
        if not last.is_file() and not (work / CV_RECORD).is_file():  # a select_by=cv run resumes from its finished folds
            again = "start it again with --overwrite" if (path / CONFIG).is_file() else "train without --resume"
            raise RunError(f"cannot resume: {last} does not exist (the run stopped before its first checkpoint); {again}")
    elif path.exists() and _has_content(path):
        if not overwrite:
            raise RunError(f"output folder {path} already exists; pass --overwrite to replace it or --resume to continue it")
        if not (path / CONFIG).is_file():
            raise RunError(f"refusing to overwrite {path}: it is not a ppmodels run folder (no {CONFIG}); choose another --out")
        cwd = Path.cwd().resolve()
        if path.resolve() == cwd or path.resolve() in cwd.parents:
            raise RunError(f"refusing to overwrite {path}: it holds the working directory; run from elsewhere or give the run folder "
                           f"by name (e.g. cd .. and --out {path.resolve().name})")
        if set_aside_path(path).exists():
            raise RunError(f"{set_aside_path(path)} holds the run an interrupted --overwrite of an older ppmodels set aside; move it "
                           f"back to {path} or delete it, then try again")
        check_unlocked(pending_path(path))
    check_writable(path)
    return path


def _followed(path: Path) -> Path:
    """``path`` with a symlink followed to the folder it names (a loop is refused)."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve(strict=False)
    except (RuntimeError, OSError) as exc:  # a symlink loop: RuntimeError before Python 3.13, OSError after
        raise RunError(f"--out {path} is a symlink that loops ({exc}); give a folder path for the run") from None


def _entries(path: Path) -> list[Path]:
    """What a folder holds besides a run lock."""
    return [p for p in path.iterdir() if p.name != LOCK]


def _has_content(path: Path) -> bool:
    """Whether a folder holds anything but what a run killed before writing its config.json leaves (a lock, an empty
    ``checkpoints/``, half-written ``.*.tmp`` files): such a folder is taken by a new run as if it were empty, so the
    hints do not send the user round in circles (resume -> train -> --overwrite -> "not a run folder")."""
    def leftover(entry: Path) -> bool:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            return True
        return entry.name == CHECKPOINTS and entry.is_dir() and all(leftover(e) for e in entry.iterdir())
    return not all(leftover(entry) for entry in _entries(path))


def check_unlocked(path: Path) -> None:
    """Refuse at once a run folder another live process writes (see :mod:`ppmodels.runs.lock`); the lock of the
    ``train --devices N`` that started this process is its own."""
    if held_by_launcher(path):
        return
    live = [record for record in holders(path) if alive(record)] if (path / LOCK).is_dir() else []
    if live:
        raise RunError(f"run folder {path} is being written by {describe(live[0])}; wait until it ends, or stop it "
                       f"(if that process is gone, e.g. on another host, delete {path / LOCK})")


def set_aside_path(path: Path) -> Path:
    """Where an older ppmodels' ``train --overwrite`` kept the old run until the new one had a checkpoint."""
    path = path.resolve()  # "." and "runs/vae/" have names too
    return path.with_name(path.name + ".before-overwrite")


def pending_path(path: str | Path) -> Path:
    """Where ``train --overwrite`` builds the run that replaces ``RUN`` once it finishes: ``RUN.new`` beside it."""
    path = Path(path).resolve()
    return path.with_name(path.name + PENDING)


def resume_dir(path: str | Path) -> Path:
    """The folder ``--resume`` of ``path`` continues: the replacement an interrupted ``--overwrite`` left (``RUN.new``
    with a checkpoint; it replaces RUN when it finishes), else ``path`` itself."""
    pending = pending_path(path)
    return pending if (pending / CHECKPOINTS / "last.pt").is_file() else Path(path)


def work_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """The folder a training run of ``path`` writes (see :func:`run_dir_transaction`): ``RUN.new`` when it replaces or
    continues the replacement of a run, else ``path``."""
    path = Path(path)
    if resume:
        return resume_dir(path)
    return pending_path(path) if overwrite and path.is_dir() and _has_content(path) else path


def prepare_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create ``path`` for a new run; an existing non-empty folder is refused unless ``overwrite`` or ``resume``."""
    path = check_run_dir(path, overwrite, resume)
    if resume:
        for stale in path.rglob(".*.tmp"):  # half-written files of a run that was killed mid-write
            stale.unlink()
        return path
    if path.exists() and _entries(path):
        shutil.rmtree(path)
    (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def run_dir_transaction(path: str | Path, overwrite: bool = False, resume: bool = False) -> Iterator[Path]:
    """The folder a training run writes, locked (:mod:`ppmodels.runs.lock`) for the block; yields that folder.

    - A new run is written in ``path``; if it fails before its first checkpoint the folder is removed (an empty
      folder the user made is left empty), so the retry needs no ``--overwrite``.
    - ``overwrite`` leaves the old run in ``path`` untouched and builds the new one in ``RUN.new`` beside it; only
      when the block ends without an error are the two exchanged (one atomic ``renameat2`` on Linux) and the old run
      deleted. A failure, Ctrl-C or kill at any point leaves the old run where it was, loadable; ``RUN.new`` stays
      when it has a checkpoint (``--resume`` of RUN continues it, a new ``--overwrite`` discards it).
    - ``resume`` continues ``path``, or the ``RUN.new`` an interrupted ``--overwrite`` left (then exchanged at the end).

    ``path`` itself is locked throughout, and ``RUN.new`` too while it is written.
    """
    path = check_run_dir(path, overwrite, resume)
    existed = path.is_dir()
    work = work_dir(path, overwrite, resume)
    replacing = work != path
    try:
        with run_lock(path), (run_lock(work) if replacing else nullcontext()):
            if resume:
                for stale in work.rglob(".*.tmp"):  # half-written files of a run that was killed mid-write
                    stale.unlink()
            else:  # a replacement an earlier --overwrite abandoned, or a killed run's leftovers: start afresh
                _clear(work)
                (work / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            try:
                yield work
            except BaseException:
                if not resume and not (work / CHECKPOINTS / "last.pt").is_file():
                    _clear(work)  # the lock goes when the block ends
                raise
            if replacing:
                exchange(work, path)  # the new run (and the lock of RUN.new, also ours) now in RUN; the old run in RUN.new
                shutil.rmtree(work)
    except BaseException:
        if not resume and (replacing or not existed) and not (work / CHECKPOINTS / "last.pt").is_file():
            try:
                work.rmdir()  # only if empty: a folder another process locked meanwhile stays
            except OSError:
                pass
        raise


def _clear(folder: Path) -> None:
    """Delete what a folder holds, except its lock."""
    for entry in _entries(folder):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def exchange(a: Path, b: Path) -> None:
    """Swap folders ``a`` and ``b``: atomically with Linux's ``renameat2(RENAME_EXCHANGE)``, elsewhere in three renames
    (a crash between them leaves ``b.previous`` holding ``b``'s old content)."""
    a, b = Path(a), Path(b)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    previous = b.with_name(b.name + ".previous")
    os.rename(b, previous)
    os.rename(a, b)
    os.rename(previous, a)


def unfinished_hint(path: Path, model_name: str) -> str:
    """How to finish a run without final weights: resume it from its checkpoint, or train it again when it has none."""
    if (path / CHECKPOINTS / "last.pt").is_file():
        return f"resume it with `ppmodels train {model_name} --out {path} --resume`"
    return f"it stopped before its first checkpoint, so train it again with `ppmodels train {model_name} --out {path} --overwrite`"


# ----- weights ------------------------------------------------------------------------------------------------
def save_model(model, path: str | Path) -> None:
    """Write ``config.json`` (if absent) and ``model.safetensors`` for ``model`` into folder ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / CONFIG).is_file():
        write_json(path / CONFIG, {"model": model.name, "model_config": dataclasses.asdict(model.config), **config_entry(type(model))})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors.update({EXTRA_PREFIX + k: v.detach().contiguous().cpu() for k, v in model.extra_tensors().items()})
    atomic_write(path / WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"model": model.name}))
    config = read_json(path / CONFIG)
    if isinstance(config, dict):  # the weights' checksum in the run's record, verified by load()
        write_json(path / CONFIG, {**config, "weights_sha256": file_sha256(path / WEIGHTS)})


def build_model(config: dict):
    """A fresh, untrained model from a run's ``config.json`` content, found by its registered name."""
    if not isinstance(config, dict) or "model" not in config:
        raise RunError("config.json names no model; the run folder is damaged")
    require_plugins(config.get("plugins"), config["model"])
    cls = get_model_class(config["model"])
    for key in ("model_config", "data", "train"):
        if not isinstance(config.get(key, {}), dict):
            raise RunError(f"config.json's {key!r} is a {type(config[key]).__name__}, not a mapping; the run folder is damaged, restore "
                           f"config.json from a copy")
    try:
        model_config = cls.Config(**{**cls.Config.saved_defaults, **config.get("model_config", {})})
    except (TypeError, ConfigError) as exc:
        raise RunError(f"config.json does not fit model {config['model']!r} ({exc}); was it written by another version?") from None
    check_model_memory(cls, model_config, "the run's config.json asks for more than this machine holds; is it damaged?")
    try:
        return cls(model_config)
    except (TypeError, ConfigError) as exc:
        raise RunError(f"config.json does not fit model {config['model']!r} ({exc}); was it written by another version?") from None


def load(path: str | Path):
    """Rebuild the model saved in run folder ``path`` by its registered name; outputs equal those before saving."""
    path = check_path(path, "the run folder")
    if not path.is_dir():
        raise RunError(f"run folder {path} does not exist; give the --out folder of a training run")
    config = read_json(path / CONFIG)
    model = build_model(config)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise RunError(f"{weights} does not exist; the run did not finish ({unfinished_hint(path, model.name)})")
    try:
        with safe_open(str(weights), framework="pt") as f:
            saved_by = (f.metadata() or {}).get("model")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{weights} is not a readable safetensors file ({exc}); it is truncated or corrupt") from None
    if saved_by is not None and saved_by != model.name:
        raise RunError(f"{weights} holds weights of model {saved_by!r} but {path / CONFIG} names {model.name!r}; it is from another run, copy back the right file")
    extra = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    load_state(model, state, weights)
    recorded = config.get("weights_sha256") if isinstance(config, dict) else None
    if recorded is not None and file_sha256(weights) != recorded:  # bytes changed inside a file that still parses
        raise RunError(f"{weights} is damaged: its sha256 {file_sha256(weights)[:12]} is not the {recorded[:12]} recorded in {path / CONFIG} "
                       f"when it was written; restore it from a copy, or train the run again")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise RunError(f"{weights} holds non-finite weights ({', '.join(bad[:3])}); the run diverged or the file was damaged, "
                       f"train it again (e.g. with a lower --lr)")
    model.load_extra_tensors(extra)
    model.eval()
    _find_decoder_run(model, config, path)
    return model


def _find_decoder_run(model, config: dict, path: Path) -> None:
    """Point a model fitted on ``latents:RUN`` at RUN where it is now (the folders may have moved together), after
    checking that RUN still holds the weights whose codes the model was fitted on."""
    location = (config.get("data") or {}).get("location")
    run = getattr(model.config, "decoder_run", "")
    if run and location and Path(run) == Path(location["absolute"]):
        found = find_recorded(location, path)
        if found is not None:
            model.config.decoder_run = str(found[0])


# ----- where a run's inputs are -------------------------------------------------------------------------------
def fingerprint(path: str | Path) -> str | None:
    """The sha256 of a data file, or of a run folder's weights (the run's identity); ``None`` for other folders."""
    path = Path(path)
    target = path / WEIGHTS if path.is_dir() else path
    if not target.is_file():
        return None
    return file_sha256(target)


def record_location(path: str | Path, run_dir: str | Path) -> dict:
    """What finds ``path`` (a data file or an upstream run folder) again from anywhere: the path as typed, its
    absolute path, its path relative to ``run_dir``, and its :func:`fingerprint`."""
    absolute = Path(path).expanduser().resolve()
    return {"typed": str(path), "absolute": str(absolute), "relative": os.path.relpath(absolute, Path(run_dir).resolve()),
            "sha256": fingerprint(absolute)}


def find_recorded(location: dict, run_dir: str | Path) -> tuple[Path, str] | None:
    """``(path, how it was found)`` for a :func:`record_location` record, or ``None`` when nothing is there.

    Tried in order: the recorded absolute path, the path relative to the run folder (the folders moved together),
    the path as typed from the working directory. The first whose fingerprint matches the record wins; when
    candidates exist but none matches, the file changed (or the upstream run was retrained): refused.
    """
    candidates = [(Path(location["absolute"]), "at its recorded absolute path"),
                  (Path(run_dir).resolve() / location["relative"], f"relative to the run folder {run_dir}"),
                  (Path(location["typed"]).expanduser(), "relative to the working directory")]
    seen, existing = set(), []
    for candidate, how in candidates:
        key = os.path.normpath(candidate.absolute())
        if key not in seen and candidate.exists():
            seen.add(key)
            existing.append((Path(key), how))
    if not existing:
        return None
    for candidate, how in existing:
        if location.get("sha256") is None or fingerprint(candidate) == location["sha256"]:
            return candidate, how
    first = existing[0][0]
    if first.is_dir():
        raise RunError(f"run {first} was retrained after {run_dir} was fitted on its codes (its {WEIGHTS} no longer has the recorded "
                       f"sha256 {location['sha256'][:12]}); fit this run again on latents:{first}, or restore that run")
    raise RunError(f"data file {first} changed after {run_dir} was trained on it (sha256 {fingerprint(first)[:12]}, recorded "
                   f"{location['sha256'][:12]}); restore the file, or pass --data to use other data")


