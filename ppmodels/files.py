"""Safe file writing and loading: every write is atomic, nothing read back can run code.

Every write goes to a temporary file in the same folder, is flushed to disk, and is renamed into place, so a
crash mid-write leaves the previous file whole. Arrays are written without pickles; checkpoints are read with
``torch.load(weights_only=True)``. The run folder (:mod:`ppmodels.runs`) and the trainer's checkpoints build on these.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import ConfigError, RunError


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


def check_writable(folder: str | Path) -> None:
    """Refuse, before any work, a folder that cannot be written or created (read-only, or a file where a folder must be)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write into {folder}: {existing} is a file, not a folder; choose another --out")
    try:  # a real attempt, not os.access: root passes that on read-only mounts and in /proc
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write into {folder}: {existing} is not writable ({exc.strerror}); choose another --out or make it writable") from None


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


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
