"""A NUTS gold standard for probabilistic PCA: the full posterior over W, mu and sigma against the SVI point estimate.

The PPCA run fits W, mu and sigma as point estimates (maximum likelihood, since its guide over z is exact). NUTS samples
their posterior under weak priors from the marginal likelihood, z integrated out::

    x~ = (x - mean(x)) / s                      s: the data's overall standard deviation (one scalar)
    W~_dk ~ Normal(0, 3)        mu~_d ~ Normal(0, 3)        sigma~ ~ HalfNormal(3)
    x~_n  ~ MultivariateNormal(mu~, W~ W~^T + sigma~^2 I)
    W = s W~,  mu = mean(x) + s mu~,  sigma = s sigma~

A scalar rescaling keeps the noise isotropic and the model rotation-invariant, and the priors, on the standardized
scale, are wide (a PPCA on standardized data has eigenvalues of W W^T up to about D and sigma up to about 1).

W is identified only up to a rotation R (W R gives the same likelihood), so NUTS chains wander along that orbit and
R-hat or posterior means of W's entries mean nothing. The comparison uses rotation-invariant quantities only:
sigma^2, the eigenvalues of W W^T (those of W^T W, K x K) and the principal subspace, summarized by the posterior
mean of its projector W (W^T W)^-1 W^T, whose top-K eigenvectors span the "posterior-mean subspace".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

from .errors import ConfigError

#: prior scales on the standardized data (see the module docstring)
PRIOR_SCALE = 3.0


def ppca_marginal_model(x: torch.Tensor, latent_dim: int) -> None:
    """PPCA with z integrated out, on standardized data ``x`` (N, D); the priors of the module docstring."""
    n, d = x.shape
    w = pyro.sample("W", dist.Normal(torch.zeros(d, latent_dim, dtype=x.dtype), PRIOR_SCALE).to_event(2))
    mu = pyro.sample("mu", dist.Normal(torch.zeros(d, dtype=x.dtype), PRIOR_SCALE).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.tensor(PRIOR_SCALE, dtype=x.dtype)))
    cov = w @ w.T + sigma**2 * torch.eye(d, dtype=x.dtype)
    with pyro.plate("data", n):
        pyro.sample("x", dist.MultivariateNormal(mu, covariance_matrix=cov), obs=x)


def nuts_ppca(x, latent_dim: int, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """NUTS draws of the PPCA posterior for data ``x`` (N, D), on the data's own scale.

    Chains run one after another in this process (on a small machine Pyro would run them in turn anyway).

    :returns: ``{"W": (chain, draw, D, K), "mu": (chain, draw, D), "sigma": (chain, draw)}`` as float64 arrays.

    Example::

        draws = nuts_ppca(x, latent_dim=2, num_samples=300, warmup=300, num_chains=2)
        draws["sigma"].shape   # (2, 300)
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    if not 1 <= latent_dim < x.shape[1]:
        raise ConfigError(f"NUTS for ppca needs 1 <= latent_dim < {x.shape[1]} (the number of features), got {latent_dim}")
    center, scale = x.mean(0), x.std().clamp_min(1e-12)
    standardized = (x - center) / scale
    chains = []
    for chain in range(num_chains):  # separate seeds give the chains independent initial points
        pyro.set_rng_seed(seed + chain)
        mcmc = MCMC(NUTS(ppca_marginal_model), num_samples=num_samples, warmup_steps=warmup, num_chains=1, disable_progbar=True)
        mcmc.run(standardized, latent_dim)
        chains.append({name: value.detach().numpy() for name, value in mcmc.get_samples().items()})
    draws = {name: np.stack([c[name] for c in chains]) for name in ("W", "mu", "sigma")}
    scale, center = float(scale), center.numpy()
    return {"W": scale * draws["W"], "mu": center + scale * draws["mu"], "sigma": scale * draws["sigma"]}


