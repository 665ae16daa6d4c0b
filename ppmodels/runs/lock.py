"""One writer per run folder: the lock that ``train``, ``--resume`` and every command writing into a run folder take.

The lock is the folder ``RUN/.lock/``. It is created whole (a prepared folder renamed into place, which fails when
a lock is already there), and holds one JSON file per process that writes the run: the holder's (``pid``, ``host``,
the process start time, the command, when it started), and under ``--devices N`` one per training process, so the
run stays locked while any of them lives, also after its launcher died. A lock is stale when every process it
names is gone from this host (a pid that now belongs to a later process counts as gone: its start time differs);
a stale lock is broken and taken. A lock of another host cannot be judged from here and is respected.

Taking, breaking and joining a lock happen under ``flock`` of the run folder itself (released by the kernel when a
process dies), so two processes cannot both break the same stale lock and both go on.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import RunError

LOCK = ".lock"
#: the environment variable that tells the processes ``train --devices N`` starts that their launcher holds the lock
HOLDER_ENV = "PPMODELS_RUN_LOCK"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or ``None`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name (which may hold spaces)


def alive(record: dict) -> bool:
    """Whether the process a lock record names still runs (always true for a process of another host)."""
    if record.get("host") != socket.gethostname():
        return True
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    started = record.get("start")
    return started is None or process_start(pid) in (None, started)


def own_record(command: str) -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": process_start(pid), "command": command,
            "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


def holders(run: Path) -> list[dict]:
    """The records of ``RUN/.lock/`` (unreadable ones, half-written by a killed process, are left out)."""
    records = []
    for path in sorted((run / LOCK).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def describe(record: dict) -> str:
    return (f"pid {record.get('pid')} on host {record.get('host')} ({record.get('command', 'ppmodels')}, "
            f"since {record.get('since', '?')})")


@contextmanager
def _guard(run: Path) -> Iterator[None]:
    """An exclusive ``flock`` of the run folder while a lock is taken, broken or joined."""
    try:
        import fcntl
        fd = os.open(run, os.O_RDONLY)
    except (ImportError, OSError):  # no flock, or folders cannot be opened (Windows): the rename alone decides
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_record(folder: Path, record: dict) -> None:
    path = folder / f"{record['pid']}.json"
    tmp = folder / f".{record['pid']}.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def acquire(run: str | Path, command: str) -> Path:
    """Take the lock of run folder ``run`` (created if missing) for this process; a :class:`RunError` naming the
    holder when another live process has it. Returns the lock folder."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    lock = run / LOCK
    with _guard(run):
        if lock.exists():
            live = [record for record in holders(run) if alive(record)]
            if live:
                raise RunError(f"run folder {run} is being written by {describe(live[0])}; wait until it ends, or stop it "
                               f"(if that process is gone, e.g. on another host, delete {lock})")
            shutil.rmtree(lock, ignore_errors=True)  # stale: every process it names is gone
        prepared = Path(tempfile.mkdtemp(dir=run, prefix=".lock.", suffix=".tmp"))
        _write_record(prepared, own_record(command))
        try:
            os.rename(prepared, lock)
        except OSError:
            shutil.rmtree(prepared, ignore_errors=True)
            raise RunError(f"run folder {run} was locked by another process just now; wait until it ends") from None
    return lock


def join(run: str | Path, command: str) -> None:
    """Add this process to the lock its launcher (``train --devices N``) holds, so the lock lives as long as it does."""
    run = Path(run)
    with _guard(run):
        if not (run / LOCK).is_dir():
            raise RunError(f"the lock of run folder {run} is gone, so the process that started this one has ended; "
                           f"continue the run with --resume")
        _write_record(run / LOCK, own_record(command))


def leave(run: str | Path) -> None:
    """Remove this process's record from the lock (the holder removes the lock itself with :func:`release`)."""
    (Path(run) / LOCK / f"{os.getpid()}.json").unlink(missing_ok=True)


def release(run: str | Path) -> None:
    """Remove the lock this process holds (and nothing when another process holds it)."""
    run = Path(run)
    lock = run / LOCK
    with _guard(run) if run.is_dir() else _nothing():
        mine = lock / f"{os.getpid()}.json"
        if mine.is_file():
            shutil.rmtree(lock, ignore_errors=True)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def command_name() -> str:
    """How this process was started, shortly: ``ppmodels train vae`` and the like."""
    args = [Path(sys.argv[0]).name, *sys.argv[1:3]] if sys.argv else ["python"]
    return " ".join(args)


@contextmanager
def run_lock(run: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the lock of ``run`` for the block (see :func:`acquire`). A process started by ``train --devices N``
    (``PPMODELS_RUN_LOCK`` set to the run) joins its launcher's lock instead of taking one of its own."""
    run = Path(run)
    command = command or command_name()
    if held_by_launcher(run):
        join(run, command)
        try:
            yield run / LOCK
        finally:
            leave(run)
        return
    created = not run.exists()
    acquire(run, command)
    try:
        yield run / LOCK
    finally:
        release(run)
        if created:
            try:
                run.rmdir()  # a folder made only to hold the lock (a request that failed before writing anything)
            except OSError:
                pass


def held_by_launcher(run: str | Path) -> bool:
    """Whether the ``train --devices N`` that started this process holds the lock of ``run``."""
    launched = os.environ.get(HOLDER_ENV)
    return launched is not None and Path(launched).resolve() == Path(run).resolve()
