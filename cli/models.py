"""``ppmodels models``."""

from __future__ import annotations

import typer

from ppmodels.models import list_models


def models() -> None:
    """List the registered models, one line each."""
    for name, cls in list_models().items():
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:10s} {doc[0] if doc else ''}")
