"""NUTS gold standards for the small models: the full posterior of the globals against the SVI point estimates.

:data:`GOLD_STANDARDS` maps a model name to its comparison: :func:`compare_ppca` (below) and :func:`compare_gmm` (a
Gaussian mixture, its NUTS draws relabelled to the SVI fit's components; see the section "Gaussian mixture").

Probabilistic PCA: the full posterior over W, mu and sigma against the SVI point estimate.

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

import sys
import warnings
from typing import Any, TextIO

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS

from ..errors import ConfigError
from ..models.gmm import mixture_log_prob
from ..models.ppca import closed_form_ppca, principal_angles
from .diagnostics import _arviz

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


def nuts_ppca(x, latent_dim: int, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0,
              progress: bool = False) -> dict[str, np.ndarray]:
    """NUTS draws of the PPCA posterior for data ``x`` (N, D), on the data's own scale.

    Chains run one after another in this process (on a small machine Pyro would run them in turn anyway).

    :returns: ``{"W": (chain, draw, D, K), "mu": (chain, draw, D), "sigma": (chain, draw)}`` as float64 arrays, and
        ``sample_stats`` (see :func:`run_chains`).

    Example::

        x = np.random.default_rng(0).normal(size=(40, 3))
        draws = nuts_ppca(x, latent_dim=1, num_samples=10, warmup=10, num_chains=2)    # real use: 300 and 300
        draws["sigma"].shape   # (2, 10)
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    if not 1 <= latent_dim < x.shape[1]:
        raise ConfigError(f"NUTS for ppca needs 1 <= latent_dim < {x.shape[1]} (the number of features), got {latent_dim}")
    center, scale = x.mean(0), x.std().clamp_min(1e-12)
    standardized = (x - center) / scale
    draws = run_chains(ppca_marginal_model, (standardized, latent_dim), num_samples, warmup, num_chains, seed, progress)
    scale, center = float(scale), center.numpy()
    return {"W": scale * draws["W"], "mu": center + scale * draws["mu"], "sigma": scale * draws["sigma"], "sample_stats": draws["sample_stats"]}


class RecordingNUTS(NUTS):
    """Pyro's NUTS that also keeps, for every draw after warmup, what Stan's sampler reports and cmdstanpy's
    ``diagnose`` reads: the tree depth (doublings of the trajectory), the Hamiltonian after the momentum is drawn
    (``energy``, for E-BFMI), the mean acceptance probability over the trajectory and the step size."""

    def __init__(self, model, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.stats: dict[str, list[float]] = {"tree_depth": [], "energy": [], "acceptance_rate": [], "step_size": []}
        self._depth, self._energy = 0, None

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        # called with tree_depth 0, 1, ... for each doubling (and lower depths inside): the largest + 1 is the depth
        self._depth, self._energy = max(self._depth, tree_depth + 1), energy_current
        return super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth, energy_current)

    def sample(self, params):
        self._depth, self._energy, warming, before = 0, None, self._t < self._warmup_steps, self._mean_accept_prob
        z = super().sample(params)
        if not warming and self._energy is not None:
            n = self._t - self._warmup_steps  # the kernel keeps a running mean of acceptance: undo it for this draw
            self.stats["tree_depth"].append(self._depth)
            self.stats["energy"].append(float(self._energy))
            self.stats["acceptance_rate"].append(before + (self._mean_accept_prob - before) * n)
            self.stats["step_size"].append(float(self.step_size))
        return z


