"""``ppmodels sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.sample import sample as sample_model

from .common import Overwrite, handle_errors


@handle_errors
def sample(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    out: Annotated[Path, typer.Option(help="Output file: .png (image grid, image data) or .npy; with --posterior .nc (netCDF) or .npz.")],
    num: Annotated[Optional[int], typer.Option(min=1, help="Number of samples (default 64); with --label, per class (default 10).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 0,
    zoom: Annotated[Optional[int], typer.Option(min=1, help="PNG grids: draw each pixel as a zoom x zoom square (default: each image about 64 px tall, the grid at most 1600 px wide).")] = None,
    posterior: Annotated[bool, typer.Option(help="Draw latents from the guide q(.|x) for --data and x from p(x|latents).")] = False,
    data: Annotated[Optional[str], typer.Option(help="With --posterior: data spec to condition on (digits, mnist, npz:PATH, ...).")] = None,
    num_data: Annotated[int, typer.Option(min=1, help="With --posterior or --style-from: use the first this many data points.")] = 10,
    draws: Annotated[int, typer.Option(min=1, help="With --posterior: draws per data point.")] = 100,
    split: Annotated[str, typer.Option(help="With --posterior or --style-from: all, train, valid or test.")] = "all",
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first.")] = None,
    label: Annotated[Optional[str], typer.Option(help="Models with y: class-conditional samples of class K, or all (one row per class).")] = None,
    style_from: Annotated[Optional[str], typer.Option(help="Models with y: analogies: z inferred from each image of this data spec, decoded with every class (a row per image).")] = None,
    interpolate: Annotated[bool, typer.Option(help="Models with a latent prior (gan, vae, gmvae): --num rows (default 8) of --steps images decoded between two prior draws.")] = False,
    steps: Annotated[int, typer.Option(min=2, help="With --interpolate: images per row.")] = 10,
    analogy: Annotated[Optional[str], typer.Option(help="Latent arithmetic on the prior grid of the same --seed and --num, e.g. '3,7,12 - 5,9,20 + 1,2,4': each group's codes averaged, combined, decoded (a row per group, then the results).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Draw samples: from the prior (default), the posterior (--posterior), one class (--label), as analogies (--style-from), interpolations (--interpolate) or latent arithmetic (--analogy)."""
    path = sample_model(run, out, num=num, seed=seed, zoom=zoom, posterior=posterior, data=data, num_data=num_data, draws=draws,
                        split=split, data_dir=data_dir, label=label, style_from=style_from, interpolate=interpolate, steps=steps,
                        analogy=analogy, overwrite=overwrite)
    typer.echo(f"wrote {path}")
