"""``ppmodels predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppmodels.commands.predict import predict as predict_cube

from .common import Overwrite, handle_errors


@handle_errors
def predict(
    run: Annotated[Path, typer.Argument(help="Run folder of a classifier (m2, m1m2, m1) written by `ppmodels train`.")],
    out: Annotated[Path, typer.Option(help="Output .nc: class_map, probability (q(y|x)), z and labels over the cube's y/x.")],
    data: Annotated[Optional[str], typer.Option(help="Image cube to map: cube:PATH (netCDF), mat:PATH (MATLAB) or a public scene (indian_pines); default: the scene the run trained on.")] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Folder to look for data files in first (public scenes).")] = None,
    download: Annotated[bool, typer.Option(help="Download a missing public scene (checksummed, cached).")] = False,
    png: Annotated[bool, typer.Option(help="Also write OUT.png: the map beside the ground truth.")] = True,
    overwrite: Overwrite = False,
) -> None:
    """Classify every pixel of an image cube and write the class map, q(y|x) and z as an xarray Dataset (.nc)."""
    for path in predict_cube(run, data, out, data_dir=data_dir, download=download, png=png, overwrite=overwrite).values():
        typer.echo(f"wrote {path}")
