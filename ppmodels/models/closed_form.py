"""The training objectives of the VAE and M2 written directly in torch: Pyro's ELBO without Pyro's bookkeeping.

Each model's Pyro ``model()``/``guide()`` pair stays the definition of its objective (``PPModel.pyro_loss``,
``TraceEnum_ELBO.differentiable_loss``); the functions here compute the same estimator, term for term and draw for
draw, so that the trainer can skip tracing, replaying and enumeration bookkeeping on every step (the tests check
values and gradients against Pyro with the same seed). What Pyro does, and what is done here instead:

* every reparameterised ``z`` is one ``loc + scale * eps`` with ``eps`` drawn in the guide's order and shape
  (Pyro draws ``(K, B, z_dim)`` for a ``y`` enumerated over K classes, then the labeled batch's ``(B_l, z_dim)``),
  so a seeded step gives the same numbers either way;
* ``TraceEnum_ELBO`` sums over the enumerated ``y`` exactly: ``U(x) = sum_y q(y|x) [L(x, y, z_y) - log q(y|x)]``;
* no trace, replay, plate scaling or enumeration bookkeeping runs: each part goes once through each network
  (the classifier sees both parts in one call).

The distributions come from the models' own helpers (``x_dist``, the encoders), so a change to a model's
likelihood changes both paths alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch.distributions import Normal
from torch.nn import functional as F

if TYPE_CHECKING:
    from .m2 import M2
    from .vae import VAE


def gaussian_terms(loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``z = loc + scale * eps`` and ``log p(z) - log q(z)`` summed over its last dim, with ``p = N(0, I)`` and
    ``q = N(loc, scale)`` scored at ``z`` itself, as Pyro scores it (the gradient flows through every path)."""
    q = Normal(loc, scale)  # argument validation as in Pyro's guide: non-finite encoder outputs raise ValueError
    z = loc + scale * eps
    log_ratio = Normal(0.0, 1.0).log_prob(z) - q.log_prob(z)
    return z, log_ratio.sum(-1)


def runs_own_pair(model: Any, cls: type) -> bool:
    """Whether ``model`` trains ``cls``'s own Pyro pair. A subclass with another ``model`` or ``guide`` (GMVAE's
    mixture prior, say) keeps Pyro's loss: the closed form of ``cls`` would be a different objective."""
    return type(model).model is cls.model and type(model).guide is cls.guide


def vae_closed_form_loss(vae: "VAE", batch: dict[str, Any]) -> torch.Tensor:
    """``-ELBO`` of a VAE batch scaled by ``num_data / B``: equals ``vae.pyro_loss(batch)``."""
    x = batch["x"]
    loc, scale = vae.encoder(vae.features(vae.encoder_input(x)))  # a corrupted copy in denoising training
    z, log_ratio = gaussian_terms(loc, scale, torch.randn_like(loc))
    elbo = (vae.x_dist(z).log_prob(x) + log_ratio).sum()
    return -elbo * (batch.get("num_data") or len(x)) / len(x)


def m2_closed_form_loss(m2: "M2", batch: dict[str, Any]) -> torch.Tensor:
    """``-J_alpha`` of an M2 batch (unlabeled ``x``, labeled ``x_labeled``... as ``M2.training_batches`` yields):
    equals ``m2.pyro_loss(batch)``. The unlabeled part keeps Pyro's broadcast layout (every class ``(K, 1, K)``
    against the images ``(B_u, ...)``), so no image is copied K times. Random numbers are drawn in the guides'
    order: the unlabeled part's corruption (denoising only) and ``z``, then the labeled part's."""
    x_u, x_l = batch.get("x"), batch.get("x_labeled")
    x_in = None if x_u is None else m2.encoder_input(x_u)
    alpha = batch.get("alpha", 0.0) if x_l is not None else 0.0
    classified = [t for t in (x_in, x_l if alpha != 0 else None) if t is not None]
    logits = m2.y_logits(_cat(classified)) if classified else None  # q(y|x) of both parts in one call
    total = torch.zeros((), device=m2.log_prior.device)
    if x_u is not None:
        k, b_u = m2.config.num_classes, len(x_u)
        every_class = torch.eye(k, dtype=m2.log_prior.dtype, device=m2.log_prior.device).unsqueeze(1)
        terms = m2_elbo_terms(m2, x_u, x_in, every_class)  # (K, B_u)
        log_q = logits[:b_u].log_softmax(-1).T
        elbo_u = (log_q.exp() * (terms - log_q)).sum()  # sum_y q(y|x) [log p(x,y,z_y) - log q(z_y|x,y) - log q(y|x)]
        total = total - elbo_u * (batch.get("num_data") or b_u) / b_u
    if x_l is not None:
        w, y = batch["labeled_weights"], batch["y_labeled"]
        total = total - (w * m2_elbo_terms(m2, x_l, m2.encoder_input(x_l), m2.one_hot(y))).sum()
        if alpha != 0:  # the classification term scores the clean labeled images, as M2.classification_loss does
            nll = F.cross_entropy(logits[len(logits) - len(x_l) :], y.long(), reduction="none")
            total = total + alpha * (w * nll).sum()
    return total


def m2_elbo_terms(m2: "M2", x: torch.Tensor, x_in: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log p(x, y, z) - log q(z | x_in, y)`` for one draw ``z ~ q(z | x_in, y)`` per (class, datum) in ``y``'s
    layout; ``x_in`` is what the encoder sees (``x``, or its corrupted copy)."""
    loc, scale = m2.encoder(m2.features(x_in), y)
    z, log_ratio = gaussian_terms(loc, scale, torch.randn_like(loc))
    return m2.x_dist(z, y).log_prob(x) + log_ratio + (y * m2.log_prior.log_softmax(-1)).sum(-1)


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


