"""Posterior draws of a trained model as ArviZ ``InferenceData``: one file layout for ``sample --posterior`` and ``diagnose``.

For M data points the guide is traced ``num_draws`` times (one chain: draws of an amortized guide are independent)
and replayed in the model. Groups and dims::

    posterior              each latent guide site (z; y for M2; z1, z2 for M1+M2): (chain, draw, datum, <site>_dim)
    posterior_predictive   x ~ p(x | latents):        (chain, draw, datum, *feature dims)
    log_likelihood         x: log p(x | latents):     (chain, draw, datum)
    sample_stats           log_weight: log p(x, latents) - log q(latents | x): (chain, draw, datum)
    observed_data          x (datum, *feature dims) and y (datum) when labels are known

Feature dims are ``feature`` for flat data and ``channel, row, col`` for images.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import xarray as xr
import torch

from pyro.poutine.util import site_is_subsample

from .errors import ConfigError
from .inference import site_log_probs, trace_particles
from .run import atomic_write

OBSERVED_SITE = "x"


def feature_dims(x_shape: tuple[int, ...] | list[int]) -> list[str]:
    return ["channel", "row", "col"] if len(x_shape) == 3 else [f"feature_{i}" if len(x_shape) > 1 else "feature" for i in range(len(x_shape))]


@torch.no_grad()
def posterior_arrays(model, x: torch.Tensor, num_draws: int = 100, seed: int = 0, **kwargs: Any) -> dict[str, dict[str, np.ndarray]]:
    """The groups above as numpy arrays with a leading chain dim of 1 (``{"posterior": {"z": ...}, ...}``)."""
    x = model.check_x(x)
    pyro.set_rng_seed(seed)
    guide_trace, model_trace = trace_particles(model, x, num_draws, **kwargs)
    n = len(x)
    posterior = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            value = site["value"].expand(num_draws, n, *site["value"].shape[2:]) if site["value"].dim() >= 2 else site["value"]
            posterior[name] = value.cpu().numpy()[None]
    x_site = model_trace.nodes[OBSERVED_SITE]
    log_lik = x_site["fn"].log_prob(x_site["value"]).expand(num_draws, n)
    predictive = x_site["fn"].sample()
    log_weight = site_log_probs(model_trace, num_draws, n) - site_log_probs(guide_trace, num_draws, n)
    return {
        "posterior": posterior,
        "posterior_predictive": {OBSERVED_SITE: predictive.expand(num_draws, n, *x.shape[1:]).cpu().numpy()[None]},
        "log_likelihood": {OBSERVED_SITE: log_lik.cpu().numpy()[None]},
        "sample_stats": {"log_weight": log_weight.cpu().numpy()[None]},
    }


def posterior_idata(model, x: torch.Tensor, y: torch.Tensor | None = None, num_draws: int = 100, seed: int = 0,
                    datum_index: np.ndarray | None = None, **kwargs: Any):
    """An ``arviz.InferenceData`` with the groups of the module docstring for data ``x`` (labels ``y`` optional)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    arrays = posterior_arrays(model, x, num_draws, seed, **kwargs)
    x_dims = ["datum", *feature_dims(model.config.x_shape)]
    coords = {"datum": np.arange(len(x)) if datum_index is None else np.asarray(datum_index)}
    latent_dims = {name: ["datum", *[f"{name}_dim" if i == 0 else f"{name}_dim{i}" for i in range(v.ndim - 3)]]
                   for name, v in arrays["posterior"].items()}
    group_dims = {"posterior": latent_dims, "posterior_predictive": {OBSERVED_SITE: x_dims},
                  "log_likelihood": {OBSERVED_SITE: ["datum"]}, "sample_stats": {"log_weight": ["datum"]}}
    groups = {group: az.dict_to_dataset(arrays[group], coords=coords, dims=group_dims[group]) for group in group_dims}
    observed = {OBSERVED_SITE: (x_dims, np.asarray(torch.as_tensor(x).cpu()))}
    if y is not None:
        observed["y"] = (["datum"], np.asarray(torch.as_tensor(y).cpu()))
    groups["observed_data"] = xr.Dataset(observed, coords=coords)
    return az.InferenceData(**groups)


def save_idata(idata, path: str | Path) -> Path:
    """Write ``idata`` to ``path``: netCDF for ``.nc``, or ``.npz`` with one key per array.

    npz keys are ``GROUP/VAR`` (e.g. ``posterior/z``) with ``GROUP/VAR.dims`` naming its dims and ``coords/datum``
    holding the datum coordinate. The time stamps ArviZ and zip add are left out, so the same draws give
    byte-identical files (``--seed`` reproducibility).
    """
    path = Path(path)
    if path.suffix not in (".nc", ".npz"):
        raise ConfigError(f"--out {path.name} must end in .nc (netCDF InferenceData) or .npz")
    for group in idata.groups():
        idata[group].attrs.pop("created_at", None)
    if path.suffix == ".nc":
        atomic_write(path, lambda tmp: idata.to_netcdf(tmp))
    else:
        atomic_write(path, lambda tmp: _write_npz(idata_arrays(idata), tmp))
    return path


def idata_arrays(idata) -> dict[str, np.ndarray]:
    """The arrays of ``idata`` flattened to ``{"GROUP/VAR": values, "GROUP/VAR.dims": names, "coords/datum": ...}``."""
    arrays: dict[str, np.ndarray] = {}
    for group in idata.groups():
        dataset = idata[group]
        for name, var in dataset.data_vars.items():
            arrays[f"{group}/{name}"] = var.values
            arrays[f"{group}/{name}.dims"] = np.array(var.dims, dtype=str)
        for name, coord in dataset.coords.items():
            arrays.setdefault(f"coords/{name}", coord.values)
    return arrays


def _write_npz(arrays: dict[str, np.ndarray], path: str) -> None:
    """``np.savez`` without the zip entries' modification times (fixed to 1980-01-01) so output is reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