class ProgressLines:
    """Pyro ``MCMC`` hook that writes one line to ``stream`` at every tenth of a chain's steps (warmup and draws): the
    progress of ``--nuts`` where no live bar can be drawn (a log file, a pipe). Counts steps, never reads a clock."""

    def __init__(self, chain: int, num_chains: int, warmup: int, num_samples: int, stream: TextIO):
        self.chain, self.num_chains, self.warmup, self.total, self.stream = chain, num_chains, warmup, warmup + num_samples, stream
        self.every = max(1, self.total // 10)

    def __call__(self, kernel, samples, stage: str, i: int) -> None:
        done = i + 1 + (0 if stage.startswith("Warmup") else self.warmup)
        if done % self.every == 0 or done == self.total:
            what = "warmup" if stage.startswith("Warmup") else "draws"
            print(f"NUTS chain {self.chain + 1} of {self.num_chains}: step {done} of {self.total} ({what})", file=self.stream, flush=True)


def run_chains(model, args: tuple, num_samples: int, warmup: int, num_chains: int, seed: int, progress: bool = False) -> dict[str, Any]:
    """NUTS draws of every sample site of ``model(*args)``, shape (chain, draw, ...); chains run one after another,
    with separate seeds so that they start from independent points. ``sample_stats`` holds per draw (chain, draw)
    ``diverging``, ``tree_depth``, ``energy``, ``acceptance_rate`` and ``step_size`` (:class:`RecordingNUTS`).

    ``progress``: on stderr, Pyro's live bar per chain when stderr is a terminal, else :class:`ProgressLines`."""
    chains, stats = [], []
    bar = progress and sys.stderr.isatty()
    for chain in range(num_chains):
        pyro.set_rng_seed(seed + chain)
        kernel = RecordingNUTS(model)
        hook = ProgressLines(chain, num_chains, warmup, num_samples, sys.stderr) if progress and not bar else None
        if bar:
            print(f"NUTS chain {chain + 1} of {num_chains}", file=sys.stderr, flush=True)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, num_chains=1, disable_progbar=not bar, hook_fn=hook)
        mcmc.run(*args)
        chains.append({name: value.detach().numpy() for name, value in mcmc.get_samples().items()})
        diverging = np.zeros(num_samples, dtype=bool)
        diverging[list(mcmc.diagnostics()["divergences"]["chain 0"])] = True
        stats.append({"diverging": diverging, **{name: np.asarray(values) for name, values in kernel.stats.items()}})
    draws: dict[str, Any] = {name: np.stack([c[name] for c in chains]) for name in chains[0]}
    draws["sample_stats"] = {name: np.stack([s[name] for s in stats]) for name in stats[0]}
    return draws


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


