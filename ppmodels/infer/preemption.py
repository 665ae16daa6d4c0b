"""Preemption: SIGTERM (what a scheduler sends before it takes the machine) and SIGINT (Ctrl-C) stop training at
the next step boundary, after a checkpoint, instead of killing it mid-step.

:func:`stop_on_signals` installs the handlers for a block (in the main thread only); the trainer asks
:func:`stop_requested` after every step and, when a signal came, writes ``checkpoints/last.pt`` and raises
:class:`~ppmodels.errors.Interrupted`. A second Ctrl-C of a single process stops at once, as Ctrl-C usually does;
the processes of a data-parallel run ignore a second signal (their launcher forwards the one it got), so that the
checkpoint they agreed to write is written.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: list[int] = []
_watching: list[bool] = []


def stop_requested() -> int | None:
    """The signal that asked training to stop, or ``None``."""
    return _requested[0] if _requested else None


def watching() -> bool:
    """Whether :func:`stop_on_signals` is active (then a signal may ask the trainer to stop)."""
    return bool(_watching)


def exit_code(signum: int) -> int:
    """The exit code of a process stopped by ``signum``, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def _handler(signum, frame) -> None:
    if _requested and "RANK" not in os.environ:  # a second signal to a single process: stop now
        signal.signal(signum, signal.SIG_DFL)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(exit_code(signum))
    if not _requested:
        _requested.append(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into a request to stop at the next step boundary for the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _requested.clear()
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    _watching.append(True)
    try:
        yield
    finally:
        _watching.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _requested.clear()
