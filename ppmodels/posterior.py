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
from typing import Any

import numpy as np
import pyro
import xarray as xr
import torch

from pyro.poutine.util import site_is_subsample

from .inference import trace_log_weights, trace_particles

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
    log_weight = trace_log_weights(guide_trace, model_trace, num_draws, n)
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
