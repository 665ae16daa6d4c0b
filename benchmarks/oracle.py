"""Hand-written torch losses: the ELBOs a user would write without Pyro, on the models' own networks.

They are the timing baseline of ``benchmarks/speed.py`` and the brute-force oracle of the tests (the M2 and ADGM
ELBOs as explicit sums over every class). Each draws ``z`` exactly as the Pyro guide does (one reparameterised draw of
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


def adgm_elbo(adgm, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Per-datum ADGM ELBO ``(B,)``: one draw ``a ~ q(a|x)``, then as :func:`m2_elbo` with ``q(y|a,x)``, ``q(z|a,y,x)``
    and the extra ``log p(a|x,y,z) - log q(a|x)``; an exact sum over the K classes for unlabeled ``x``."""
    k = adgm.config.num_classes
    features = adgm.features(x)
    q_a = Normal(*encode(adgm.a_encoder, features), validate_args=False)
    a = q_a.rsample()
    ys = torch.eye(k, device=x.device).unsqueeze(1) if y is None else F.one_hot(y, k).to(x)
    z, log_ratio = _log_ratio(*encode(adgm.encoder, features, a, ys))
    log_p_a = Normal(*encode(adgm.a_decoder, features, ys, z), validate_args=False).log_prob(a).sum(-1)
    terms = adgm.x_dist(z, ys).log_prob(x) + log_ratio + (ys * adgm.log_prior).sum(-1) + log_p_a - q_a.log_prob(a).sum(-1)
    if y is not None:
        return terms
    log_q = adgm.classifier.net.net(broadcast_cat(features, a)).log_softmax(-1).T  # (K, B)
    return (log_q.exp() * (terms - log_q)).sum(0)


def m2_nll(m2, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """M2's classification term per labeled datum: ``-log q(y|x)``."""
    return F.cross_entropy(m2.y_logits(x), y, reduction="none")


def adgm_nll(adgm, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The ADGM's classification term per labeled datum, one draw ``a ~ q(a|x)``: ``-log q(y|a,x)``."""
    features = adgm.features(x)
    a = Normal(*encode(adgm.a_encoder, features), validate_args=False).rsample()
    return F.cross_entropy(adgm.classifier.net.net(broadcast_cat(features, a)), y, reduction="none")


def m2_loss(m2, batch: dict, elbo=m2_elbo, nll=m2_nll) -> torch.Tensor:
    """``-J_alpha`` of an M2 training batch: unlabeled ELBO * N_u/B_u + weighted labeled ELBO + alpha term
    (``elbo=adgm_elbo, nll=adgm_nll``: the ADGM's, which has the same objective over its latents)."""
    total = torch.zeros((), device=m2.log_prior.device)
    if "x" in batch:
        total = total - elbo(m2, batch["x"]).sum() * batch["num_data"] / len(batch["x"])
    if "x_labeled" in batch:
        x, y, w = batch["x_labeled"], batch["y_labeled"], batch["labeled_weights"]
        total = total - (w * elbo(m2, x, y)).sum()
        if batch["alpha"] != 0:
            total = total + batch["alpha"] * (w * nll(m2, x, y)).sum()
    return total


def vae_loss(vae, batch: dict) -> torch.Tensor:
    """``-ELBO`` of a VAE batch scaled by ``num_data / B``."""
    x = batch["x"]
    loc, scale = vae.encoder(vae.features(x))
    z, log_ratio = _log_ratio(loc, scale)
    return -(vae.x_dist(z).log_prob(x) + log_ratio).sum() * batch["num_data"] / len(x)
