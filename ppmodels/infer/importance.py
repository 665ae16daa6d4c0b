"""Importance weights of an amortized guide: the one place that computes log p(x, z) - log q(z | x) per datum.

Used by evaluation (the importance-weighted log-likelihood bound), diagnostics (PSIS k-hat) and scoring
(out-of-distribution log p(x)). It works for any model/guide pair whose per-datum sites sit in the plate
``data`` (dim -1): the guide is traced under an outer plate ``particles`` (dim -2), its draws are replayed in the
model, and each site's log-probability is summed into a ``(num_particles, N)`` table. Discrete guide sites
marked for enumeration are *sampled* here (no enumeration handler is active), which keeps the estimator unbiased
for p(x); a model can override :meth:`~ppmodels.models.PPModel.log_importance_weights` with an exact sum.
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def site_log_probs(trace: poutine.Trace, num_particles: int, batch_size: int, skip: frozenset[str] = frozenset()) -> torch.Tensor:
    """Sum of the unscaled log-probabilities of a trace's sample sites (but ``skip``), as a ``(num_particles, batch_size)`` table."""
    total = torch.zeros(num_particles, batch_size)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name in skip:
            continue
        log_prob = site["fn"].log_prob(site["value"])
        total = total + log_prob.reshape(log_prob.shape[-2:] if log_prob.dim() >= 2 else log_prob.shape).expand(num_particles, batch_size)
    return total


@torch.no_grad()
def trace_particles(model, x: torch.Tensor, num_particles: int, **kwargs: Any) -> tuple[poutine.Trace, poutine.Trace]:
    """``(guide_trace, model_trace)``: ``num_particles`` guide draws per datum (plate ``particles``, dim -2),
    replayed in the model. ``kwargs`` go to both (e.g. ``y=`` for observed labels); the batch is the whole data."""
    n = len(x)
    with model.evaluating(), pyro.plate("particles", num_particles, dim=-2):
        guide_trace = poutine.trace(model.guide).get_trace(x, num_data=n, **kwargs)
        model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x, num_data=n, **kwargs)
    return guide_trace, model_trace


def replay_log_weights(guide_trace: poutine.Trace, model_trace: poutine.Trace, num_particles: int, batch_size: int) -> torch.Tensor:
    """``log p - log q`` per particle and datum from a guide trace and the model replayed on it.

    A latent the guide does not sample is drawn from its prior in the model: its prior factor is in proposal and
    target alike and cancels, so it is left out (otherwise the weight of a model with an empty guide would count
    log p(k) once too often).
    """
    prior_drawn = frozenset(prior_sampled_sites(guide_trace, model_trace))
    return site_log_probs(model_trace, num_particles, batch_size, prior_drawn) - site_log_probs(guide_trace, num_particles, batch_size)


def prior_sampled_sites(guide_trace: poutine.Trace, model_trace: poutine.Trace) -> list[str]:
    """Latent sites of the model that the guide does not sample (they are drawn from their prior on replay)."""
    guided = {name for name, site in guide_trace.nodes.items() if site["type"] == "sample"}
    return [name for name, site in model_trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site) and name not in guided]


def log_importance_weights(model, x: torch.Tensor, num_particles: int = 10, **kwargs: Any) -> torch.Tensor:
    """``log p(x, z_s) - log q(z_s | x)`` for ``z_s ~ q(z | x)``: a tensor of shape ``(num_particles, N)``."""
    guide_trace, model_trace = trace_particles(model, x, num_particles, **kwargs)
    return replay_log_weights(guide_trace, model_trace, num_particles, len(x))


def iw_log_likelihood(log_weights: torch.Tensor) -> torch.Tensor:
    """Per-datum importance-weighted bound ``log (1/S) sum_s w_s`` (Burda et al. 2016) from ``(S, N)`` log-weights."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])
