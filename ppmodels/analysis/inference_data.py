"""Posterior draws of a trained model as ArviZ ``InferenceData``: one file layout for ``sample --posterior`` and ``diagnose``.

For M data points the guide is traced ``num_draws`` times (one chain: draws of an amortized guide are independent)
and replayed in the model. The layout follows ArviZ's schema, so that ``az.summary``, ``az.loo``, ``az.loo_pit(idata,
y="x")``, ``az.plot_ppc``, ``az.plot_khat`` and ``az.plot_loo_pit(idata, y="x")`` run on it. Groups and dims::

    posterior              each latent guide site (z; y for M2; z1, z2 for M1+M2): (chain, draw, datum, <site>_dim)
                           (a model whose guide samples nothing: its enumerated latents drawn from p(k | x))
    posterior_predictive   x ~ p(x | latents):        (chain, draw, datum, *feature dims), every draw
    log_likelihood         x: log p(x | latents) per observed feature: (chain, draw, datum, *feature dims) when the
                           likelihood factorizes over features (all models here), else (chain, draw, datum); float32 in
                           memory, float64 on disk (save_idata: az.loo gives NaN on float32)
    sample_stats           log_weight: log p(x, latents) - log q(latents | x): (chain, draw, datum)
                           kl_<site>: log q(z_d | x) - log p(z_d | ...) per dimension of a continuous latent site
                           (chain, draw, datum, <site>_dim); its mean over draws estimates KL per dimension
    observed_data          x (datum, *feature dims)
    constant_data          y (datum): labels, when known and not modelled (a model without a classifier)

``diagnose`` adds (see :func:`add_training_trace` and :func:`add_class_probabilities`)::

    training               train_elbo, valid_elbo: the per-datum ELBO by training epoch (epoch); a group of its own
                           (outside ArviZ's schema): it has no chain or draw
    sample_stats           iw_log_weight: the model's own importance log-weights (chain, draw, datum), for models
                           that override ``log_importance_weights`` (M2 and M1+M2 sum over y exactly); they are
                           fresh draws, not those of ``posterior``
    predictions            y_prob: q(y | x) (chain, draw, datum, class) and y_pred, its argmax (chain, draw,
                           datum), with one draw: an amortized classifier gives one deterministic answer per datum
    observed_data          y (datum) for classifiers, with its counterpart posterior_predictive.y ~ q(y | x)
                           (chain, draw, datum)

Discrete predictive draws (Bernoulli, binomial) are stored as ``int8`` (``int16`` beyond 127 trials). The attribute ``note`` of a group says where
ArviZ's own reading of it misleads (``log_likelihood``: ``az.loo`` on per-datum latents; see :data:`LOO_NOTE`).
Feature dims are ``feature`` for flat data and ``channel, row, col`` for images.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import xarray as xr

from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ..errors import ConfigError
from ..files import atomic_write
from ..infer.importance import replay_log_weights, trace_particles
from ..models import PPModel
from .diagnostics import _arviz

OBSERVED_SITE = "x"
#: the attribute ``note`` of ``log_likelihood``: what ``az.loo`` on it means (``diagnose`` adds the measured excess)
LOO_NOTE = ("Each datum has its own latent, drawn from q(z | x) with x included, so az.loo / az.waic on this group "
            "treat every feature as an observation and estimate its predictive by a harmonic mean of p(x_d | z) under the "
            "guide, not by leaving the datum out: their elpd is not log p(x) (attribute loo_minus_iw_per_datum: how far "
            "off it is here) and their k-hats are high by construction. Use the importance-weighted bound (logsumexp of "
            "sample_stats.log_weight over draws minus log draws) for model comparison.")


def feature_dims(x_shape: tuple[int, ...] | list[int]) -> list[str]:
    return ["channel", "row", "col"] if len(x_shape) == 3 else [f"feature_{i}" if len(x_shape) > 1 else "feature" for i in range(len(x_shape))]


def pointwise_log_likelihood(site: dict, num_draws: int, n: int, x_shape: tuple[int, ...]) -> torch.Tensor:
    """log p(x | latents) per observed feature, ``(num_draws, n, *x_shape)``, when the likelihood of ``site`` is an
    ``Independent`` over the features (a per-pixel Bernoulli, binomial or Normal); else per datum ``(num_draws, n)``."""
    fn, value = site["fn"], site["value"]
    event = tuple(fn.event_shape)
    if isinstance(fn, dist.Independent) and int(np.prod(event)) == int(np.prod(x_shape)):
        base = fn
        while isinstance(base, dist.Independent):
            base = base.base_dist
        log_prob = base.log_prob(value)
        return log_prob.expand(num_draws, n, *event).reshape(num_draws, n, *x_shape)
    return fn.log_prob(value).expand(num_draws, n)


def latent_kl_terms(guide_trace, model_trace, num_draws: int, n: int) -> dict[str, torch.Tensor]:
    """``log q(z_d | x) - log p(z_d | ...)`` per draw, datum and dimension ``(num_draws, n, dim)`` for each continuous
    latent site whose guide and prior both factorize over a vector of dimensions (their mean over draws is the KL per
    dimension, exact in expectation)."""
    terms = {}
    for name, site in guide_trace.nodes.items():
        prior = model_trace.nodes.get(name)
        if (site["type"] != "sample" or site_is_subsample(site) or prior is None or not site["fn"].has_rsample
                or not all(isinstance(f, dist.Independent) and len(f.event_shape) == 1 for f in (site["fn"], prior["fn"]))):
            continue
        value = site["value"]
        diff = site["fn"].base_dist.log_prob(value) - prior["fn"].base_dist.log_prob(value)
        terms[f"kl_{name}"] = diff.expand(num_draws, n, value.shape[-1])
    return terms


def compact(draws: torch.Tensor) -> np.ndarray:
    """Predictive draws as ``int8`` when they are counts (Bernoulli, binomial up to 127; ``int16`` up to 32767),
    else ``float32``. Signed: ArviZ's ``loo_pit`` refuses unsigned predictive data."""
    values = draws.cpu().numpy()
    if values.size and values.min() >= 0 and values.max() <= 32767 and np.array_equal(values, np.round(values)):
        return values.astype(np.int8 if values.max() <= 127 else np.int16)
    return values.astype(np.float32)


