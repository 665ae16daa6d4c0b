"""``ppmodels score``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.score import score as score_data

from .common import Overwrite, handle_errors


@handle_errors
def score(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train` (or a gmm run fitted on latents:RUN).")],
    data: Annotated[str, typer.Option(help="Data spec to score (digits, mnist, npz:PATH, npy:PATH, ...).")],
    out: Annotated[Path, typer.Option(help="Output file, .npz or .csv: one row per datum.")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first.")] = None,
    split: Annotated[str, typer.Option(help="Which part of the data: all, train, valid or test.")] = "all",
    mixture: Annotated[Optional[Path], typer.Option(help="A gmm run fitted on latents:RUN; adds its log p(z) at E[z|x].")] = None,
    num_particles: Annotated[int, typer.Option(min=1, help="Importance samples per datum for log p(x).")] = 100,
    reference_size: Annotated[int, typer.Option(min=1, help="Training data scored for the percentiles (random subset).")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the importance samples and the reference subset.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Out-of-distribution scores: per-datum importance-weighted log p(x) (and the latent mixture's log p(z)),
    each with its percentile among the run's training data (low percentile: unlike the training data)."""
    path = score_data(run, data, out, data_dir=data_dir, split=split, mixture=mixture, num_particles=num_particles,
                      reference_size=reference_size, seed=seed, overwrite=overwrite)
    typer.echo(f"wrote {path}")
