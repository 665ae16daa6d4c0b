"""The ``ppmodels`` Typer app: one thin command per file, each calling an importable function."""

from __future__ import annotations

import typer

from .diagnose import diagnose
from .encode import encode
from .evaluate import evaluate
from .models import models
from .plugins import plugins
from .predict import predict
from .sample import sample
from .score import score
from .train import train

app = typer.Typer(
    name="ppmodels",
    help="Deep generative models for semi-supervised learning, written in Pyro: train, encode, predict, sample, evaluate, score, diagnose.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.callback()(plugins)
app.command()(models)
app.command()(train)
app.command()(encode)
app.command()(predict)
app.command()(sample)
app.command()(evaluate)
app.command()(score)
app.command()(diagnose)


def main() -> None:
    app(prog_name="ppmodels")


if __name__ == "__main__":
    main()
