"""Where commands write: one guard for every output path, so that no command replaces work it did not write.

Every command (``train``, ``evaluate``, ``encode``, ``score``, ``sample``, ``diagnose``) asks
:func:`check_output` (a file) or :func:`check_output_folder` (a folder) before it starts working, and
:func:`record_output` after it wrote a file. The rules:

- an output file ends in one of the command's suffixes, and is not an existing folder; an output folder is not a file;
- an existing file is replaced without asking only when the same command wrote it there for the same run (its name,
  SHA-256, command and run are recorded in the folder's ``.ppmodels-outputs.json``) or it is the command's own default
  output (``RUN/evaluation.json``); what another command or another run's command wrote counts as someone else's file;
- any other existing file inside a run folder is never replaced (it is part of the run: ``config.json``, weights,
  checkpoints, ...); outside a run folder only with ``--overwrite``;
- the folder must be writable, or creatable, before any work starts (not a traceback after an hour of it);
- a run folder that another process writes (it holds the run's lock, :mod:`ppmodels.runs.lock`) is refused at once,
  and a command writes into a run folder only under that run's lock (:func:`output_lock`).
"""

from __future__ import annotations

import json
from pathlib import Path
from contextlib import contextmanager
from typing import Iterable, Iterator

from ..errors import ConfigError, RunError, check_path
from ..files import check_writable, file_sha256, write_json
from ..infer.trainer import CHECKPOINTS
from .folder import CONFIG, WEIGHTS, check_unlocked
from .lock import run_lock

MANIFEST = ".ppmodels-outputs.json"


def enclosing_run(path: str | Path) -> Path | None:
    """The run folder ``path`` lies inside (a folder with ``config.json`` and weights or checkpoints), if any."""
    for folder in Path(path).resolve().parents:
        if (folder / CONFIG).is_file() and ((folder / WEIGHTS).is_file() or (folder / CHECKPOINTS).is_dir()):
            return folder
    return None


def check_output(path: str | Path, suffixes: Iterable[str], *, overwrite: bool = False, own: Iterable[str | Path] = (),
                 command: str | None = None, run: str | Path | None = None, unnamed: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path`, after the rules of this module; ``own`` lists the command's default
    outputs, which it may always replace; ``command`` and ``run`` say who writes (a file another command or another
    run's command wrote is not replaced without ``overwrite``; ``None``: any file ppmodels wrote counts as its own).
    ``unnamed``: ``path`` is a file the command writes beside its ``--out`` without the command line naming it, so
    ``--overwrite`` does not reach it; the refusal then names this option, which leaves the file out."""
    path, suffixes = check_path(path, "--out"), tuple(suffixes)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file path, e.g. {path / ('NAME' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {path} must end in {' or '.join(suffixes)}; name the file e.g. {path.with_suffix(suffixes[0]).name}")
    if path.name == MANIFEST:
        raise ConfigError(f"--out {path}: {MANIFEST} is where ppmodels records its outputs; choose another name")
    if (path.exists() or path.is_symlink()) and not (_is_own(path, own) or written_by_ppmodels(path, command, run)):
        run = enclosing_run(path)
        if run is not None:
            raise RunError(f"refusing to replace {path}: it is part of run folder {run}; choose an --out outside the run folder")
        if unnamed is not None:  # "pass --overwrite" would send the user in a circle: it replaces only the named --out
            raise ConfigError(f"{path} already exists and was not written by ppmodels; the command writes it beside --out without "
                              f"the command line naming it, so --overwrite does not replace it: move it, choose another --out, or pass {unnamed}")
        if not overwrite:
            raise ConfigError(f"{path} already exists and was not written by ppmodels; pass --overwrite to replace it or choose another --out")
    check_writable(path.parent)
    _check_not_locked(path)
    return path


def _check_not_locked(path: Path) -> None:
    run = enclosing_run(path)
    if run is not None:
        check_unlocked(run)


@contextmanager
def output_lock(path: str | Path) -> Iterator[None]:
    """Hold the lock of the run folder ``path`` lies in (if any) while the block writes it."""
    run = enclosing_run(path)
    if run is None:
        yield
        return
    with run_lock(run):
        yield


def check_output_folder(folder: str | Path) -> Path:
    """An output folder: not a file, and writable or creatable."""
    folder = check_path(folder, "--out")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; give a folder path (the command writes several files into it)")
    check_writable(folder)
    _check_not_locked(folder / "x")
    return folder


def record_output(path: str | Path, command: str, run: str | Path | None = None) -> Path:
    """Note in the folder's manifest that ppmodels ``command`` wrote ``path`` for ``run`` (so that the same command
    for the same run may replace it later)."""
    path = Path(path)
    records = _manifest(path.parent)
    records[path.name] = {"command": command, "sha256": file_sha256(path), "run": _run_key(run)}
    write_json(path.parent / MANIFEST, records)
    return path


def written_by_ppmodels(path: Path, command: str | None = None, run: str | Path | None = None) -> bool:
    """Whether ``path`` is a file ppmodels wrote and nobody changed since (its recorded SHA-256 still matches); with
    ``command``, written by that command for ``run``."""
    entry = _manifest(path.parent).get(path.name)
    if not (isinstance(entry, dict) and path.is_file() and not path.is_symlink() and entry.get("sha256") == file_sha256(path)):
        return False
    return command is None or (entry.get("command") == command and entry.get("run") == _run_key(run))


def _run_key(run: str | Path | None) -> str | None:
    """How a run is named in the manifest: its absolute path (``None`` for a model object)."""
    return None if run is None or not isinstance(run, (str, Path)) else str(Path(run).resolve())


def _is_own(path: Path, own: Iterable[str | Path]) -> bool:
    return any(path.resolve() == Path(p).resolve() for p in own)


def _manifest(folder: Path) -> dict:
    try:
        records = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):  # none yet, or damaged: then nothing counts as written by ppmodels
        return {}
    return records if isinstance(records, dict) else {}
