"""A Gaussian mixture with the component assignment enumerated (TraceEnum_ELBO), for raw data or latent codes."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..config import Field, config_dataclass
from ..data import Dataset, TrainData, sample_rows
from ..errors import ConfigError, check_int
from ..registry import register_model
from .base import ModelConfig, PPModel, data_plate

KMEANS_ROWS = 50_000  # k-means starts a mixture on data held on disk from a seeded sample of this many rows


def mixture_log_prob(x: torch.Tensor, logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``log sum_k pi_k Normal(x; loc_k, diag(scale_k^2))`` over the last dim of ``x`` ``(..., D)``: shape ``(...)``."""
    per_component = dist.Normal(locs, scales).log_prob(x.unsqueeze(-2)).sum(-1)  # (..., K)
    return torch.logsumexp(per_component + logits.log_softmax(-1), dim=-1)


def component_log_posterior(x: torch.Tensor, logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``log p(k | x)`` of a diagonal Gaussian mixture, shape ``(..., K)``."""
    joint = dist.Normal(locs, scales).log_prob(x.unsqueeze(-2)).sum(-1) + logits.log_softmax(-1)
    return joint - torch.logsumexp(joint, dim=-1, keepdim=True)


@torch.no_grad()
def sample_mixture(num: int, logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` draws ``k ~ softmax(logits)``, ``x ~ Normal(loc_k, scale_k)`` on the CPU: shape ``(num, D)``."""
    k = torch.multinomial(logits.detach().softmax(-1).cpu(), num, replacement=True, generator=generator)
    return locs.detach().cpu()[k] + scales.detach().cpu()[k] * torch.randn(num, locs.shape[-1], generator=generator)


@config_dataclass
class GMMConfig(ModelConfig):
    """The mixture's options; its likelihood is always Gaussian."""

    likelihood: str = Field("gaussian", description="p(x | k): ``gaussian``, the only one a mixture of Gaussians has.")
    num_components: int = Field(10, ge=1, description="K.")
    min_scale: float = Field(1e-3, gt=0, description="added to each component's standard deviations, so that none collapses onto one point.")
    decoder_run: str = Field("", description="set when fitted on ``latents:RUN`` data: the run whose decoder maps this mixture's "
                             "samples back to data (``ppmodels sample`` then decodes with it).")
    likelihoods: ClassVar[tuple[str, ...]] = ("gaussian",)


@register_model("gmm")
class GMM(PPModel):
    """Gaussian mixture with diagonal covariances; the component of each datum is enumerated, not sampled.

    Generative story, for each datum (D features)::

        k ~ Categorical(pi)                              (enumerated in parallel by TraceEnum_ELBO)
        x ~ Normal(mu_k, diag(sigma_k^2))

    The globals ``pi`` (as logits), ``mu`` and ``sigma`` are point estimates (``nn.Parameter``), so training is
    maximum likelihood: with ``k`` summed out exactly and no other latent, the ELBO equals ``log p(x)``. The
    guide is empty. Means start at k-means centres (:meth:`before_fit`), as EM usually does.

    Two uses: on raw arrays, and on the latent codes of a trained model (``--data latents:RUN``), where it is a
    density p(z) to sample from (``ppmodels sample`` decodes the draws with RUN's decoder) and to score with.

    Options: the fields of :class:`GMMConfig` (``ppmodels models gmm``), each described once there.

    Example::

        ppmodels train vae --data digits --epochs 3 --hidden 64 --quiet --out runs/vae
        ppmodels train gmm --data latents:runs/vae --set num_components=10 --epochs 3 --quiet --out runs/gmm
        ppmodels sample runs/gmm --out gmm-samples.png
    """

    Config = GMMConfig
    config: GMMConfig

    def __init__(self, config: GMMConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        k, d = self.config.num_components, math.prod(self.config.x_shape)
        self.logits = nn.Parameter(torch.zeros(k))
        self.locs = nn.Parameter(torch.randn(k, d))
        self.log_scales = nn.Parameter(torch.zeros(k, d))

    @classmethod
    def config_from_data(cls, dataset: Dataset, **options) -> GMMConfig:
        options = {**options, "likelihood": options.get("likelihood") or "gaussian"}
        options.setdefault("decoder_run", dataset.metadata.get("decoder_run") or None)
        return super().config_from_data(dataset, **options)

    def before_fit(self, data: TrainData) -> None:
        """Means, scales and weights from k-means on the training data (as EM is usually started)."""
        from sklearn.cluster import KMeans

        x = sample_rows(data.train.x, KMEANS_ROWS)  # rows on disk: k-means on a seeded sample of them
        x = x.reshape(len(x), -1).numpy()
        k = self.config.num_components
        if len(x) < k:
            raise ConfigError(f"gmm with {k} components needs at least {k} training points, got {len(x)}; lower num_components")
        labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(x)
        counts = np.bincount(labels, minlength=k)
        spread = np.stack([x[labels == j].std(0) if counts[j] > 1 else x.std(0) for j in range(k)])
        with torch.no_grad():
            self.locs.copy_(torch.from_numpy(np.stack([x[labels == j].mean(0) for j in range(k)])))
            self.log_scales.copy_(torch.from_numpy(np.maximum(spread, 0.1 * x.std(0) + 1e-6)).log())
            self.logits.copy_(torch.from_numpy(np.log(counts / counts.sum())).float())

    @property
    def scales(self) -> torch.Tensor:
        return self.log_scales.exp() + self.config.min_scale

    @property
    def weights_(self) -> np.ndarray:
        return self.logits.detach().softmax(-1).cpu().numpy()

    @property
    def means_(self) -> np.ndarray:
        return self.locs.detach().cpu().numpy()

    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``k ~ Categorical(pi)`` (enumerated), ``x ~ Normal(mu_k, sigma_k)``; with ``x=None`` it samples new data."""
        pyro.module(self.pyro_name, self)  # pi, mu and sigma in Pyro's param store: plain SVI trains them too
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.locs.device):
            k = pyro.sample("k", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            shape = (*k.shape, *self.config.x_shape)  # k may carry enumeration or particle dims
            x_dist = dist.Normal(self.locs[k].reshape(shape), self.scales[k].reshape(shape))
            return pyro.sample("x", x_dist.to_event(self.x_event_dim), obs=x)

    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> None:
        """Empty: the globals are point estimates and ``k`` is summed out in the model."""

    # ----- densities and the scikit-learn surface -----------------------------------------------------------
    @torch.no_grad()
    def log_density(self, x) -> torch.Tensor:
        """Exact ``log p(x)`` per datum, shape ``(N,)``."""
        x = self.check_x(x).reshape(len(x), -1)
        return mixture_log_prob(x, self.logits, self.locs, self.scales)

    def log_importance_weights(self, x: torch.Tensor, num_particles: int = 10, **kwargs) -> torch.Tensor:
        """The exact sum over ``k`` needs no sampling: every "particle" weight is ``log p(x)``."""
        return self.log_density(x).expand(num_particles, len(x))

    @torch.no_grad()
    def responsibilities(self, x) -> np.ndarray:
        """``p(k | x)``, shape ``(N, K)``."""
        x = self.check_x(x).reshape(len(x), -1)
        return component_log_posterior(x, self.logits, self.locs, self.scales).exp().cpu().numpy()

    def cluster(self, x) -> np.ndarray:
        """The most probable component of each datum, ``(N,)``."""
        return self.responsibilities(x).argmax(-1)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws from the mixture, shape ``(num, *x_shape)``."""
        check_int(num, "num", minimum=0)
        draws = sample_mixture(num, self.logits, self.locs, self.scales, generator)
        return draws.reshape(num, *self.config.x_shape).numpy()
