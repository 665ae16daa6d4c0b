"""``ppmodels sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.errors import ConfigError
from ppmodels.sampling import sample_analogies, sample_conditional, sample_posterior, sample_prior

from .common import handle_errors


@handle_errors
def sample(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    out: Annotated[Path, typer.Option(help="Output file: .png (image grid, image data) or .npy; with --posterior .nc (netCDF) or .npz.")],
    num: Annotated[int, typer.Option(min=1, help="Number of samples (with --label: per class).")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 0,
    zoom: Annotated[int, typer.Option(min=1, help="PNG grids: draw each pixel as a zoom x zoom square (8x8 digits are tiny).")] = 1,
    posterior: Annotated[bool, typer.Option(help="Draw latents from the guide q(.|x) for --data and x from p(x|latents).")] = False,
    data: Annotated[Optional[str], typer.Option(help="With --posterior: data spec to condition on (digits, mnist, npz:PATH, ...).")] = None,
    num_data: Annotated[int, typer.Option(min=1, help="With --posterior or --style-from: use the first this many data points.")] = 10,
    draws: Annotated[int, typer.Option(min=1, help="With --posterior: draws per data point.")] = 100,
    split: Annotated[str, typer.Option(help="With --posterior or --style-from: all, train, valid or test.")] = "all",
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Models with y: class-conditional samples of class K, or all (one row per class).")] = None,
    style_from: Annotated[Optional[str], typer.Option(help="Models with y: analogies: z inferred from each image of this data spec, decoded with every class (a row per image).")] = None,
) -> None:
    """Draw samples: from the prior (default), the posterior (--posterior), one class (--label) or as analogies (--style-from)."""
    modes = [name for name, on in (("--posterior", posterior), ("--label", label is not None), ("--style-from", style_from is not None)) if on]
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} are separate modes; give one of them")
    if data is not None and not posterior:
        raise ConfigError("--data applies to --posterior; for analogies give the images with --style-from SPEC")
    if posterior:
        if data is None:
            raise ConfigError("--posterior needs --data SPEC, the data whose latents to draw (e.g. --data digits)")
        path = sample_posterior(run, data, out, num_data=num_data, draws=draws, seed=seed, data_dir=data_dir, split=split)
    elif label is not None:
        path = sample_conditional(run, label, out, num=num, seed=seed, zoom=zoom)
    elif style_from is not None:
        path = sample_analogies(run, style_from, out, num_data=num_data, data_dir=data_dir, split=split, zoom=zoom)
    else:
        path = sample_prior(run, num, out, seed=seed, zoom=zoom)
    typer.echo(f"wrote {path}")