@torch.no_grad()
def posterior_arrays(model, x: torch.Tensor, num_draws: int = 100, seed: int = 0, **kwargs: Any) -> dict[str, dict[str, np.ndarray]]:
    """The groups above as numpy arrays with a leading chain dim of 1 (``{"posterior": {"z": ...}, ...}``).

    A model whose guide samples no latent (the GMM sums its component exactly) gets a posterior all the same: its
    summed latents drawn from their exact posterior given x (Pyro's ``infer_discrete``, e.g. k ~ p(k | x)), with the
    posterior predictive and log-likelihood of those draws; ``log_weight`` stays that of the guide (the prior) as
    proposal, and ``posterior_source`` says which it is (``guide`` or ``exact``)."""
    x = model.check_x(x)
    pyro.set_rng_seed(seed)
    guide_trace, model_trace = trace_particles(model, x, num_draws, **kwargs)
    n = len(x)
    log_weight = replay_log_weights(guide_trace, model_trace, num_draws, n)
    posterior, source = latent_draws(guide_trace, num_draws, n), "guide"
    if not posterior:
        exact = exact_discrete_trace(model, x, num_draws, **kwargs)
        if exact is not None:
            model_trace, source = exact, "exact"
            posterior = latent_draws(exact, num_draws, n)
    x_site = model_trace.nodes[OBSERVED_SITE]
    log_lik = pointwise_log_likelihood(x_site, num_draws, n, tuple(x.shape[1:]))
    predictive = x_site["fn"].sample()
    kl = latent_kl_terms(guide_trace, model_trace, num_draws, n)
    return {
        "posterior": posterior,
        # a model may observe x flattened (the GMM): the draws take the data's shape back
        "posterior_predictive": {OBSERVED_SITE: compact(predictive.expand(num_draws, n, *predictive.shape[2:]).reshape(num_draws, n, *x.shape[1:]))[None]},
        # float32 in memory (per feature it is the largest array); save_idata writes float64, which az.loo needs
        "log_likelihood": {OBSERVED_SITE: log_lik.float().cpu().numpy()[None]},
        "sample_stats": {"log_weight": log_weight.double().cpu().numpy()[None], **{k: v.float().cpu().numpy()[None] for k, v in kl.items()}},
        "source": source,
    }


def latent_draws(trace, num_draws: int, n: int) -> dict[str, np.ndarray]:
    """The unobserved per-datum sample sites of ``trace`` as ``(1, num_draws, n, ...)`` arrays."""
    draws = {}
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            value = site["value"].expand(num_draws, n, *site["value"].shape[2:]) if site["value"].dim() >= 2 else site["value"]
            draws[name] = value.cpu().numpy()[None]
    return draws


