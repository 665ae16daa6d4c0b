"""Probabilistic PCA (Tipping & Bishop 1999) as a Pyro model/guide pair with the exact posterior as guide."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pydantic import model_validator
from torch import nn

from ..config import Field, config_dataclass
from ..data import Dataset, TrainData, map_rows, row_moments
from ..errors import ConfigError, check_int
from ..registry import register_model
from .base import ModelConfig, PPModel, data_plate


INITS = ("closed_form", "random")
#: ``em``: one EM iteration per pass over the data, the Pyro pair's closed-form update (E-step: the guide's exact
#: posterior moments; M-step: W and sigma^2 that maximise the expected log-likelihood); ``adam``: SVI's gradient steps
OPTIMIZERS = ("em", "adam")


def closed_form_ppca(x, z_dim: int) -> dict[str, np.ndarray | float]:
    """The maximum-likelihood PPCA of data ``x`` (N, D; rows on disk are read in one streaming pass) in closed form
    (Tipping & Bishop 1999, eqs. 7-8), in float64.

    With ``S`` the sample covariance (divided by N), ``lambda_1 >= ... >= lambda_D`` its eigenvalues and ``U_K`` the
    top-K eigenvectors: ``mu = mean(x)``, ``sigma^2 = mean(lambda_{K+1..D})``, ``W = U_K (Lambda_K - sigma^2 I)^1/2``
    (up to a rotation on the right, the likelihood's symmetry).

    :returns: ``weight`` (D, K), ``loc`` (D,), ``noise_variance``, ``components`` (D, K, orthonormal, largest first),
        ``eigenvalues`` (D,) and ``log_likelihood``: the maximum of the mean log-likelihood per datum.
    """
    loc, covariance = row_moments(x)
    d = len(loc)
    if not 1 <= z_dim < d:
        raise ConfigError(f"ppca needs 1 <= z_dim < {d} (the number of features), got {z_dim}")
    eigval, eigvec = np.linalg.eigh(covariance)
    eigval, eigvec = np.clip(eigval[::-1], 0.0, None), eigvec[:, ::-1]
    noise_variance = max(float(eigval[z_dim:].mean()), 1e-12)
    weight = eigvec[:, :z_dim] * np.sqrt(np.clip(eigval[:z_dim] - noise_variance, 0.0, None))
    kept = np.maximum(eigval[:z_dim], noise_variance)
    log_likelihood = -0.5 * (d * math.log(2 * math.pi) + np.log(kept).sum() + (d - z_dim) * math.log(noise_variance)
                             + (eigval[:z_dim] / kept).sum() + eigval[z_dim:].sum() / noise_variance)
    return {"weight": weight, "loc": loc, "noise_variance": noise_variance, "components": eigvec[:, :z_dim],
            "eigenvalues": eigval, "log_likelihood": float(log_likelihood)}


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, largest first, between the spans of the orthonormal bases ``a`` and ``b``."""
    cosines = np.clip(np.linalg.svd(np.asarray(a).T @ np.asarray(b), compute_uv=False), -1.0, 1.0)
    return np.degrees(np.arccos(cosines))[::-1]


@config_dataclass
class PPCAConfig(ModelConfig):
    """PPCA's options; its likelihood is always Gaussian."""

    likelihood: str = Field("gaussian", description="p(x | z): ``gaussian``, the only one PPCA has.")
    z_dim: int = Field(2, ge=1, description="number of principal components K (less than the number of features D).")
    init: Literal[INITS] = Field("random", description="``random``: a random W of the data's scale, mu the sample mean (the optimiser "
                                 "has to find the rest); ``closed_form``: start at the maximum-likelihood solution of the training data "
                                 "(Tipping & Bishop 1999), so training only has to hold it.")
    optimizer: Literal[OPTIMIZERS] = Field("em", description="``em``: one EM iteration per pass over the data, the model/guide pair's "
                                           "closed-form update (from a random start within 0.1 degrees and 0.1% of the closed form in "
                                           "5-49 iterations on digits and synthetic data, z_dim 2-10); ``adam``: SVI's Adam steps on the "
                                           "exact ELBO (hundreds to thousands of full-batch steps; needed under several processes).")
    likelihoods: ClassVar[tuple[str, ...]] = ("gaussian",)

    @model_validator(mode="after")
    def _check_z_dim(self) -> PPCAConfig:
        if self.x_shape and not self.z_dim < math.prod(self.x_shape):
            raise ConfigError(f"ppca needs 1 <= z_dim < {math.prod(self.x_shape)} (the number of features), got {self.z_dim}")
        return self


@register_model("ppca")
class PPCA(PPModel):
    """Probabilistic PCA: a linear-Gaussian latent variable model.

    Generative story, for each datum (D features, K = z_dim)::

        z ~ Normal(0, I_K)
        x ~ Normal(W z + mu, sigma^2 I_D)

    ``W`` (D x K), ``mu`` and ``sigma`` are point estimates (``nn.Parameter``), fitted by maximum likelihood: by EM
    (:meth:`closed_form_step`, the default ``optimizer``) or by SVI's Adam steps.

    Guide: the exact posterior ``q(z | x) = Normal(M^-1 W^T (x - mu), sigma^2 M^-1)`` with ``M = W^T W + sigma^2 I``,
    computed from the current parameters. The KL term is then zero for every parameter value, so the ELBO *is*
    ``log p(x) = log Normal(x; mu, W W^T + sigma^2 I)``, with zero Monte Carlo variance: SVI here is gradient
    ascent on the exact log-likelihood. At its maximum the columns of ``W`` span the top-K principal subspace
    and ``sigma^2`` is the mean of the discarded eigenvalues of the sample covariance.

    Options: the fields of :class:`PPCAConfig` (``ppmodels models ppca``), each described once there.

    Example::

        ppca = PPCA(x_shape=[1, 8, 8], z_dim=5).fit(load_dataset("digits"), TrainConfig(epochs=5, batch_size=1000))   # EM from a random start
        ppca.noise_variance_, ppca.components_        # sigma^2 and an orthonormal basis (64, 5) of span(W)

    Reference: M. E. Tipping, C. M. Bishop, "Probabilistic principal component analysis", JRSS B 61(3), 1999.
    """

    Config = PPCAConfig
    config: PPCAConfig
    #: the target is the maximum of the training likelihood: the best validation ELBO may come at a transient
    selects_on_training_data = True

    def __init__(self, config: PPCAConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        d, k = math.prod(self.config.x_shape), self.config.z_dim
        self.weight = nn.Parameter(0.1 * torch.randn(d, k))
        self.loc = nn.Parameter(torch.zeros(d))
        self.log_noise_scale = nn.Parameter(torch.zeros(()))

    @classmethod
    def config_from_data(cls, dataset: Dataset, **options) -> PPCAConfig:
        # PPCA is Gaussian whatever the data's range suggests (digits in [0, 1] would otherwise ask for Bernoulli)
        options = {**options, "likelihood": options.get("likelihood") or "gaussian"}
        return super().config_from_data(dataset, **options)

    def before_fit(self, data: TrainData) -> None:
        """Start at the closed-form maximum of the training data (``init="closed_form"``), or at mu = the sample
        mean (its ML value whatever W is) and a random W of the data's scale (``init="random"``).

        The likelihood is flat along the length of W's columns, so Adam's bounded steps take long to grow a
        small W to eigenvalues of 100; a random direction whose W W^T carries the data's total variance does not.
        From a random start Adam still needs hundreds of full-batch steps to turn W into the principal subspace;
        :meth:`fit_checks` measures how far it got.
        """
        x = data.train.x  # rows on disk are read in one streaming pass, by either start
        d, k = self.weight.shape
        with torch.no_grad():
            if self.config.init == "closed_form":
                best = closed_form_ppca(x, k)
                loc, weight = best["loc"], torch.as_tensor(best["weight"], dtype=self.weight.dtype)
                self.log_noise_scale.fill_(0.5 * math.log(best["noise_variance"]))
            else:
                loc, covariance = row_moments(x)
                weight = torch.randn(d, k) * math.sqrt(np.trace(covariance) / (d * k))
            self.loc.copy_(torch.as_tensor(loc, dtype=self.loc.dtype))
            self.weight.copy_(weight)

    @property
    def updates_in_closed_form(self) -> bool:
        return self.config.optimizer == "em"

    @torch.no_grad()
    def closed_form_step(self, batch: dict) -> float:
        """EM (Tipping & Bishop 1999, section 3.2) written with the guide: the E-step accumulates, batch by batch, the
        exact posterior moments E[z | x] and E[z z^T | x] of :meth:`posterior`; once a pass over ``num_data`` rows is
        complete the M-step sets ``W = sum (x - mu) E[z]^T (sum E[z z^T])^-1`` and
        ``sigma^2 = sum (|x - mu|^2 - 2 E[z]^T W^T (x - mu) + tr(E[z z^T] W^T W)) / (N D)``, and mu becomes the sample
        mean (its maximum for any W) for the next pass. Each pass raises the likelihood. Returns the batch's loss before the update."""
        x = self._flat(batch["x"]).double()
        # the negative ELBO, which equals -log p(x) here (exact guide), scaled to the whole data as the plate scales it;
        # in float64, so that the likelihood's rise (monotone under EM) is not lost in rounding when the epoch is selected
        w = self.weight.double()
        cov = w @ w.T + float(self.noise_scale) ** 2 * torch.eye(len(w), dtype=torch.float64, device=w.device)
        log_p = dist.MultivariateNormal(self.loc.double(), covariance_matrix=cov).log_prob(x)
        loss = -float(log_p.sum()) * (batch.get("num_data") or len(x)) / len(x)
        loc, scale_tril = self.posterior(batch["x"])
        mean, cov = loc.double(), (scale_tril @ scale_tril.T).double()
        centred = x - self.loc.double()
        stats = self._em_stats if getattr(self, "_em_stats", None) is not None else {"count": 0, "x": 0.0, "xz": 0.0, "zz": 0.0, "xx": 0.0}
        stats["count"] += len(x)
        stats["x"] = stats["x"] + x.sum(0)
        stats["xz"] = stats["xz"] + centred.T @ mean
        stats["zz"] = stats["zz"] + len(x) * cov + mean.T @ mean
        stats["xx"] = stats["xx"] + float((centred**2).sum())
        self._em_stats = stats
        if stats["count"] >= (batch.get("num_data") or len(x)):
            weight = stats["xz"] @ torch.linalg.inv(stats["zz"])
            d = weight.shape[0]
            var = (stats["xx"] - 2 * float((weight * stats["xz"]).sum()) + float((stats["zz"] * (weight.T @ weight)).sum())) / (stats["count"] * d)
            self.weight.copy_(weight.to(self.weight.dtype))
            self.log_noise_scale.fill_(0.5 * math.log(max(var, 1e-12)))
            self.loc.copy_((stats["x"] / stats["count"]).to(self.loc.dtype))  # the sample mean, for the next E-step
            self._em_stats = None
        return loss

    def fit_checks(self, data: TrainData) -> dict[str, float]:
        """The fit against the closed-form maximum on the training data: ``closed_form_angle_deg`` (the largest
        principal angle between the fitted and the ML subspace), ``closed_form_noise_variance`` and
        ``closed_form_log_likelihood_gap`` (ML minus fitted mean log-likelihood per datum, >= 0)."""
        best = closed_form_ppca(data.train.x, self.config.z_dim)
        fitted = float(map_rows(self.log_marginal, data.train.x).double().mean())
        return {"closed_form_angle_deg": float(principal_angles(self.components_.astype(np.float64), best["components"]).max()),
                "closed_form_noise_variance": best["noise_variance"], "noise_variance": self.noise_variance_,
                "closed_form_log_likelihood_gap": best["log_likelihood"] - fitted}

    @property
    def noise_scale(self) -> torch.Tensor:
        return self.log_noise_scale.exp()

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale_tril)`` of the exact p(z | x) for a batch ``x``."""
        w, var = self.weight, self.noise_scale**2
        m = w.T @ w + var * torch.eye(w.shape[1], device=w.device)
        m_inv = torch.linalg.inv(m)
        loc = (self._flat(x) - self.loc) @ w @ m_inv
        return loc, torch.linalg.cholesky(var * m_inv)

    def model(self, x: torch.Tensor | None = None, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x ~ N(W z + mu, sigma^2 I)``; with ``x=None`` it samples ``batch_size`` new data."""
        pyro.module(self.pyro_name, self)  # W, mu and sigma in Pyro's param store: plain SVI trains them too
        n = len(x) if x is not None else batch_size or 1
        with data_plate(n, num_data, self.weight.device):
            z = pyro.sample("z", dist.Normal(torch.zeros(n, self.config.z_dim, device=self.weight.device), 1.0).to_event(1))
            mean = (z @ self.weight.T + self.loc).reshape(*z.shape[:-1], *self.config.x_shape)
            return pyro.sample("x", dist.Normal(mean, self.noise_scale).to_event(self.x_event_dim), obs=x)

    def guide(self, x: torch.Tensor, num_data: int | None = None, batch_size: int | None = None) -> torch.Tensor:
        """``z ~ p(z | x)``, the exact posterior."""
        pyro.module(self.pyro_name, self)
        with data_plate(len(x), num_data, x.device):
            loc, scale_tril = self.posterior(x)
            return pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=scale_tril))

    # ----- closed forms and the scikit-learn surface --------------------------------------------------------
    @torch.no_grad()
    def log_marginal(self, x) -> torch.Tensor:
        """Exact ``log p(x) = log Normal(x; mu, W W^T + sigma^2 I)`` per datum, shape ``(N,)``."""
        x = self._flat(self.check_x(x))
        cov = self.weight @ self.weight.T + self.noise_scale**2 * torch.eye(len(self.loc), device=x.device)
        return dist.MultivariateNormal(self.loc, covariance_matrix=cov).log_prob(x)

    @property
    def components_(self) -> np.ndarray:
        """An orthonormal basis ``(D, K)`` of the learned principal subspace span(W)."""
        return torch.linalg.qr(self.weight.detach())[0].cpu().numpy()

    @property
    def noise_variance_(self) -> float:
        return float(self.noise_scale.detach() ** 2)

    @torch.no_grad()
    def encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(z_loc, z_scale)`` (marginal standard deviations), each ``(N, z_dim)``."""
        loc, scale_tril = self.posterior(self.check_x(x))
        scale = scale_tril.pow(2).sum(-1).sqrt().expand_as(loc)
        return loc.cpu().numpy(), scale.cpu().numpy()

    def transform(self, x) -> np.ndarray:
        return self.encode(x)[0]

    @torch.no_grad()
    def decode(self, z) -> np.ndarray:
        """``W z + mu`` reshaped to the data shape."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=self.weight.device)
        return (z @ self.weight.T + self.loc).reshape(len(z), *self.config.x_shape).cpu().numpy()

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``num`` draws ``W z + mu`` (the mean of p(x|z)) for ``z ~ N(0, I)``."""
        check_int(num, "num", minimum=0)
        return self.decode(torch.randn(num, self.config.z_dim, generator=generator))
