"""What the command files share: the error handler and option parsers."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from typing import Annotated, Any, Callable

import typer

from ppmodels.errors import ConfigError, DataError, Interrupted, PPModelsError, PPModelsWarning, TrainingError

#: ``--overwrite`` of the commands that write files (see ppmodels.runs.outputs for the rules)
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output file that ppmodels did not write (never one inside a run folder).")]

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
_show_warning = warnings.showwarning


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """ppmodels' own warnings as one ``warning:`` line; others as Python shows them."""
    if issubclass(category, PPModelsWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = show_warning

# errors that every rank of a data-parallel run raises alike (same options, same data, agreed decisions): rank 0
# alone reports them, so the user reads one line, not one per process
SHARED_ERRORS = (ConfigError, DataError, TrainingError)


def handle_errors(fn: Callable) -> Callable:
    """Turn a ppmodels error into one line on stderr and exit code 2, instead of a traceback.

    Under torchrun, a rank other than 0 prints only an error of its own (marked with its rank) and leaves one that
    rank 0 reports too to rank 0, ending with code 0, so that torchrun reports one failure. A failing worker ends
    at once (``os._exit``): torch's C++ teardown in a worker whose peers are gone can abort and print a line of its own.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Interrupted as exc:  # a signal stopped training after a checkpoint: 130 (SIGINT) or 143 (SIGTERM)
            if int(os.environ.get("RANK", 0)) == 0:
                typer.echo(f"{exc}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            if "RANK" not in os.environ:
                raise typer.Exit(128 + exc.signum) from None
            os._exit(128 + exc.signum)
        except PPModelsError as exc:
            if "RANK" not in os.environ:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            rank = int(os.environ["RANK"])
            if rank == 0:
                typer.echo(f"error: {exc}", err=True)
            elif not isinstance(exc, SHARED_ERRORS):
                typer.echo(f"error (rank {rank}): {exc}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0 if rank and isinstance(exc, SHARED_ERRORS) else 2)

    return wrapper


def parse_int_list(text: str | None) -> list[int] | None:
    """``"500,500"`` -> ``[500, 500]``."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of integers, e.g. 500,500") from None
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"{text!r} must list positive layer sizes, e.g. 500,500")
    return values


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """``["alpha=0.1", "classifier=logistic"]`` -> a dict; values are read as JSON where they parse, else as text."""
    settings: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE, e.g. --set classifier=logistic")
        try:
            settings[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip().replace("-", "_")] = value
    return settings