def exact_discrete_trace(model, x: torch.Tensor, num_draws: int, **kwargs: Any):
    """The model traced with its enumerated discrete latents drawn from their exact posterior given ``x``
    (``infer_discrete`` at temperature 1, ``num_draws`` per datum in the plate ``particles``), or ``None`` when it
    has none."""
    from pyro.infer import infer_discrete

    n = len(x)

    def particles(*args: Any, **options: Any):  # the plate inside infer_discrete, or its draws ignore it
        with pyro.plate("particles", num_draws, dim=-2):
            return model.model(*args, **options)

    with model.evaluating():
        probe = poutine.trace(particles).get_trace(x, num_data=n, **kwargs)
        enumerated = [site for site in probe.nodes.values() if site["type"] == "sample" and site["infer"].get("enumerate")]
        if not enumerated:
            return None
        if all(site["fn"].enumerate_support(expand=False).shape[0] == 1 for site in enumerated):
            discrete = probe  # one category (a one-component mixture): its posterior is that category, which the probe drew
        else:  # (infer_discrete would warn that it found nothing to enumerate in the case above)
            discrete = poutine.trace(infer_discrete(particles, first_available_dim=-3, temperature=1)).get_trace(x, num_data=n, **kwargs)
        for site in discrete.nodes.values():  # a single category keeps its enumeration dim and no particle dims
            if site["type"] == "sample" and site["infer"].get("enumerate"):
                value = site["value"]
                while value.dim() > 2 and value.shape[0] == 1:
                    value = value[0]
                site["value"] = value.expand(num_draws, n)
        # replay the model on the posterior draws: infer_discrete's own trace holds the enumerated distributions
        return poutine.trace(poutine.replay(particles, trace=discrete)).get_trace(x, num_data=n, **kwargs)


def datum_log_likelihood(idata_or_array) -> np.ndarray:
    """log p(x | latents) per datum ``(draw, datum)`` of the first chain: the per-feature values summed."""
    values = idata_or_array.log_likelihood[OBSERVED_SITE].values if hasattr(idata_or_array, "log_likelihood") else idata_or_array
    values = np.asarray(values)[0]
    return values.reshape(*values.shape[:2], -1).sum(-1)


def batched_posterior_arrays(model, x: torch.Tensor, num_draws: int, seed: int, batch_size: int | None,
                             predictive_draws: int | None, **kwargs: Any) -> dict[str, Any]:
    """:func:`posterior_arrays` over batches of ``batch_size`` data (seed ``seed + batch number``), joined on the
    datum axis; ``posterior_predictive`` keeps only the first ``predictive_draws`` draws, which bounds its memory.
    Per-datum tensors in ``kwargs`` are split with ``x``."""
    n = len(x)
    batch_size = batch_size or n
    parts = []
    for i, start in enumerate(range(0, n, batch_size)):
        chunk = {k: v[start:start + batch_size] if torch.is_tensor(v) and v.dim() and len(v) == n else v for k, v in kwargs.items()}
        arrays = posterior_arrays(model, x[start:start + batch_size], num_draws, seed + i, **chunk)
        if predictive_draws is not None:
            arrays["posterior_predictive"] = {k: v[:, :predictive_draws] for k, v in arrays["posterior_predictive"].items()}
        parts.append(arrays)
    joined: dict[str, Any] = {group: {name: np.concatenate([p[group][name] for p in parts], axis=2) for name in parts[0][group]}
                              for group in parts[0] if group != "source"}
    joined["source"] = parts[0]["source"]
    return joined


