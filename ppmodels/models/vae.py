"""The variational autoencoder (Kingma & Welling 2014) as a Pyro model/guide pair."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..config import Field, IntList, config_dataclass
from ..errors import check_int
from ..nets import ACTIVATION_NAMES, GaussianEncoder, x_decoder, x_features
from ..registry import register_model
from .base import EncoderConfig, PPModel, binomial_trials, data_plate


@config_dataclass
class VAEConfig(EncoderConfig):
    """The VAE's options; ``net``, ``channels``, ``corruption`` and ``noise_level`` come from
    :class:`~ppmodels.models.base.EncoderConfig`."""

    z_dim: int = Field(10, ge=1, description="latent size.")
    hidden: IntList = Field(default_factory=lambda: [256, 256], description="hidden layer sizes of encoder and decoder (``[]``: linear maps).")
    activation: Literal[ACTIVATION_NAMES] = Field("relu", description="nonlinearity (``linear`` for none).")
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli", "gaussian", "binomial")
    x_scale: Literal["feature", "shared"] = Field("feature", description="Gaussian likelihood noise: ``feature`` (one learned scale "
                                                  "per feature) or ``shared`` (one isotropic scale, as PPCA).")


class BinomialFraction(dist.Binomial):
    """``x = k / N`` with ``k ~ Binomial(N, p)``: scores fractions, e.g. digits pixels (counts of 16 bits, over 16)."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value * self.total_count)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return super().sample(sample_shape) / self.total_count

    @property
    def mean(self) -> torch.Tensor:
        return self.probs


def observation_dist(out: torch.Tensor, likelihood: str, x_scale: torch.Tensor | None, event_dim: int) -> dist.Distribution:
    """p(x | .) from a decoder output: Bernoulli(logits=out), BinomialFraction(N, logits=out) for ``binomial:N``, or
    Normal(out, x_scale), independent over ``event_dim``.

    The Bernoulli skips support checks so that grey values in [0, 1] score as the usual cross-entropy.
    """
    if likelihood == "bernoulli":
        base = dist.Bernoulli(logits=out, validate_args=False)
    elif binomial_trials(likelihood) is not None:
        base = BinomialFraction(total_count=binomial_trials(likelihood), logits=out, validate_args=False)
    else:
        base = dist.Normal(out, x_scale.expand_as(out))
    return base.to_event(event_dim)


@register_model("vae")
class VAE(PPModel):
    """Variational autoencoder.

    Generative story, for each datum::

        z ~ Normal(0, I)                                   (z_dim)
        x ~ Bernoulli(logits = f(z))  or  Normal(f(z), sigma)   (x_shape; sigma learned per feature)

    Guide: ``q(z | x) = Normal(mu(x), sigma(x))`` with an MLP encoder.

    Sample sites: ``z`` (batch, z_dim) and ``x`` (batch, *x_shape), under the plate ``data``.

    Options: the fields of :class:`VAEConfig` (``ppmodels models vae``), each described once there. With
    ``hidden=[]`` and a Gaussian likelihood the decoder is linear: the model is probabilistic PCA with an amortized
    guide. ``corruption`` makes it a denoising VAE (:mod:`ppmodels.corruption`).

    Example::

        data = ppmodels.data.load_dataset("digits")
        vae = VAE(x_shape=data.x_shape, z_dim=8, hidden=[64]).fit(data, TrainConfig(epochs=3))   # more epochs for real use
        z = vae.transform(data.split("test").x)        # (N, 8) posterior means

    Reference: D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    Config = VAEConfig
    config: VAEConfig

    def __init__(self, config: VAEConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        # the MLP's features are the flattened pixels (no weights), so mlp runs keep their old state_dict keys
        self.features = x_features(c.net, c.x_shape, c.channels, c.activation)
        self.encoder = GaussianEncoder(self.features.out_dim, c.hidden, c.z_dim, c.activation)
        self.decoder = x_decoder(c.net, c.z_dim, list(reversed(c.hidden)), c.x_shape, c.channels, c.activation)
        # per-feature observation noise of the Gaussian likelihood (unused, but harmless, for Bernoulli)
        self.x_log_scale = nn.Parameter(torch.zeros(c.x_shape if c.x_scale == "feature" else ()))

    def x_dist(self, z: torch.Tensor) -> dist.Distribution:
        """p(x | z)."""
        return observation_dist(self.decoder(z), self.config.likelihood, self.x_log_scale.exp(), self.x_event_dim)

    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x ~ p(x|z)``; with ``x=None`` it samples ``batch_size`` new data."""
        pyro.module(self.pyro_name, self)
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            zeros = torch.zeros(n, self.config.z_dim, device=self.device)
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            return pyro.sample("x", self.x_dist(z), obs=x)

    def guide(self, x: torch.Tensor, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``z ~ q(z|x)``."""
        pyro.module(self.pyro_name, self)
        with data_plate(len(x), num_data, x.device):
            loc, scale = self.encoder(self.features(self.encoder_input(x)))
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # ----- scikit-learn style helpers -----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(z_loc, z_scale)`` of q(z|x), each ``(N, z_dim)``."""
        with self.evaluating():
            parts = [self.encoder(self.features(xb)) for xb in self.checked_batches(x, batch_size)]
        return torch.cat([p[0] for p in parts]).cpu().numpy(), torch.cat([p[1] for p in parts]).cpu().numpy()

    def transform(self, x) -> np.ndarray:
        """Latent features: the posterior means ``(N, z_dim)``."""
        return self.encode(x)[0]

    @torch.no_grad()
    def decode(self, z) -> np.ndarray:
        """Mean of p(x|z) for latents ``z`` ``(N, z_dim)``: pixel probabilities or Gaussian means, ``(N, *x_shape)``."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.device)
        with self.evaluating():
            out = self.decoder(z)
        return (out if self.config.likelihood == "gaussian" else out.sigmoid()).cpu().numpy()

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws from the prior, decoded to the mean of p(x|z): ``(num, *x_shape)``."""
        check_int(num, "num", minimum=0)
        z = torch.randn(num, self.config.z_dim, generator=generator)
        return self.decode(z)

    def sample_codes(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws ``z ~ N(0, I)``: ``(num, z_dim)``, the codes :meth:`sample` decodes for one generator seed."""
        return torch.randn(num, self.config.z_dim, generator=generator).numpy()

    def reconstruct(self, x) -> np.ndarray:
        """Decoded posterior means: the mean of p(x | z = E[z|x])."""
        return self.decode(self.transform(x))