def compare_ppca(run_model, x, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0,
                 fit_x=None, progress: bool = False) -> dict[str, Any]:
    """Run :func:`nuts_ppca` on ``x`` and compare its posterior, like with like, with the closed-form maximum on the
    same ``x``, and the SVI point estimate of ``run_model`` (a PPCA) with the closed form on the data it was fitted on.

    NUTS may see only a subset of the training data (``x``), and the principal subspace of a subset differs from that
    of all the data (by 20 degrees on digits with 500 of 1257 images): comparing the SVI fit on all of them with NUTS
    on the subset mixes that shift with the fit's own error. So:

    - ``quantities``: for ``sigma2`` and ``eigenvalue_k`` (of W W^T): R-hat, bulk ESS and MCSE of the NUTS chains
      (ArviZ on dims (chain, draw)), the NUTS mean and sd, ``closed_form`` (the ML value on ``x``) and its
      ``z_closed_form`` = (ML - mean) / sd (like with like), the SVI value and its ``z``.
    - ``angles_deg`` (largest principal angles): ``nuts_vs_closed_form`` (NUTS posterior-mean subspace against the ML
      subspace of ``x``: the like-with-like check), ``posterior_spread`` (median over draws of the angle between a
      draw's subspace and the posterior-mean subspace: the posterior's own width), ``between_chains`` (between the
      chains' posterior-mean subspaces: Monte Carlo noise), ``fit_vs_closed_form`` (SVI against the ML subspace of
      ``fit_x``: the fit's own error), ``data_subset_shift`` (ML subspace of ``fit_x`` against that of ``x``) and
      ``fit_vs_nuts`` (what a plain comparison would show: roughly the fit's error plus the subset's shift).

    R-hat of W's entries is not reported: W is identified only up to rotation.

    :param fit_x: the data the run was fitted on (its training split); default ``x``.
    :param progress: report the chains' progress on stderr (:func:`run_chains`).

    Example::

        x_train = np.random.default_rng(0).normal(size=(200, 3)) * [3.0, 1.0, 0.5]
        np.savez("points.npz", x=x_train)
        ppca = PPCA(x_shape=[3], z_dim=1).fit(load_dataset("npz:points.npz"), TrainConfig(epochs=2))   # or load("runs/ppca")
        gold = compare_ppca(ppca, x_train[:40], num_samples=10, warmup=10, fit_x=x_train)   # real use: 300 rows, 200 draws
        gold["angles_deg"]["nuts_vs_closed_form"], gold["angles_deg"]["fit_vs_closed_form"], gold["max_rhat"]
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    fit_x = x if fit_x is None else fit_x  # closed_form_ppca reads rows on disk in one streaming pass
    k = run_model.config.z_dim
    draws = nuts_ppca(x, k, num_samples, warmup, num_chains, seed, progress)
    nuts = invariant_quantities(draws["W"], draws["sigma"])
    w_svi = run_model.weight.detach().double().cpu().numpy()
    svi = invariant_quantities(w_svi, np.float64(run_model.noise_variance_) ** 0.5)
    same, fitted_on = closed_form_ppca(x, k), closed_form_ppca(fit_x, k)
    ml = invariant_quantities(same["weight"], same["noise_variance"] ** 0.5)
    names = ["sigma2", *(f"eigenvalue_{i + 1}" for i in range(k))]
    scalar = lambda values: dict(zip(names, [values["sigma2"], *np.moveaxis(values["eigenvalue"], -1, 0)]))
    result = summarize(scalar(nuts), {n: float(v) for n, v in scalar(svi).items()}, draws, {n: float(v) for n, v in scalar(ml).items()})
    svi_basis, posterior_mean = run_model.components_.astype(np.float64), mean_subspace(draws["W"])
    largest = lambda a, b: float(principal_angles(a, b).max())
    draw_bases = np.linalg.qr(draws["W"].reshape(-1, *draws["W"].shape[-2:]))[0]
    chain_bases = [mean_subspace(chain) for chain in draws["W"]]
    angles = {"nuts_vs_closed_form": largest(posterior_mean, same["components"]),
              "posterior_spread": float(np.median([largest(b, posterior_mean) for b in draw_bases])),
              "between_chains": max((largest(a, b) for i, a in enumerate(chain_bases) for b in chain_bases[i + 1:]), default=float("nan")),
              "fit_vs_closed_form": largest(svi_basis, fitted_on["components"]),
              "data_subset_shift": largest(fitted_on["components"], same["components"]),
              "fit_vs_nuts": largest(svi_basis, posterior_mean)}
    return {"method": "NUTS", "num_data": len(x), "num_fit_data": len(fit_x), "num_samples": num_samples, "warmup": warmup,
            "num_chains": num_chains,
            "prior": f"on data standardized by its mean and overall sd s: W, mu ~ Normal(0, {PRIOR_SCALE}), sigma ~ HalfNormal({PRIOR_SCALE})",
            "note": ("W is identified only up to rotation, so only rotation-invariant quantities are compared. NUTS is compared with the "
                     "closed-form maximum on the same data; the SVI fit with the closed form on the data it was fitted on."),
            **result, "subspace_angles_deg": principal_angles(svi_basis, posterior_mean), "angles_deg": angles}


def nuts_idata(posterior: dict[str, np.ndarray], svi_values: dict[str, float], draws: dict[str, Any] | None = None):
    """The NUTS draws as ``arviz.InferenceData``: ``posterior`` holds the compared quantities (chain, draw), each with
    its SVI value in the attribute ``svi_value``, and the sampled sites of ``draws`` on the data's scale (W, mu, sigma;
    weights, locs, scales relabelled); ``sample_stats`` the per-draw sampler statistics of :func:`run_chains`.

    Built with ``az.from_dict`` rather than ``az.from_pyro``: the draws are rescaled from the standardized data the
    sampler saw, and the compared quantities are derived from them.
    """
    draws = dict(draws or {})
    stats = draws.pop("sample_stats", None)
    idata = _arviz().from_dict(posterior={**draws, **posterior}, sample_stats=stats)
    for name, value in svi_values.items():
        idata.posterior[name].attrs["svi_value"] = float(value)
    return idata


#: Stan's (and cmdstanpy's ``diagnose``) default limits: trajectories that stop at this depth were cut short, and
#: chains with E-BFMI below the threshold explore the energy distribution poorly
MAX_TREE_DEPTH, BFMI_THRESHOLD = 10, 0.3


def sampler_diagnostics(idata) -> dict[str, Any]:
    """What cmdstanpy's ``diagnose`` reports of the sampler itself: divergent transitions, draws at the maximum tree
    depth, E-BFMI per chain (``az.bfmi``), with the acceptance rate and step size per chain."""
    stats = idata.sample_stats
    depth, diverging = stats["tree_depth"].values, stats["diverging"].values
    return {"divergences": int(diverging.sum()), "divergent_fraction": float(diverging.mean()),
            "max_tree_depth": MAX_TREE_DEPTH, "tree_depth_hits": int((depth >= MAX_TREE_DEPTH).sum()),
            "mean_tree_depth": float(depth.mean()), "largest_tree_depth": int(depth.max()),
            "bfmi": [float(b) for b in _arviz().bfmi(idata)], "bfmi_threshold": BFMI_THRESHOLD,
            "acceptance_rate": [float(a) for a in stats["acceptance_rate"].values.mean(1)],
            "step_size": [float(a) for a in stats["step_size"].values[:, -1]]}


#: an SVI value whose posterior quantile among the NUTS draws lies beyond this tail, on either side, is off the
#: posterior: the tail beyond 3 sds of a normal, so that it agrees with |z| > 3 where the posterior is normal and keeps
#: its meaning where it is not (a skewed eigenvalue, a scale near 0)
NUTS_TAIL = 0.00135


def posterior_position(draws: np.ndarray, value: float) -> dict[str, Any]:
    """Where ``value`` lies among posterior draws ``(chain, draw)``, by ranks rather than by sds.

    ``rank``: the draws below it (of ``num_draws``); ``quantile``: its mid-rank quantile ``(below + ties / 2) / n``;
    ``tail``: ``min(quantile, 1 - quantile)``; ``outside``: ``below`` or ``above`` when it lies beyond every draw,
    else ``None``; ``chain_quantiles``: the quantile among each chain's draws alone, and ``outside_every_chain``
    whether it lies beyond the draws of every chain on one side: a discrepancy that holds however badly the chains mix;
    ``interval_99``: the central 99% interval of the draws.
    """
    flat = np.asarray(draws, dtype=np.float64).ravel()
    below, ties = int((flat < value).sum()), int((flat == value).sum())
    quantile = (below + 0.5 * ties) / len(flat)
    chains = [float(np.mean(c < value) + 0.5 * np.mean(c == value)) for c in np.asarray(draws, dtype=np.float64).reshape(len(draws), -1)]
    outside = "below" if below + ties == 0 else "above" if below == len(flat) else None
    return {"rank": below, "num_draws": int(len(flat)), "quantile": quantile, "tail": min(quantile, 1 - quantile), "outside": outside,
            "chain_quantiles": chains, "outside_every_chain": bool(all(c == 0 for c in chains) or all(c == 1 for c in chains)),
            "interval_99": [float(v) for v in np.quantile(flat, [0.005, 0.995])]}


def summarize(posterior: dict[str, np.ndarray], svi_values: dict[str, float], draws: dict[str, Any] | None = None,
              closed_form: dict[str, float] | None = None) -> dict[str, Any]:
    """Per scalar quantity of ``posterior`` (arrays (chain, draw)): R-hat, bulk and tail ESS, MCSE of the mean and
    sd (``az.summary`` on :func:`nuts_idata`), NUTS mean and sd, the SVI value, its z and its position among the draws
    (:func:`posterior_position`: rank, quantile, per chain); with ``closed_form`` also that reference value, its
    ``z_closed_form`` and ``quantile_closed_form``; plus their extremes (``min_tail`` and ``most_extreme``: the SVI value
    furthest out by quantile; ``off_posterior``: the quantities beyond :data:`NUTS_TAIL`; ``outside_range``: those
    beyond every draw), the sampler's own diagnostics (:func:`sampler_diagnostics`, when ``draws`` has
    ``sample_stats``) and the InferenceData itself under ``idata``."""
    idata = nuts_idata(posterior, svi_values, draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # MCSE of a quantity with constant draws is 0 / 0
        table = _arviz().summary(idata, var_names=list(posterior), round_to="none")
    z = lambda value, mean, sd: (value - mean) / sd if sd > 0 else float("nan")
    quantities = {}
    for name, values in posterior.items():
        mean, sd, row = float(values.mean()), float(values.std(ddof=1)), table.loc[name]
        quantities[name] = {"rhat": float(row["r_hat"]), "ess": float(row["ess_bulk"]), "ess_tail": float(row["ess_tail"]),
                            "mcse_mean": float(row["mcse_mean"]), "mcse_sd": float(row["mcse_sd"]), "mean": mean, "sd": sd,
                            "svi": svi_values[name], "z": z(svi_values[name], mean, sd), **posterior_position(values, svi_values[name])}
        if closed_form is not None:
            quantities[name].update(closed_form=closed_form[name], z_closed_form=z(closed_form[name], mean, sd),
                                    quantile_closed_form=posterior_position(values, closed_form[name])["quantile"])
    extreme = min(quantities, key=lambda n: quantities[n]["tail"])
    result = {"quantities": quantities, "max_rhat": max(q["rhat"] for q in quantities.values()),
              "min_ess": min(q["ess"] for q in quantities.values()), "min_ess_tail": min(q["ess_tail"] for q in quantities.values()),
              "max_abs_z": max(abs(q["z"]) for q in quantities.values()), "min_tail": quantities[extreme]["tail"], "most_extreme": extreme,
              "off_posterior": [n for n, q in quantities.items() if q["tail"] < NUTS_TAIL],
              "outside_range": [n for n, q in quantities.items() if q["outside"]], "idata": idata}
    if closed_form is not None:
        result["max_abs_z_closed_form"] = max(abs(q["z_closed_form"]) for q in quantities.values())
    if "sample_stats" in idata.groups():
        result["sampler"] = sampler_diagnostics(idata)
    result.update(tail_threshold=NUTS_TAIL, discrepancy=discrepancy_text(result))
    return result


def discrepancy_text(gold: dict) -> str:
    """The SVI value furthest out among the NUTS draws, by rank, in words: said as outside the NUTS range when it lies
    beyond every draw (an SVI eigenvalue below all 4000 draws is not "-2.7 sds"), and beyond every chain when each
    chain alone says so."""
    name = gold["most_extreme"]
    q = gold["quantities"][name]
    label = name.replace("_", " ")
    if q["outside"]:
        where = (f"{label} = {q['svi']:.4g} lies {q['outside']} all {q['num_draws']} NUTS draws (their central 99%: "
                 f"{q['interval_99'][0]:.4g} to {q['interval_99'][1]:.4g}; {q['z']:+.2f} sds from the mean)")
        where += ", and beyond the draws of every chain" if q["outside_every_chain"] and len(q["chain_quantiles"]) > 1 else ""
    else:
        where = (f"{label} = {q['svi']:.4g} lies at posterior quantile {q['quantile']:.4f} (rank {q['rank']} of {q['num_draws']} "
                 f"NUTS draws; {q['z']:+.2f} sds from the mean)")
    off = gold.get("off_posterior") or []
    return where + (f"; {len(off)} of {len(gold['quantities'])} quantities lie beyond the posterior's {NUTS_TAIL:.3%} tails" if off else "")


# ----- Gaussian mixture -----------------------------------------------------------------------------------------------
#: NUTS on a mixture is refused above this many component-feature pairs (K * D): each of the K * (2 D + 1) globals
#: adds to the gradient steps per draw, and beyond ~40 two chains no longer finish in about a minute on a small CPU
#: (multimodality across labels also grows with K).
GMM_MAX_COMPONENT_FEATURES = 40


def gmm_marginal_model(x: torch.Tensor, num_components: int) -> None:
    """The diagonal Gaussian mixture with the component summed out, on data ``x`` (N, D) standardized per feature::

        pi ~ Dirichlet(1, ..., 1)      loc~_kd ~ Normal(0, 3)      scale~_kd ~ HalfNormal(3)
        x~_n ~ sum_k pi_k Normal(loc~_k, diag(scale~_k^2))
    """
    n, d = x.shape
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(num_components, dtype=x.dtype)))
    locs = pyro.sample("locs", dist.Normal(torch.zeros(num_components, d, dtype=x.dtype), PRIOR_SCALE).to_event(2))
    scales = pyro.sample("scales", dist.HalfNormal(torch.full((num_components, d), PRIOR_SCALE, dtype=x.dtype)).to_event(2))
    pyro.factor("x", mixture_log_prob(x, weights.clamp_min(1e-30).log(), locs, scales).sum())


def check_gmm_size(num_components: int, num_features: int) -> None:
    """Refuse mixtures too large for NUTS in reasonable time (:data:`GMM_MAX_COMPONENT_FEATURES`)."""
    if num_components * num_features > GMM_MAX_COMPONENT_FEATURES:
        raise ConfigError(f"NUTS for gmm needs num_components x features <= {GMM_MAX_COMPONENT_FEATURES}, got "
                          f"{num_components} x {num_features}; drop --nuts (it would take too long)")


def nuts_gmm(x, num_components: int, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0,
             progress: bool = False) -> dict[str, np.ndarray]:
    """NUTS draws of the mixture posterior for data ``x`` (N, D), on the data's own scale, components *not* relabelled.

    The data are standardized per feature (mean m_d, sd s_d) for the priors of :func:`gmm_marginal_model`; the draws
    are mapped back: ``locs = m + s loc~``, ``scales = s scale~`` (diagonal covariances make per-feature scaling exact).

    :returns: ``{"weights": (chain, draw, K), "locs": (chain, draw, K, D), "scales": (chain, draw, K, D)}``, float64,
        and ``sample_stats`` (see :func:`run_chains`).

    Example::

        x = np.random.default_rng(0).normal(size=(60, 2)) + np.repeat([[0, 0], [4, 4]], 30, axis=0)
        draws = nuts_gmm(x, num_components=2, num_samples=10, warmup=10)     # real use: 200 and 200
        draws["locs"].shape   # (2, 10, 2, 2): chains, draws, components, features
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    check_gmm_size(num_components, x.shape[1])
    center, scale = x.mean(0), x.std(0).clamp_min(1e-12)
    draws = run_chains(gmm_marginal_model, ((x - center) / scale, num_components), num_samples, warmup, num_chains, seed, progress)
    center, scale = center.numpy(), scale.numpy()
    return {"weights": draws["weights"], "locs": center + scale * draws["locs"], "scales": scale * draws["scales"],
            "sample_stats": draws["sample_stats"]}