def posterior_idata(model, x: torch.Tensor, y: torch.Tensor | None = None, num_draws: int = 100, seed: int = 0,
                    datum_index: np.ndarray | None = None, batch_size: int | None = None,
                    predictive_draws: int | None = None, **kwargs: Any):
    """An ``arviz.InferenceData`` with the groups of the module docstring for data ``x`` (labels ``y`` optional, kept
    in ``constant_data`` until :func:`add_class_probabilities` gives them a predictive).

    ``batch_size`` traces that many data at a time (memory); ``predictive_draws`` keeps that many draws in
    ``posterior_predictive`` (default: all ``num_draws``, as ArviZ's LOO-PIT needs). ``posterior.attrs["source"]`` is ``guide`` (q(z | x)) or ``exact`` (a model whose guide
    samples nothing: its summed discrete latents drawn from p(k | x)).
    """
    az = _arviz()
    if batch_size is None and predictive_draws is None:
        arrays = posterior_arrays(model, x, num_draws, seed, **kwargs)
    else:
        arrays = batched_posterior_arrays(model, x, num_draws, seed, batch_size, predictive_draws, **kwargs)
    x_dims = ["datum", *feature_dims(model.config.x_shape)]
    coords = {"datum": np.arange(len(x)) if datum_index is None else np.asarray(datum_index)}
    latent_dims = {name: ["datum", *[f"{name}_dim" if i == 0 else f"{name}_dim{i}" for i in range(v.ndim - 3)]]
                   for name, v in arrays["posterior"].items()}
    log_lik = arrays["log_likelihood"][OBSERVED_SITE]
    stats_dims = {"log_weight": ["datum"], **{k: ["datum", f"{k[3:]}_dim"] for k in arrays["sample_stats"] if k.startswith("kl_")}}
    group_dims = {"posterior": latent_dims, "posterior_predictive": {OBSERVED_SITE: x_dims},
                  "log_likelihood": {OBSERVED_SITE: x_dims if log_lik.ndim > 3 else ["datum"]}, "sample_stats": stats_dims}
    groups = {group: az.dict_to_dataset(arrays[group], coords=coords, dims=group_dims[group]) for group in group_dims if arrays[group]}
    groups["observed_data"] = xr.Dataset({OBSERVED_SITE: (x_dims, np.asarray(torch.as_tensor(x).cpu()))}, coords=coords)
    if y is not None:
        groups["constant_data"] = xr.Dataset({"y": (["datum"], np.asarray(torch.as_tensor(y).cpu()))}, coords=coords)
    idata = az.InferenceData(**groups)
    idata.log_likelihood.attrs["note"] = LOO_NOTE
    if "posterior_predictive" in groups and not loo_pit_defined(idata):
        idata.posterior_predictive.attrs["note"] = BINARY_NOTE
    if "posterior" in groups:
        idata.posterior.attrs["source"] = arrays["source"]
        idata.posterior.attrs["note"] = ("One chain: draws of an amortized guide are independent, so R-hat is undefined (ArviZ warns) "
                                         "and the effective sample size is the number of draws." if arrays["source"] == "guide" else EXACT_NOTE)
    else:
        idata.attrs["note"] = ("No posterior group: the guide samples no latent (its weights are exact). ArviZ functions that read "
                               "the posterior (az.summary; az.loo and az.loo_pit for the relative ESS) need reff=1.0 here.")
    return idata


#: the posterior group of a model whose guide samples nothing (the GMM)
EXACT_NOTE = ("The guide samples no latent: these are the model's summed discrete latents drawn from their exact posterior "
              "given x (infer_discrete), with the posterior predictive and log-likelihood of those draws; sample_stats.log_weight "
              "keeps the guide's (the prior's) weights, and the model's exact log p(x) is in iw_log_weight.")


#: why the LOO-PIT of binary x is left out (``az.loo_pit`` smooths discrete data by a spline through its values)
BINARY_NOTE = ("x is binary (Bernoulli draws): its LOO-PIT is not defined (az.loo_pit smooths discrete data by a spline "
               "through its distinct values and needs more than two); the posterior predictive checks use plot_ppc and plot_bpv.")


def loo_pit_defined(idata) -> bool:
    """Whether ArviZ's LOO-PIT can be computed on ``x``: continuous draws, or counts with more than two values."""
    draws = idata.posterior_predictive[OBSERVED_SITE]
    return draws.dtype.kind == "f" or len(np.unique(draws.values[..., :1000])) > 2


#: ArviZ's PSIS fits one tail per observed value (pixel): about 0.4 ms each on a small CPU, so its LOO functions run on
#: the first data whose values number at most this (all 500 digits x 64 pixels would be 32,000; 25 MNIST images)
LOO_VALUES = 20_000


