"""``ppmodels encode``: the posterior q(z | x) of a run's model for some data, written to an ``.npz`` file, or for an
image cube to a netCDF file over the cube's y/x coordinates.

A model whose z is inferred given a class (M2, ADGM: q(z | x, y)) is encoded at the class q(y | x) finds most likely,
written beside the codes as ``y_pred``: the z that ``predict`` writes beside its class map, and that decodes back to
x with that class. Summing over q(y | x) instead would give a mixture of Gaussians per datum, not one code.
"""

from __future__ import annotations

from pathlib import Path

from ..data import map_rows, select_split, to_xarray, write_netcdf
from ..errors import ConfigError
from ..files import write_arrays
from ..models import CanEncode, CanStyle
from ..runs import check_output, load, open_for_run, output_lock, record_output
from .predict import class_values


def encode(run: str | Path, data: str, out: str | Path, *, data_dir: str | None = None, split: str = "all", overwrite: bool = False) -> Path:
    """Write ``z_loc``, ``z_scale`` (and ``y`` when known) of q(z|x) for the chosen data to an ``.npz`` file (M2 and
    ADGM: of q(z | x, y_pred) and ``y_pred = argmax q(y|x)``); with ``out`` ending in ``.nc`` (image cubes, every
    pixel) an xarray Dataset over the cube's y/x coordinates. An existing file ppmodels did not write is replaced only
    with ``overwrite`` (:mod:`ppmodels.runs.outputs`). Data on disk, ``npy``/``h5``/``zarr``, is read and encoded a
    chunk at a time; a run trained on an image cube applies its recorded transform (per-band standardisation) to the
    cube given."""
    out = check_output(out, (".npz", ".nc"), overwrite=overwrite, command="encode", run=run)
    if out.suffix == ".nc" and split != "all":
        raise ConfigError(f"--out {out}: a netCDF map covers every pixel; drop --split {split} or write .npz")
    model = load(run)
    if not isinstance(model, (CanEncode, CanStyle)):
        raise ConfigError(f"model {model.name!r} has no encoder; encode works for models with a latent z")
    dataset = model.check_dataset(open_for_run(run, data, data_dir, cube=out.suffix == ".nc"))
    x, y = select_split(dataset, split)
    if isinstance(model, CanEncode):
        codes = dict(zip(("z_loc", "z_scale"), map_rows(model.encode, x)))  # rows on disk are encoded a chunk at a time
    else:
        codes = dict(zip(("z_loc", "z_scale", "y_pred"), model.style_posterior(x)))
    with output_lock(out):
        if out.suffix == ".nc":
            variables = {name: (codes[name], ("latent",)) for name in ("z_loc", "z_scale")}
            if "y_pred" in codes:  # as the ground-truth value of the class, as the cube's labels and predict's class_map
                variables["y_pred"] = (class_values(dataset, model.num_classes)[codes["y_pred"]], ())
            write_netcdf(to_xarray(dataset, variables), out)
            return record_output(out, "encode", run)
        arrays = dict(codes)
        if y is not None:
            arrays["y"] = y.numpy()
        write_arrays(out, arrays)
        return record_output(out, "encode", run)
