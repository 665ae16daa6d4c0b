"""Hand-written torch losses: the ELBOs a user would write without Pyro, on the models' own networks.

They are the timing baseline of ``benchmarks/speed.py`` and the brute-force oracle of the tests (the M2 ELBO as an
explicit sum over every class). Each draws ``z`` exactly as the Pyro guide does (one reparameterised draw of
shape ``(K, B, z_dim)`` for an enumerated ``y``, then the labeled batch), so with the same seed they agree with
``TraceEnum_ELBO`` draw for draw. They deliberately stay naive, as one writes them by hand: two passes (unlabeled,
labeled), and the M2 encoder runs on ``[x; y]`` concatenated for every (datum, class) pair.
"""

from __future__ import annotations

import torch
from torch.distributions import Normal
from torch.nn import functional as F

from ppmodels.nets import broadcast_cat


def encode(encoder, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``GaussianEncoder``'s ``(loc, scale)`` computed the plain way: its layers applied to the concatenated inputs."""
    loc, raw_scale = encoder.net.net(broadcast_cat(*inputs)).chunk(2, dim=-1)
    return loc, F.softplus(raw_scale) + 1e-4


def _log_ratio(loc: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A draw ``z ~ N(loc, scale)`` and ``log N(z; 0, I) - log N(z; loc, scale)`` summed over the last dim."""
    q = Normal(loc, scale, validate_args=False)
    z = q.rsample()
    return z, (Normal(0.0, 1.0, validate_args=False).log_prob(z) - q.log_prob(z)).sum(-1)


def m2_elbo(m2, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Per-datum M2 ELBO ``(B,)``: an exact sum over the K classes for unlabeled ``x``, ``y`` observed otherwise."""
    k = m2.config.num_classes
    ys = torch.eye(k, device=x.device).unsqueeze(1) if y is None else F.one_hot(y, k).to(x)  # (K, 1, K): Pyro's enumeration layout
    loc, scale = encode(m2.encoder, m2.features(x), ys)
    z, log_ratio = _log_ratio(loc, scale)
    terms = m2.x_dist(z, ys).log_prob(x) + log_ratio + (ys * m2.log_prior).sum(-1)
    if y is not None:
        return terms
    log_q = m2.y_logits(x).log_softmax(-1).T  # (K, B)
    return (log_q.exp() * (terms - log_q)).sum(0)  # E_q(y|x)[log p(x, y, z) - log q(z|x,y) - log q(y|x)]


def m2_loss(m2, batch: dict) -> torch.Tensor:
    """``-J_alpha`` of an M2 training batch: unlabeled ELBO * N_u/B_u + weighted labeled ELBO + alpha term."""
    total = torch.zeros((), device=m2.log_prior.device)
    if "x" in batch:
        total = total - m2_elbo(m2, batch["x"]).sum() * batch["num_data"] / len(batch["x"])
    if "x_labeled" in batch:
        x, y, w = batch["x_labeled"], batch["y_labeled"], batch["labeled_weights"]
        total = total - (w * m2_elbo(m2, x, y)).sum()
        if batch["alpha"] != 0:
            nll = F.cross_entropy(m2.y_logits(x), y, reduction="none")
            total = total + batch["alpha"] * (w * nll).sum()
    return total


def vae_loss(vae, batch: dict) -> torch.Tensor:
    """``-ELBO`` of a VAE batch scaled by ``num_data / B``."""
    x = batch["x"]
    loc, scale = vae.encoder(vae.features(x))
    z, log_ratio = _log_ratio(loc, scale)
    return -(vae.x_dist(z).log_prob(x) + log_ratio).sum() * batch["num_data"] / len(x)