def loo_subset(idata, max_values: int = LOO_VALUES):
    """``idata`` restricted to its first data, as many as keep ``az.loo`` / ``az.loo_pit`` to ``max_values`` observed
    values (at least one datum)."""
    per_datum = int(np.prod(idata.observed_data[OBSERVED_SITE].shape[1:]))
    return idata.isel(datum=slice(0, max(1, max_values // per_datum)))


def labels_of(idata) -> np.ndarray | None:
    """The true labels of the data of ``idata`` (``observed_data.y`` for classifiers, ``constant_data.y`` otherwise)."""
    for group in ("observed_data", "constant_data"):
        if group in idata.groups() and "y" in idata[group]:
            return idata[group]["y"].values
    return None


def add_training_trace(idata, records: list[dict]) -> None:
    """Put the per-epoch ``train_elbo`` and ``valid_elbo`` of ``metrics.jsonl`` records into the group ``training`` (dim ``epoch``)."""
    if not records:
        return
    epochs = np.array([r["epoch"] for r in records])
    trace = {}
    for name in ("train_elbo", "valid_elbo"):
        values = np.array([r.get(name, np.nan) if r.get(name) is not None else np.nan for r in records], dtype=float)
        if np.isfinite(values).any():
            trace[name] = xr.DataArray(values, dims=["epoch"], coords={"epoch": epochs})
    if trace:
        idata.add_groups(training=xr.Dataset(trace))


def add_class_probabilities(idata, probs: np.ndarray, seed: int = 0) -> None:
    """Add q(y | x) as ``predictions.y_prob`` (chain, draw, datum, class) and its argmax ``predictions.y_pred``, with
    one draw. Known labels move from ``constant_data`` to ``observed_data`` and get their counterpart
    ``posterior_predictive.y``: one label drawn from q(y | x) per draw of ``x``, and ``log_likelihood.y`` = log q(y | x)
    (``az.loo_pit(idata, y="y")`` then runs; ``az.loo`` needs ``var_name="x"`` once there are two variables)."""
    probs = np.asarray(probs, dtype=float)
    datum = idata.observed_data["datum"].values
    coords = {"chain": [0], "draw": [0], "datum": datum, "class": np.arange(probs.shape[1])}
    idata.add_groups(predictions=xr.Dataset({"y_prob": (["chain", "draw", "datum", "class"], probs[None, None]),
                                             "y_pred": (["chain", "draw", "datum"], probs.argmax(1)[None, None])}, coords=coords))
    if "constant_data" not in idata.groups() or "y" not in idata.constant_data:
        return
    idata.observed_data["y"] = idata.constant_data["y"]
    idata.constant_data = idata.constant_data.drop_vars("y")
    if not idata.constant_data.data_vars:
        del idata.constant_data
    num_draws = idata.posterior_predictive.sizes["draw"]
    cumulative = np.cumsum(probs / probs.sum(1, keepdims=True), axis=1)
    uniform = np.random.default_rng(seed).random((num_draws, len(probs), 1))
    draws = np.minimum((uniform > cumulative[None]).sum(-1), probs.shape[1] - 1)
    idata.posterior_predictive["y"] = xr.DataArray(draws[None], dims=["chain", "draw", "datum"],
                                                   coords={"chain": idata.posterior_predictive["chain"].values,
                                                           "draw": idata.posterior_predictive["draw"].values, "datum": datum})
    # log q(y | x) of the known label, the same in every draw (one amortized classifier): az.loo_pit(idata, y="y") pairs it
    # with the draws of y (unknown labels, -1, get 0)
    labels = idata.observed_data["y"].values
    log_q = np.where(labels >= 0, np.log(np.clip(probs[np.arange(len(probs)), np.maximum(labels, 0)], 1e-300, None)), 0.0)
    log_draws = idata.log_likelihood.sizes["draw"]
    idata.log_likelihood["y"] = xr.DataArray(np.broadcast_to(log_q, (1, log_draws, len(probs))).astype(np.float64), dims=["chain", "draw", "datum"],
                                             coords={"chain": idata.log_likelihood["chain"].values, "draw": idata.log_likelihood["draw"].values,
                                                     "datum": datum})


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


def thinned(idata, stored_draws: int | None):
    """``idata`` with the first ``stored_draws`` draws of every group (draws of an amortized guide are independent, so
    the first ones are a fair thinning; groups with fewer draws keep theirs)."""
    if stored_draws is None:
        return idata
    return idata.isel(draw=slice(0, stored_draws))


def log_likelihood_float64(idata) -> None:
    """Cast ``log_likelihood`` to float64 in place: ArviZ's ``az.loo`` gives NaN on float32 per-feature values where the
    same numbers in float64 are finite, and ``az.compare`` then ranks models wrongly."""
    if "log_likelihood" in idata.groups():
        for name, var in idata.log_likelihood.data_vars.items():
            if var.dtype.kind == "f" and var.dtype != np.float64:
                idata.log_likelihood[name] = var.astype(np.float64)


def save_idata(idata, path: str | Path) -> Path:
    """Write ``idata`` to ``path``: netCDF for ``.nc``, or ``.npz`` with one key per array; log-likelihoods in float64
    (:func:`log_likelihood_float64`).

    npz keys are ``GROUP/VAR`` (e.g. ``posterior/z``) with ``GROUP/VAR.dims`` naming its dims and ``coords/datum``
    holding the datum coordinate. The time stamps ArviZ and zip add are left out, so the same draws give
    byte-identical files (``--seed`` reproducibility).
    """
    path = Path(path)
    if path.suffix not in (".nc", ".npz"):
        raise ConfigError(f"--out {path.name} must end in .nc (netCDF InferenceData) or .npz")
    for group in idata.groups():
        idata[group].attrs.pop("created_at", None)
    log_likelihood_float64(idata)
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
