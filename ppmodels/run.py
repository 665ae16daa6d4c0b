"""The run folder: one place per training run, and the only code that reads or writes one.

Layout (names are stable; docs/cli.md documents them)::

    RUN/config.json        model name, model config, training config, data spec, seed
    RUN/metrics.jsonl      one JSON record per epoch
    RUN/checkpoints/       last.pt (resume state) and best.pt (best validation weights), torch tensors only
    RUN/model.safetensors  the final weights (plus fitted extras such as M1's classifier features)
    RUN/summary.json       final ELBOs, epochs, wall time, test accuracy, library versions

Every write goes to a temporary file in the same folder and is renamed into place, so a crash mid-write
leaves the previous file whole. Nothing here unpickles objects: weights are safetensors, checkpoints are
loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import RunError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
CHECKPOINTS = "checkpoints"
EXTRA_PREFIX = "extra."


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the mode a plain open() would
        _fsync(tmp)  # the bytes reach the disk before the rename does, so a power cut cannot leave an empty file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def _fsync(path: str | Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows; their entries are durable there anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=_json_default)
            f.write("\n")

    atomic_write(path, write)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path} does not exist; is {path.parent} a ppmodels run folder?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc}); the run folder is damaged") from None


def write_arrays(path: str | Path, arrays: dict[str, Any] | Any) -> None:
    """Atomically write one array (``.npy``) or a dict of arrays (``.npz``), never as pickled objects."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append its own suffix to the temporary name
            if isinstance(arrays, dict):
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            else:
                np.save(f, np.asarray(arrays), allow_pickle=False)

    atomic_write(path, write)


def append_jsonl(path: str | Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def check_run_dir(path: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse, without touching anything, an output folder that :func:`prepare_run_dir` would not take."""
    path = Path(path)
    if resume:
        if not (path / CHECKPOINTS / "last.pt").is_file():
            again = "start it again with --overwrite" if (path / CONFIG).is_file() else "train without --resume"
            raise RunError(f"cannot resume: {path / CHECKPOINTS / 'last.pt'} does not exist (the run stopped before its first checkpoint); {again}")
    elif path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise RunError(f"output folder {path} already exists; pass --overwrite to replace it or --resume to continue it")
        if not (path / CONFIG).is_file():
            raise RunError(f"refusing to overwrite {path}: it is not a ppmodels run folder (no {CONFIG}); choose another --out")
    return path


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


# ----- weights ------------------------------------------------------------------------------------------------
def save_model(model, path: str | Path) -> None:
    """Write ``config.json`` (if absent) and ``model.safetensors`` for ``model`` into folder ``path``."""
    import dataclasses

    from .plugins import config_entry

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / CONFIG).is_file():
        write_json(path / CONFIG, {"model": model.name, "model_config": dataclasses.asdict(model.config), **config_entry(type(model))})
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tensors.update({EXTRA_PREFIX + k: v.detach().contiguous().cpu() for k, v in model.extra_tensors().items()})
    atomic_write(path / WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"model": model.name}))


def build_model(config: dict):
    """A fresh, untrained model from a run's ``config.json`` content, found by its registered name."""
    from .plugins import require_plugins
    from .registry import get_model_class

    if not isinstance(config, dict) or "model" not in config:
        raise RunError("config.json names no model; the run folder is damaged")
    require_plugins(config.get("plugins"), config["model"])
    cls = get_model_class(config["model"])
    try:
        return cls(cls.Config(**config.get("model_config", {})))
    except TypeError as exc:
        raise RunError(f"config.json does not fit model {config['model']!r} ({exc}); was it written by another version?") from None


def load(path: str | Path):
    """Rebuild the model saved in run folder ``path`` by its registered name; outputs equal those before saving."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run folder {path} does not exist; give the --out folder of a training run")
    model = build_model(read_json(path / CONFIG))
    weights = path / WEIGHTS
    if not weights.is_file():
        raise RunError(f"{weights} does not exist; the run did not finish (resume it with `ppmodels train ... --resume`)")
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
    return model


def load_state(model, state: dict, source: Path) -> None:
    """``model.load_state_dict(state)`` with a one-line error naming the mismatch."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        detail = " ".join(str(exc).split())[:300]
        raise RunError(f"{source} does not fit model {model.name!r} with this config ({first} {detail}); it is from another model or config") from None


# ----- checkpoints --------------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Atomically ``torch.save`` a payload of tensors, numbers, strings, lists and dicts."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True``: a file crafted to run code on unpickling is refused."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        reason = " ".join(str(exc).split())[:200]
        raise RunError(f"checkpoint {path} cannot be loaded safely ({type(exc).__name__}: {reason}); it is truncated, corrupt or not a ppmodels checkpoint") from None
