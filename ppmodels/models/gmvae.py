"""The Gaussian-mixture VAE: a VAE whose prior is a mixture of K Gaussians, with the component enumerated."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..config import Field, config_dataclass
from ..data import TrainData
from ..errors import ConfigError, check_int
from ..registry import register_model
from .base import data_plate
from .gmm import component_log_posterior, mixture_log_prob, sample_mixture
from .vae import VAE, VAEConfig


@config_dataclass
class GMVAEConfig(VAEConfig):
    """The VAE's options and the mixture prior's."""

    num_components: int = Field(10, ge=1, description="K, the prior's components.")
    prior_spread: float = Field(2.0, ge=0, description="standard deviation of the random initial component means (spread apart so "
                                "the components do not start on top of each other).")
    init_from: str = Field("", description="a ``gmm`` run fitted on ``latents:VAE_RUN`` (VaDE's recipe): start the encoder and "
                           "decoder from VAE_RUN (same net options) and the prior from the mixture, instead of at random.")


@register_model("gmvae")
class GMVAE(VAE):
    """VAE with a Gaussian-mixture prior (the "double peak" prior for two populations, K peaks in general).

    Generative story, for each datum::

        c ~ Categorical(pi)                          (enumerated in parallel by TraceEnum_ELBO)
        z ~ Normal(mu_c, diag(sigma_c^2))            (z_dim)
        x ~ p(x | z)                                 (the VAE's decoder, MLP or conv)

    ``pi`` (logits), ``mu`` and ``sigma`` are learned point estimates. Guide: ``q(z | x)``, the VAE's encoder;
    ``c`` has no guide site because it is summed out exactly in the model, so the objective is
    ``E_q(z|x)[log p(x | z) + log sum_c pi_c N(z; mu_c, sigma_c) - log q(z | x)]``.
    The posterior over components, ``p(c | z = E[z | x])``, clusters the data without labels (:meth:`cluster`).

    Options: the fields of :class:`GMVAEConfig` (``ppmodels models gmvae``), each described once there.

    Example::

        ppmodels train gmvae --data digits --set num_components=10 --z-dim 10 --epochs 3 --hidden 64 --quiet --out runs/gmvae

    References: N. Dilokthanakul et al., "Deep unsupervised clustering with Gaussian mixture variational
    autoencoders", 2016; Z. Jiang et al., "Variational deep embedding" (VaDE), IJCAI 2017.
    """

    Config = GMVAEConfig
    config: GMVAEConfig

    def __init__(self, config: GMVAEConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        self.prior_logits = nn.Parameter(torch.zeros(c.num_components))
        self.prior_locs = nn.Parameter(c.prior_spread * torch.randn(c.num_components, c.z_dim))
        self.prior_log_scales = nn.Parameter(torch.zeros(c.num_components, c.z_dim))
        self.started_from_ = False

    def before_fit(self, data: TrainData) -> None:
        """Refuse to train from scratch a model whose config asks to start from other runs but was not started."""
        if self.config.init_from and not self.started_from_:
            raise ConfigError(f"init_from={self.config.init_from} names runs to start from, which models do not open themselves; train with "
                              "`ppmodels train gmvae --set init_from=...` or call ppmodels.runs.start_gmvae_from_runs(model) before ppmodels.fit")

    def start_from(self, networks: dict[str, torch.Tensor], mixture) -> None:
        """Start from a VAE's encoder and decoder weights (``networks``, a state dict) and a fitted mixture's
        ``logits``, ``locs`` and ``scales`` (a :class:`~ppmodels.models.GMM`) as the prior."""
        if mixture.locs.shape != self.prior_locs.shape:
            raise ConfigError(f"init_from mixture has {tuple(mixture.locs.shape)} (components, z_dim) but this model has {tuple(self.prior_locs.shape)}; match num_components and z_dim")
        nets = {k: v for k, v in networks.items() if not k.startswith("prior_")}
        try:
            self.load_state_dict(nets, strict=False)
        except RuntimeError as exc:
            raise ConfigError(f"init_from's VAE networks do not fit this model ({str(exc).splitlines()[0]}); use the same hidden, net and channels") from None
        with torch.no_grad():
            self.prior_logits.copy_(mixture.logits)
            self.prior_locs.copy_(mixture.locs)
            self.prior_log_scales.copy_((mixture.scales - 1e-3).clamp_min(1e-4).log())
        self.started_from_ = True

    @property
    def prior_scales(self) -> torch.Tensor:
        return self.prior_log_scales.exp() + 1e-3

    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``c ~ pi`` (enumerated), ``z ~ N(mu_c, sigma_c)``, ``x ~ p(x|z)``; with ``x=None`` it samples new data."""
        pyro.module(self.pyro_name, self)
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.device):
            c = pyro.sample("c", dist.Categorical(logits=self.prior_logits), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(self.prior_locs[c], self.prior_scales[c]).to_event(1))
            return pyro.sample("x", self.x_dist(z), obs=x)

    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs) -> torch.Tensor:
        """``log p(x | z) + log p(z) - log q(z | x)`` with ``log p(z)`` summed exactly over ``c``: ``(num_particles, N)``.

        The generic version would sample ``c`` from its prior and count ``log pi_c`` as if it were a proposal's
        weight; summing ``c`` out keeps the estimator unbiased and lowers its variance.
        """
        x = self.check_x(x)
        with torch.no_grad(), self.evaluating():
            loc, scale = self.encoder(self.features(x))
            q = dist.Normal(loc, scale).to_event(1)
            z = q.sample((num_particles,))
            log_pz = mixture_log_prob(z, self.prior_logits, self.prior_locs, self.prior_scales)
            return self.x_dist(z).log_prob(x) + log_pz - q.log_prob(z)

    @torch.no_grad()
    def responsibilities(self, x) -> np.ndarray:
        """``p(c | z = E[z | x])``, shape ``(N, K)``."""
        z = torch.from_numpy(self.transform(x)).to(self.device)
        return component_log_posterior(z, self.prior_logits, self.prior_locs, self.prior_scales).exp().cpu().numpy()

    def cluster(self, x) -> np.ndarray:
        """The most probable prior component of each datum, ``(N,)``: an unsupervised clustering."""
        return self.responsibilities(x).argmax(-1)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws ``c ~ pi``, ``z ~ N(mu_c, sigma_c)``, decoded to the mean of p(x|z)."""
        check_int(num, "num", minimum=0)
        return self.decode(sample_mixture(num, self.prior_logits, self.prior_locs, self.prior_scales, generator))

    def sample_codes(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws of z from the mixture prior: ``(num, z_dim)``."""
        return sample_mixture(num, self.prior_logits, self.prior_locs, self.prior_scales, generator).numpy()
