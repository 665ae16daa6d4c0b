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

import dataclasses
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import ConfigError, RunError, check_path
from ..files import atomic_write, check_writable, file_sha256, load_state, read_json, write_json
from ..infer.trainer import CHECKPOINTS
from ..models import get_model_class
from ..plugins import config_entry, require_plugins

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
EXTRA_PREFIX = "extra."


def check_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse, without touching anything, an output folder that :func:`prepare_run_dir` would not take."""
    path = check_path(path, "--out (the run folder)")
    last = path / CHECKPOINTS / "last.pt"
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path} is a file; give a folder path for the run")
    if resume:
        if (path / WEIGHTS).is_file() and not last.is_file():
            raise RunError(f"cannot resume: {last} does not exist, but the run finished ({path / WEIGHTS} is there); "
                           f"use it as it is, or train a new run with another --out")
        if not last.is_file():
            again = "start it again with --overwrite" if (path / CONFIG).is_file() else "train without --resume"
            raise RunError(f"cannot resume: {last} does not exist (the run stopped before its first checkpoint); {again}")
    elif path.exists() and any(path.iterdir()):
        if not overwrite:
            raise RunError(f"output folder {path} already exists; pass --overwrite to replace it or --resume to continue it")
        if not (path / CONFIG).is_file():
            raise RunError(f"refusing to overwrite {path}: it is not a ppmodels run folder (no {CONFIG}); choose another --out")
        if set_aside_path(path).exists():
            raise RunError(f"{set_aside_path(path)} holds the run an interrupted --overwrite set aside; move it back to {path} "
                           f"or delete it, then try again")
    check_writable(path)
    return path


def set_aside_path(path: Path) -> Path:
    """Where ``train --overwrite`` keeps the old run until the new one has a checkpoint."""
    path = path.resolve()  # "." and "runs/vae/" have names too
    return path.with_name(path.name + ".before-overwrite")


def prepare_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create ``path`` for a new run; an existing non-empty folder is refused unless ``overwrite`` or ``resume``."""
    path = check_run_dir(path, overwrite, resume)
    if resume:
        for stale in path.rglob(".*.tmp"):  # half-written files of a run that was killed mid-write
            stale.unlink()
        return path
    if path.exists() and any(path.iterdir()):
        shutil.rmtree(path)
    (path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def run_dir_transaction(path: str | Path, overwrite: bool = False, resume: bool = False) -> Iterator[tuple[Path, Path | None]]:
    """:func:`prepare_run_dir` for a training run, undone when the run fails before its first checkpoint.

    Yields ``(run folder, set-aside old run or None)``. ``overwrite`` does not delete the old run: it is renamed to
    ``RUN.before-overwrite`` and deleted once the new run has a checkpoint (see :class:`DropSetAside`) or finished.
    A run that fails before its first checkpoint is removed, and the old run, if any, put back: the retry (``--lr``
    lower, say) then needs no ``--overwrite`` for a fresh run and still has its old run to replace.
    """
    path = check_run_dir(path, overwrite, resume)
    existed, aside = path.is_dir(), None
    if not resume and existed and any(path.iterdir()):
        aside = set_aside_path(path)
        path.rename(aside)
    try:
        yield prepare_run_dir(path, resume=resume), aside
    except BaseException:
        if not resume and not (path / CHECKPOINTS / "last.pt").is_file():
            shutil.rmtree(path, ignore_errors=True)
            if aside is not None:
                aside.rename(path)
                aside = None
            elif existed:
                path.mkdir()  # the empty folder the user made
        raise
    finally:
        if aside is not None and aside.exists():
            shutil.rmtree(aside)


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


def build_model(config: dict):
    """A fresh, untrained model from a run's ``config.json`` content, found by its registered name."""
    if not isinstance(config, dict) or "model" not in config:
        raise RunError("config.json names no model; the run folder is damaged")
    require_plugins(config.get("plugins"), config["model"])
    cls = get_model_class(config["model"])
    try:
        return cls(cls.Config(**config.get("model_config", {})))
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