def invariant_quantities(w: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """``sigma2`` (...) and ``eigenvalue`` (..., K): the eigenvalues of W W^T, largest first, for W of shape (..., D, K)."""
    eig = np.linalg.eigvalsh(np.swapaxes(w, -1, -2) @ w)[..., ::-1]
    return {"sigma2": np.asarray(sigma) ** 2, "eigenvalue": np.ascontiguousarray(eig)}


def mean_subspace(w: np.ndarray) -> np.ndarray:
    """Orthonormal basis (D, K) of the top-K eigenvectors of the posterior mean of the projector onto span(W)."""
    wt = np.swapaxes(w, -1, -2)
    projector = w @ np.linalg.solve(wt @ w, wt)
    _, vectors = np.linalg.eigh(projector.reshape(-1, *projector.shape[-2:]).mean(0))
    return vectors[:, ::-1][:, : w.shape[-1]]


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, largest first, between the spans of the orthonormal bases ``a`` and ``b``."""
    cosines = np.clip(np.linalg.svd(a.T @ b, compute_uv=False), -1.0, 1.0)
    return np.degrees(np.arccos(cosines))[::-1]


def compare_ppca(run_model, x, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0) -> dict[str, Any]:
    """Run :func:`nuts_ppca` on ``x`` and compare its posterior with the SVI point estimate of ``run_model`` (a PPCA).

    For each rotation-invariant quantity (``sigma2``, ``eigenvalue_k``): R-hat and bulk ESS of the NUTS chains
    (``arviz.rhat``/``arviz.ess`` on an InferenceData of dims (chain, draw, ...)), the NUTS posterior mean and sd, the
    SVI value and ``z`` = (SVI - mean) / sd. ``subspace_angles_deg``: principal angles between the SVI subspace and
    the NUTS posterior-mean subspace. R-hat of W's entries is not reported: W is identified only up to rotation.

    Example::

        gold = compare_ppca(load("runs/ppca"), x_train[:300])
        gold["quantities"]["sigma2"]["z"], gold["max_rhat"]
    """
    from .diagnostics import _arviz

    az = _arviz()
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    k = run_model.config.z_dim
    draws = nuts_ppca(x, k, num_samples, warmup, num_chains, seed)
    nuts = invariant_quantities(draws["W"], draws["sigma"])
    w_svi = run_model.weight.detach().double().cpu().numpy()
    svi = invariant_quantities(w_svi, np.float64(run_model.noise_variance_) ** 0.5)
    posterior = {"sigma2": nuts["sigma2"], **{f"eigenvalue_{i + 1}": nuts["eigenvalue"][..., i] for i in range(k)}}
    svi_values = {"sigma2": float(svi["sigma2"]), **{f"eigenvalue_{i + 1}": float(svi["eigenvalue"][i]) for i in range(k)}}
    idata = az.from_dict(posterior=posterior)
    rhat, ess = az.rhat(idata), az.ess(idata)
    quantities = {}
    for name, values in posterior.items():
        mean, sd = float(values.mean()), float(values.std(ddof=1))
        quantities[name] = {"rhat": float(rhat[name]), "ess": float(ess[name]), "mean": mean, "sd": sd,
                            "svi": svi_values[name], "z": (svi_values[name] - mean) / sd if sd > 0 else float("nan")}
    angles = principal_angles(run_model.components_.astype(np.float64), mean_subspace(draws["W"]))
    return {"method": "NUTS", "num_data": len(x), "num_samples": num_samples, "warmup": warmup, "num_chains": num_chains,
            "prior": f"on data standardized by its mean and overall sd s: W, mu ~ Normal(0, {PRIOR_SCALE}), sigma ~ HalfNormal({PRIOR_SCALE})",
            "quantities": quantities, "max_rhat": max(q["rhat"] for q in quantities.values()),
            "min_ess": min(q["ess"] for q in quantities.values()), "max_abs_z": max(abs(q["z"]) for q in quantities.values()),
            "subspace_angles_deg": angles}


def gold_standard_verdict(gold: dict) -> str:
    """One plain sentence on a :func:`compare_ppca` result."""
    if gold["max_rhat"] > 1.05 or gold["min_ess"] < 100:
        return (f"The NUTS chains have not mixed (max R-hat {gold['max_rhat']:.2f}, min ESS {gold['min_ess']:.0f}): "
                "run more samples before comparing.")
    z, angle = gold["max_abs_z"], float(np.max(gold["subspace_angles_deg"]))
    where = "within" if z <= 3 else "outside"
    return (f"The SVI estimates of sigma^2 and the eigenvalues of W W^T lie {where} 3 posterior sds of the NUTS means "
            f"(largest |z| {z:.2f}); the SVI subspace is {angle:.1f} degrees from the NUTS posterior-mean subspace.")
