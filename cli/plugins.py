"""The app-wide ``--plugin`` option: import user model files before any command runs."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ppmodels.plugins import import_plugins

from .common import handle_errors


@handle_errors
def plugins(
    plugin: Annotated[Optional[list[str]], typer.Option(help="A .py file or module that registers a user model (repeatable), e.g. --plugin my_vae.py train my_vae.")] = None,
) -> None:
    """Import the user model plugins named by --plugin before the command runs (the app's help text is set in main.py)."""
    import_plugins(plugin)
