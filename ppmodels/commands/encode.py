"""``ppmodels encode``: the posterior q(z | x) of a run's model for some data, written to an ``.npz`` file."""

from __future__ import annotations

from pathlib import Path

from ..data import load_dataset, map_rows, select_split
from ..errors import ConfigError
from ..files import write_arrays
from ..models import CanEncode
from ..runs import check_output, load, record_output


def encode(run: str | Path, data: str, out: str | Path, *, data_dir: str | None = None, split: str = "all", overwrite: bool = False) -> Path:
    """Write ``z_loc``, ``z_scale`` (and ``y`` when known) of q(z|x) for the chosen data to an ``.npz`` file (an existing
    file ppmodels did not write is replaced only with ``overwrite``; see :mod:`ppmodels.runs.outputs`). Data on disk,
    ``npy``/``h5``/``zarr``, is read and encoded a chunk at a time."""
    out = check_output(out, (".npz",), overwrite=overwrite)
    model = load(run)
    if not isinstance(model, CanEncode):
        raise ConfigError(f"model {model.name!r} has no encoder; encode works for models with a latent z")
    x, y = select_split(model.check_dataset(load_dataset(data, data_dir=data_dir)), split)
    z_loc, z_scale = map_rows(model.encode, x)  # rows on disk are encoded a chunk at a time
    arrays = {"z_loc": z_loc, "z_scale": z_scale}
    if y is not None:
        arrays["y"] = y.numpy()
    write_arrays(out, arrays)
    return record_output(out, "encode")
