"""``ppmodels models``."""

from __future__ import annotations

import inspect
import textwrap
from typing import Annotated, Optional

import typer

from ppmodels.models import get_model_class, list_models
from ppmodels.config import shown
from ppmodels.models.options import from_data, model_options

from .common import handle_errors
from .train import TRAIN_OPTIONS, train

#: model options that `ppmodels train` also takes as flags of their own (its parameters that are not training options)
FLAGS = set(inspect.signature(train).parameters) - set(TRAIN_OPTIONS)


@handle_errors
def models(
    model: Annotated[Optional[str], typer.Argument(help="A model name: list its options (the --set keys) with defaults and meanings.")] = None,
) -> None:
    """List the registered models, one line each; with MODEL, every option of that model (what `ppmodels train MODEL
    --set KEY=VALUE` takes), its type, default and meaning."""
    if model is None:
        for name, cls in list_models().items():
            doc = (cls.__doc__ or "").strip().splitlines()
            typer.echo(f"{name:10s} {doc[0] if doc else ''}")
        return
    cls = get_model_class(model)
    doc = (cls.__doc__ or "").strip().splitlines()
    typer.echo(f"{model}: {doc[0] if doc else ''}")
    typer.echo(f"options (ppmodels train {model} --set KEY=VALUE):")
    for option in model_options(cls):
        note = "  (from the data)" if from_data(cls, option.name) else ""
        note += f"  (also --{option.name.replace('_', '-')})" if option.name in FLAGS else ""
        kind = option.type + (f", {option.bounds}" if option.bounds else "")
        typer.echo(f"  {option.name} = {shown(option.default)}  [{kind}]{note}")
        typer.echo(textwrap.fill(option.help or "(undocumented)", width=110, initial_indent=" " * 6, subsequent_indent=" " * 6))