def relabel(draws: dict[str, np.ndarray], reference_locs: np.ndarray, feature_scale: np.ndarray) -> dict[str, np.ndarray]:
    """Permute the components of every draw to match ``reference_locs`` (K, D): the assignment minimizing the summed
    squared distances between locs, features divided by ``feature_scale`` (Hungarian algorithm). Label switching
    (within or across chains) would otherwise make R-hat and posterior means of per-component quantities meaningless."""
    from scipy.optimize import linear_sum_assignment

    locs = draws["locs"] / feature_scale
    reference = reference_locs / feature_scale
    cost = ((locs[..., :, None, :] - reference[None, None, None]) ** 2).sum(-1)  # (chain, draw, K draw, K reference)
    order = np.empty(cost.shape[:3], dtype=int)
    for index in np.ndindex(*cost.shape[:2]):
        rows, cols = linear_sum_assignment(cost[index])
        order[index][cols] = rows  # reference component j takes the draw's component rows[j]
    take = lambda values: np.take_along_axis(values, order.reshape(*order.shape, *[1] * (values.ndim - 3)), axis=2)
    return {name: take(values) for name, values in draws.items()}


def compare_gmm(run_model, x, num_samples: int = 200, warmup: int = 200, num_chains: int = 2, seed: int = 0,
                fit_x=None, progress: bool = False) -> dict[str, Any]:
    """Run :func:`nuts_gmm` on ``x`` and compare its posterior with the SVI point estimates of ``run_model`` (a GMM).

    Every draw is relabelled to the SVI fit's components (:func:`relabel`) before R-hat and ESS; then, as
    :func:`compare_ppca`, per quantity ``weight_k``, ``loc_k_d``, ``scale_k_d`` (k, d from 0): R-hat, bulk ESS, NUTS mean
    and sd, SVI value and ``z``. ``switched_draws``: the fraction of draws whose labels were permuted.
    ``fit_x`` (the data the run was fitted on; default ``x``) is only counted: a mixture has no closed form to refit.

    Example::

        x_train = np.random.default_rng(0).normal(size=(200, 2)) + np.repeat([[0, 0], [4, 4]], 100, axis=0)
        np.savez("blobs.npz", x=x_train)
        gmm = GMM(x_shape=[2], num_components=2).fit(load_dataset("npz:blobs.npz"), TrainConfig(epochs=2))   # or load("runs/gmm")
        gold = compare_gmm(gmm, x_train[:40], num_samples=10, warmup=10)    # real use: 300 rows, 200 draws
        gold["quantities"]["loc_0_0"]["z"], gold["max_rhat"]
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    k = run_model.config.num_components
    svi = {"weights": run_model.weights_.astype(np.float64), "locs": run_model.means_.astype(np.float64),
           "scales": run_model.scales.detach().double().cpu().numpy()}
    raw = nuts_gmm(x, k, num_samples, warmup, num_chains, seed, progress)
    stats = raw.pop("sample_stats")
    draws = relabel(raw, svi["locs"], x.std(0).clip(1e-12))
    switched = float(np.mean(np.any(draws["locs"] != raw["locs"], axis=(-1, -2))))
    posterior, svi_values = {}, {}
    for site, stem in (("weights", "weight"), ("locs", "loc"), ("scales", "scale")):
        for index in np.ndindex(*draws[site].shape[2:]):
            name = "_".join([stem, *map(str, index)])
            posterior[name], svi_values[name] = draws[site][(..., *index)], float(svi[site][index])
    return {"method": "NUTS", "num_data": len(x), "num_fit_data": len(x if fit_x is None else fit_x), "num_samples": num_samples,
            "warmup": warmup, "num_chains": num_chains,
            "prior": f"on data standardized per feature: weights ~ Dirichlet(1), locs ~ Normal(0, {PRIOR_SCALE}), scales ~ HalfNormal({PRIOR_SCALE})",
            "note": "Components of every NUTS draw are relabelled to the SVI fit's by matching locs (Hungarian algorithm) before R-hat and ESS.",
            **summarize(posterior, svi_values, {**draws, "sample_stats": stats}), "switched_draws": switched}


#: ``diagnose --nuts``: the comparison for each model name
GOLD_STANDARDS = {"ppca": compare_ppca, "gmm": compare_gmm}


def gold_standard_for(model):
    """The comparison function of :data:`GOLD_STANDARDS` for ``model``; refuses unknown or too large models."""
    if model.name not in GOLD_STANDARDS:
        raise ConfigError(f"--nuts has a NUTS gold standard for {' and '.join(GOLD_STANDARDS)} only, not {model.name!r}; drop --nuts")
    if model.name == "gmm":
        check_gmm_size(model.config.num_components, int(np.prod(model.config.x_shape)))
    return GOLD_STANDARDS[model.name]


#: the NUTS reference is trusted when every quantity has R-hat below this and a bulk ESS above ESS_PER_CHAIN per chain
RHAT_MAX, ESS_PER_CHAIN = 1.01, 100


def mixed(gold: dict) -> bool:
    """Whether the NUTS chains have mixed: R-hat below :data:`RHAT_MAX` and bulk ESS above :data:`ESS_PER_CHAIN` per chain."""
    return gold["max_rhat"] <= RHAT_MAX and gold["min_ess"] >= ESS_PER_CHAIN * gold.get("num_chains", 1)


def gold_standard_verdict(gold: dict) -> str:
    """One plain sentence on a :func:`compare_ppca` or :func:`compare_gmm` result; the size of the largest
    discrepancy (:func:`discrepancy_text`) is said whether or not the chains mixed."""
    if not mixed(gold):
        return (f"The NUTS chains have not mixed (max R-hat {gold['max_rhat']:.3f}, above {RHAT_MAX}, or min bulk ESS {gold['min_ess']:.0f}, "
                f"below {ESS_PER_CHAIN} per chain): run more samples before trusting the comparison. As it stands the furthest SVI value, "
                f"{gold['discrepancy']}.")
    if "angles_deg" in gold:
        return ppca_gold_verdict(gold)
    where = "outside" if gold.get("off_posterior") else "within"
    return (f"The SVI estimates lie {where} the central {1 - 2 * NUTS_TAIL:.2%} of the NUTS posterior after relabelling the NUTS "
            f"components to the SVI fit's: the furthest, {gold['discrepancy']}.")


def ppca_gold_verdict(gold: dict) -> str:
    """:func:`gold_standard_verdict` of PPCA: NUTS against the closed form on the same data, the fit against the closed
    form on its own data, and how much of the plain SVI-to-NUTS angle the data subset explains."""
    a, n, m = gold["angles_deg"], gold["num_data"], gold["num_fit_data"]
    noise = max(a["posterior_spread"], a["between_chains"])
    agree = a["nuts_vs_closed_form"] <= 3 * noise + 0.5 and gold["max_abs_z_closed_form"] <= 3
    text = (f"On the same {n} training data NUTS and the closed-form maximum {'agree' if agree else 'disagree'}: subspaces "
            f"{a['nuts_vs_closed_form']:.1f} degrees apart, where the posterior's own spread is {a['posterior_spread']:.1f} degrees and "
            f"the chains are {a['between_chains']:.1f} degrees apart (sampling noise); sigma^2 and the eigenvalues within "
            f"{gold['max_abs_z_closed_form']:.2f} posterior sds. The SVI fit is {a['fit_vs_closed_form']:.1f} degrees from the closed form "
            f"on the {m} data it was fitted on")
    if m != n:
        return text + (f"; the {n}-datum subset alone moves the closed-form subspace {a['data_subset_shift']:.1f} degrees, which "
                       f"accounts for the plain SVI-to-NUTS angle of {a['fit_vs_nuts']:.1f} degrees as far as the fit's error does not.")
    return text + f" (the plain SVI-to-NUTS angle is {a['fit_vs_nuts']:.1f} degrees; the furthest SVI value, {gold['discrepancy']})."


def sampler_verdict(sampler: dict) -> str:
    """One plain sentence on :func:`sampler_diagnostics`, with the limits cmdstanpy's ``diagnose`` uses."""
    problems = []
    if sampler["divergences"]:
        problems.append(f"{sampler['divergences']} divergent transitions ({100 * sampler['divergent_fraction']:.1f}% of draws): "
                        "the sampler missed part of the posterior; the draws may be biased")
    if sampler["tree_depth_hits"]:
        problems.append(f"{sampler['tree_depth_hits']} draws stopped at the maximum tree depth {sampler['max_tree_depth']}: "
                        "trajectories were cut short and the chains explore slowly")
    low = [b for b in sampler["bfmi"] if b < sampler["bfmi_threshold"]]
    if low:
        problems.append(f"E-BFMI below {sampler['bfmi_threshold']} in {len(low)} chain(s) (lowest {min(low):.2f}): "
                        "momentum resampling hardly moves the energy; heavy tails or a poor metric")
    bfmi = f"E-BFMI {min(sampler['bfmi']):.2f}-{max(sampler['bfmi']):.2f}"
    if not problems:
        return (f"The sampler reports no problem: no divergent transition, no draw at the maximum tree depth "
                f"{sampler['max_tree_depth']} (mean depth {sampler['mean_tree_depth']:.1f}), {bfmi} (above {sampler['bfmi_threshold']}).")
    return "The sampler reports problems: " + "; ".join(problems) + f" ({bfmi})."
