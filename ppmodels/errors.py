"""Errors a user can act on, and the argument checks that raise them. Each message is one line: what is wrong, and
how to fix it.

The CLI turns these into one line on stderr and exit code 2; the Python API raises them as they are.
They subclass the built-in exceptions a caller would already catch (``ValueError``, ``FileNotFoundError``, and
``RuntimeError`` for :class:`TrainingError`).
"""


from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class PPModelsError(Exception):
    """Base class of every error ppmodels raises on purpose."""


class DataError(PPModelsError, ValueError):
    """The data is malformed, of the wrong shape or range, or the spec naming it is wrong."""


class DataNotFoundError(PPModelsError, FileNotFoundError):
    """A data file is missing."""


class ConfigError(PPModelsError, ValueError):
    """A model or training option is invalid or does not apply to the chosen model."""


class RunError(PPModelsError, ValueError):
    """A run folder or checkpoint is missing, corrupt, or does not fit the request."""


class TrainingError(PPModelsError, RuntimeError):
    """Training could not go on (for example, the loss became non-finite)."""


class Interrupted(PPModelsError, RuntimeError):
    """Training stopped on a signal (SIGTERM, SIGINT) after writing a checkpoint; ``signum`` is the signal, and the
    CLI exits with ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class PPModelsWarning(UserWarning):
    """Something a user should know that does not stop the work; the CLI prints it as one ``warning:`` line."""


class ResumeWarning(PPModelsWarning):
    """A resumed run cannot repeat the uninterrupted one exactly (it runs under another number of processes)."""


# ----- argument checks of the public functions (the CLI's parser does the same for typed options) ---------------
def check_path(value: Any, what: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`; anything but a non-empty ``str`` or path-like is a :class:`ConfigError`."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(f"{what} must be a path (str or pathlib.Path), got {type(value).__name__} {value!r}; give the folder or file name")
    return Path(value)


def check_int(value: Any, what: str, minimum: int | None = None, optional: bool = False, maximum: int | None = None) -> int | None:
    """``value`` if it is a whole number (at least ``minimum``, at most ``maximum``), or ``None`` when ``optional``;
    else a :class:`ConfigError`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number, got {type(value).__name__} {value!r}; pass an int")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, got {value}; pass {minimum} or more")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{what} must be at most {maximum}, got {value}; pass {maximum} or less")
    return value


#: the largest seed: NumPy's and torch's generators take seeds in 0..2**32-1
MAX_SEED = 2**32 - 1


def check_seed(value: Any, what: str = "--seed") -> int:
    """A seed in 0..2**32-1, as every generator ppmodels seeds accepts."""
    return check_int(value, what, minimum=0, maximum=MAX_SEED)
