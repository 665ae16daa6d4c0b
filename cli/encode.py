"""``ppmodels encode``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.encode import encode as encode_data

from .common import Overwrite, handle_errors


@handle_errors
def encode(
    run: Annotated[Path, typer.Argument(help="Run folder written by `ppmodels train`.")],
    data: Annotated[str, typer.Option(help="Data spec to encode (digits, mnist, npz:PATH, ...).")],
    out: Annotated[Path, typer.Option(help="Output .npz with z_loc, z_scale (and y when known), or .nc for an image cube (over its y/x coordinates); for m2 and adgm also y_pred, the class q(y|x) finds most likely, which z is inferred given.")],
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first.")] = None,
    split: Annotated[str, typer.Option(help="Which part of the data: all, train, valid or test.")] = "all",
    overwrite: Overwrite = False,
) -> None:
    """Write the posterior q(z|x) (z_loc, z_scale) of every datum to an .npz file (m2, adgm: q(z|x,y) at the most likely class y_pred)."""
    path = encode_data(run, data, out, data_dir=data_dir, split=split, overwrite=overwrite)
    typer.echo(f"wrote {path}")
