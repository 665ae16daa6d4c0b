"""``ppmodels sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ppmodels.api import sample as sample_prior

from .common import handle_errors


@handle_errors
def sample(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    out: Annotated[Path, typer.Option(help="Output file: .png (image grid, image data) or .npy.")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 0,
) -> None:
    """Draw samples from the prior and decode them (the mean of p(x|z))."""
    path = sample_prior(run, num, out, seed=seed)
    typer.echo(f"wrote {path}")
