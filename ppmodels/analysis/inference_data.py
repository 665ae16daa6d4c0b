"""Posterior draws of a trained model as ArviZ ``InferenceData``: one file layout for ``sample --posterior`` and ``diagnose``.

For M data points the guide is traced ``num_draws`` times (one chain: draws of an amortized guide are independent)
and replayed in the model. Groups and dims::

    posterior              each latent guide site (z; y for M2; z1, z2 for M1+M2): (chain, draw, datum, <site>_dim)
    posterior_predictive   x ~ p(x | latents):        (chain, draw, datum, *feature dims)
    log_likelihood         x: log p(x | latents):     (chain, draw, datum)
    sample_stats           log_weight: log p(x, latents) - log q(latents | x): (chain, draw, datum)
    observed_data          x (datum, *feature dims) and y (datum) when labels are known

``diagnose`` adds (see :func:`add_training_trace` and :func:`add_class_probabilities`)::

    sample_stats           train_elbo, valid_elbo: the per-datum ELBO by training epoch: (epoch)
    sample_stats           iw_log_weight: the model's own importance log-weights (chain, draw, datum), for models
                           that override ``log_importance_weights`` (M2 and M1+M2 sum over y exactly); they are
                           fresh draws, not those of ``posterior``
    predictions            y_prob: q(y | x) (datum, class); y_pred: its argmax (datum). No chain/draw dims: an
                           amortized classifier gives one deterministic answer per datum.

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

from ..errors import ConfigError
from ..files import atomic_write
from ..infer.importance import replay_log_weights, trace_particles
from ..models import PPModel

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
    log_weight = replay_log_weights(guide_trace, model_trace, num_draws, n)
    return {
        "posterior": posterior,
        # a model may observe x flattened (the GMM): the draws take the data's shape back
        "posterior_predictive": {OBSERVED_SITE: predictive.expand(num_draws, n, *predictive.shape[2:]).reshape(num_draws, n, *x.shape[1:]).cpu().numpy()[None]},
        "log_likelihood": {OBSERVED_SITE: log_lik.cpu().numpy()[None]},
        "sample_stats": {"log_weight": log_weight.cpu().numpy()[None]},
    }


def batched_posterior_arrays(model, x: torch.Tensor, num_draws: int, seed: int, batch_size: int | None,
                             predictive_draws: int | None, **kwargs: Any) -> dict[str, dict[str, np.ndarray]]:
    """:func:`posterior_arrays` over batches of ``batch_size`` data (seed ``seed + batch number``), joined on the
    datum axis; ``posterior_predictive`` keeps only the first ``predictive_draws`` draws, which bounds its memory
    (it is the size of the data times the draws). Per-datum tensors in ``kwargs`` are split with ``x``."""
    n = len(x)
    batch_size = batch_size or n
    parts = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = {k: v[start:start + batch_size] if torch.is_tensor(v) and v.dim() and len(v) == n else v for k, v in kwargs.items()}
        arrays = posterior_arrays(model, x[start:start + batch_size], num_draws, seed + i, **chunk)
        if predictive_draws is not None:
            arrays["posterior_predictive"] = {k: v[:, :predictive_draws] for k, v in arrays["posterior_predictive"].items()}
        parts.append(arrays)
    return {group: {name: np.concatenate([p[group][name] for p in parts], axis=2) for name in parts[0][group]} for group in parts[0]}


def posterior_idata(model, x: torch.Tensor, y: torch.Tensor | None = None, num_draws: int = 100, seed: int = 0,
                    datum_index: np.ndarray | None = None, batch_size: int | None = None,
                    predictive_draws: int | None = None, **kwargs: Any):
    """An ``arviz.InferenceData`` with the groups of the module docstring for data ``x`` (labels ``y`` optional).

    ``batch_size`` traces that many data at a time (memory); ``predictive_draws`` keeps that many draws in
    ``posterior_predictive`` (default: all ``num_draws``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    if batch_size is None and predictive_draws is None:
        arrays = posterior_arrays(model, x, num_draws, seed, **kwargs)
    else:
        arrays = batched_posterior_arrays(model, x, num_draws, seed, batch_size, predictive_draws, **kwargs)
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


def add_training_trace(idata, records: list[dict]) -> None:
    """Put the per-epoch ``train_elbo`` and ``valid_elbo`` of ``metrics.jsonl`` records into ``sample_stats`` (dim ``epoch``)."""
    if not records:
        return
    epochs = np.array([r["epoch"] for r in records])
    for name in ("train_elbo", "valid_elbo"):
        values = np.array([r.get(name, np.nan) if r.get(name) is not None else np.nan for r in records], dtype=float)
        if np.isfinite(values).any():
            idata.sample_stats[name] = xr.DataArray(values, dims=["epoch"], coords={"epoch": epochs})


def add_class_probabilities(idata, probs: np.ndarray) -> None:
    """Add q(y | x) as ``predictions.y_prob`` (datum, class) and its argmax ``predictions.y_pred`` (datum)."""
    probs = np.asarray(probs, dtype=float)
    coords = {"datum": idata.observed_data["datum"].values, "class": np.arange(probs.shape[1])}
    dataset = xr.Dataset({"y_prob": (["datum", "class"], probs), "y_pred": (["datum"], probs.argmax(1))}, coords=coords)
    idata.add_groups(predictions=dataset)


def has_own_log_weights(model) -> bool:
    """Whether ``model`` overrides the generic importance weights (e.g. with an exact sum over a discrete latent)."""
    return type(model).log_importance_weights is not PPModel.log_importance_weights


@torch.no_grad()
def add_model_log_weights(idata, model, x: torch.Tensor, num_draws: int, seed: int = 0, batch_size: int = 100) -> None:
    """Add ``model.log_importance_weights`` (``num_draws`` per datum) as ``sample_stats.iw_log_weight``."""
    pyro.set_rng_seed(seed)
    lw = torch.cat([model.log_importance_weights(xb, num_draws) for xb in model.check_x(x).split(batch_size)], dim=1)
    coords = {"draw": np.arange(num_draws), "datum": idata.sample_stats["datum"].values}
    idata.sample_stats["iw_log_weight"] = xr.DataArray(lw.cpu().numpy()[None], dims=["chain", "draw", "datum"], coords=coords)


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
