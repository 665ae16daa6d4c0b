"""NUTS gold standards. PPCA: the chains mix on rotation-invariant quantities, find the closed-form MLE, and the SVI
fit lies inside the posterior. GMM: after relabelling to the SVI components the chains mix, find the true parameters,
and the SVI fit lies inside the posterior."""

import numpy as np
import pytest
import torch

from ppmodels.data import TrainData, from_arrays, prepare_data
from ppmodels.errors import ConfigError
from ppmodels.analysis.gold_standard import (compare_gmm, compare_ppca, invariant_quantities, mean_subspace, nuts_gmm,
                                            ppca_gold_verdict, principal_angles, relabel)
from ppmodels.models.ppca import closed_form_ppca
from ppmodels.models import GMM, PPCA
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from tests.helpers import assert_close_scaled

D, K, N = 4, 1, 150


@pytest.fixture(scope="module")
def fitted():
    """150 points near a line in 4-D (noise variance 0.25; the train split keeps 105), a PPCA fitted by SVI, and the
    closed-form MLE on the train split."""
    rng = np.random.default_rng(1)
    w = np.array([[2.0], [-1.0], [1.0], [0.5]])
    x = (rng.normal(size=(N, K)) @ w.T + 0.5 * rng.normal(size=(N, D)) + 3.0).astype(np.float32)
    full = prepare_data(from_arrays("line", x))
    data = TrainData(full.dataset, full.train, None, None)
    ppca = fit(PPCA(x_shape=[D], z_dim=K), data, TrainConfig(epochs=600, batch_size=len(data.train), lr=0.05, patience=None))
    train_x = data.train.x.numpy().astype(np.float64)
    eigval = np.sort(np.linalg.eigvalsh(np.cov(train_x.T, bias=True)))[::-1]
    return ppca, train_x, {"sigma2": eigval[K:].mean(), "eigenvalue_1": eigval[0] - eigval[K:].mean()}


@pytest.mark.numerical
def test_invariants_ignore_rotation():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 2))
    rotation, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    a, b = invariant_quantities(w, 0.3), invariant_quantities(w @ rotation, 0.3)
    assert_close_scaled(a["eigenvalue"], b["eigenvalue"], rel=1e-9)
    assert a["eigenvalue"][0] > a["eigenvalue"][1]
    # draws that differ only by rotation (and sign) share one posterior-mean subspace, span(w)
    stacked = np.stack([w, w @ rotation, -w])
    basis = np.linalg.qr(w)[0]
    assert principal_angles(basis, mean_subspace(stacked)).max() < 1e-4
    assert principal_angles(basis, np.linalg.qr(rng.normal(size=(5, 2)))[0]).max() > 1.0


# 150 + 150 draws in 2 chains (7 s): slow; compare_ppca runs by default in the subset test below and through
# `ppmodels diagnose --nuts` in tests/cli/test_diagnose_command.py
@pytest.mark.slow
def test_nuts_agrees_with_closed_form_and_svi(fitted):
    ppca, x, mle = fitted
    gold = compare_ppca(ppca, x, num_samples=150, warmup=150, num_chains=2, seed=0)
    q = gold["quantities"]
    assert set(q) == {"sigma2", "eigenvalue_1"}
    assert gold["max_rhat"] < 1.1, q
    assert gold["min_ess"] > 30, q
    # the posterior mean sits near the MLE (the weak priors move it by a fraction of a posterior sd)
    for name, value in mle.items():
        assert abs(q[name]["mean"] - value) < 1.0 * q[name]["sd"], (name, q[name], value)
    assert q["sigma2"]["mean"] == pytest.approx(mle["sigma2"], rel=0.1)
    # SVI reached the MLE, so it lies well inside the posterior, and its subspace is the posterior's
    assert gold["max_abs_z"] < 2.0, q
    assert np.max(gold["subspace_angles_deg"]) < 5.0
    # like with like: the closed form on the NUTS data is the reference, and here that is the fit's data too
    assert gold["max_abs_z_closed_form"] < 1.0 and q["sigma2"]["closed_form"] == pytest.approx(mle["sigma2"])
    angles = gold["angles_deg"]
    assert angles["data_subset_shift"] < 1e-6 and angles["fit_vs_closed_form"] < 0.5
    assert angles["nuts_vs_closed_form"] < 3 * max(angles["posterior_spread"], angles["between_chains"]) + 0.5
    # what cmdstanpy's diagnose reports, and the draws as InferenceData
    assert all(q[name]["ess_tail"] > 30 and 0 < q[name]["mcse_mean"] < q[name]["sd"] for name in q)
    sampler = gold["sampler"]
    assert sampler["divergences"] == 0 and sampler["tree_depth_hits"] == 0 and 1 <= sampler["mean_tree_depth"] < 10
    assert len(sampler["bfmi"]) == 2 and min(sampler["bfmi"]) > 0.3 and all(0.5 < a <= 1 for a in sampler["acceptance_rate"])
    idata = gold["idata"]
    assert idata.posterior["sigma2"].shape == (2, 150) and idata.posterior["W"].shape == (2, 150, D, K)
    assert idata.posterior["sigma2"].attrs["svi_value"] == q["sigma2"]["svi"]
    assert set(idata.sample_stats.data_vars) == {"diverging", "tree_depth", "energy", "acceptance_rate", "step_size"}


def test_a_subset_is_compared_with_the_closed_form_on_the_subset(fitted):
    """NUTS on 40 of the 105 training points: the subset's own closed form is the like-with-like reference, and the
    shift of the subset's subspace is reported apart from the fit's error."""
    ppca, x, _ = fitted
    subset = x[:40]
    gold = compare_ppca(ppca, subset, num_samples=100, warmup=100, num_chains=2, seed=0, fit_x=x)
    cf_subset = closed_form_ppca(subset, K)
    assert gold["num_data"] == 40 and gold["num_fit_data"] == len(x)
    assert gold["quantities"]["sigma2"]["closed_form"] == pytest.approx(cf_subset["noise_variance"])
    angles = gold["angles_deg"]
    assert angles["data_subset_shift"] == pytest.approx(principal_angles(closed_form_ppca(x, K)["components"], cf_subset["components"]).max())
    assert angles["fit_vs_closed_form"] < 0.5
    assert "40 training data NUTS and the closed-form maximum agree" in ppca_gold_verdict(gold)


def test_recorded_sampler_statistics_match_the_kernel():
    """RecordingNUTS undoes the kernel's running mean of acceptance: the recorded values average back to it; on a
    standard normal the energy is nearly chi-square (E-BFMI near 1) and trajectories are short."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC

    from ppmodels.analysis.gold_standard import RecordingNUTS

    def normal():
        pyro.sample("a", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    pyro.set_rng_seed(0)
    kernel = RecordingNUTS(normal)
    running = []  # the kernel's running mean after each draw (it is reset when the run ends)
    MCMC(kernel, num_samples=200, warmup_steps=100, disable_progbar=True,
         hook_fn=lambda k, samples, stage, i: running.append(k._mean_accept_prob) if stage == "Sample" else None).run()
    stats = {k: np.asarray(v) for k, v in kernel.stats.items()}
    assert all(len(v) == 200 for v in stats.values())
    assert_close_scaled(np.cumsum(stats["acceptance_rate"]) / np.arange(1, 201), running, rel=1e-6)
    assert set(np.unique(stats["tree_depth"])) <= {1, 2, 3, 4} and np.all(stats["step_size"] == stats["step_size"][0])
    energy = stats["energy"]
    bfmi = np.sum(np.diff(energy) ** 2) / np.sum((energy - energy.mean()) ** 2)
    assert 0.6 < bfmi < 1.6


# ----- Gaussian mixture ---------------------------------------------------------------------------------------------
GMM_LOCS = np.array([[-4.0, 0.0], [4.0, 1.0], [0.0, 6.0]])
GMM_SCALES = np.array([[1.0, 0.5], [0.7, 1.2], [0.8, 0.8]])
GMM_WEIGHTS = np.array([0.5, 0.3, 0.2])


@pytest.fixture(scope="module")
def fitted_gmm():
    """300 points from three well separated 2-D components (the train split keeps 210) and a GMM fitted by SVI."""
    rng = np.random.default_rng(2)
    k = rng.choice(3, size=300, p=GMM_WEIGHTS)
    x = (GMM_LOCS[k] + GMM_SCALES[k] * rng.normal(size=(300, 2))).astype(np.float32)
    full = prepare_data(from_arrays("blobs", x))
    data = TrainData(full.dataset, full.train, None, None)
    gmm = fit(GMM(x_shape=[2], num_components=3), data, TrainConfig(epochs=300, batch_size=len(data.train), lr=0.05, patience=None))
    return gmm, data.train.x.numpy().astype(np.float64)


def test_relabel_undoes_a_permutation():
    rng = np.random.default_rng(0)
    reference = GMM_LOCS
    perms = np.stack([rng.permutation(3) for _ in range(12)]).reshape(2, 6, 3)
    locs = reference[perms] + 0.01 * rng.normal(size=(2, 6, 3, 2))
    draws = {"locs": locs, "weights": GMM_WEIGHTS[perms], "scales": GMM_SCALES[perms]}
    fixed = relabel(draws, reference, np.ones(2))
    np.testing.assert_allclose(fixed["locs"], np.broadcast_to(reference, locs.shape), atol=0.1)
    np.testing.assert_array_equal(fixed["weights"], np.broadcast_to(GMM_WEIGHTS, perms.shape))
    np.testing.assert_array_equal(fixed["scales"], np.broadcast_to(GMM_SCALES, locs.shape))


def test_nuts_gmm_reports_every_component_quantity_and_its_draws(fitted_gmm):
    """compare_gmm end to end on few draws (the default suite's run of it): every quantity, relabelled draws as
    InferenceData, finite diagnostics; what the draws agree with is the slow test's below."""
    gmm, x = fitted_gmm
    gold = compare_gmm(gmm, x, num_samples=20, warmup=20, num_chains=2, seed=0)
    q = gold["quantities"]
    assert set(q) == {f"weight_{k}" for k in range(3)} | {f"{s}_{k}_{d}" for s in ("loc", "scale") for k in range(3) for d in range(2)}
    assert all(np.isfinite([v["mean"], v["sd"], v["rhat"], v["ess"]]).all() and v["sd"] > 0 for v in q.values())
    assert np.isfinite(gold["max_abs_z"]) and np.isfinite(gold["max_rhat"]) and 0 <= gold["switched_draws"] <= 1
    assert gold["idata"].posterior.sizes["chain"] == 2 and gold["idata"].posterior.sizes["draw"] == 20
    assert abs(sum(q[f"weight_{k}"]["mean"] for k in range(3)) - 1) < 1e-5  # relabelling permutes, never mixes, weights


# 150 + 150 draws in 2 chains (8 s): slow; the test above runs compare_gmm by default
@pytest.mark.slow
def test_nuts_gmm_agrees_with_truth_and_svi_after_relabelling(fitted_gmm):
    gmm, x = fitted_gmm
    gold = compare_gmm(gmm, x, num_samples=150, warmup=150, num_chains=2, seed=0)
    q = gold["quantities"]
    assert set(q) == {f"weight_{k}" for k in range(3)} | {f"{s}_{k}_{d}" for s in ("loc", "scale") for k in range(3) for d in range(2)}
    assert gold["max_rhat"] < 1.1, q
    assert gold["min_ess"] > 30, q
    # SVI started at k-means centres, so its component order is arbitrary: map the truth onto it by nearest loc
    order = [int(np.argmin(((GMM_LOCS - loc) ** 2).sum(-1))) for loc in gmm.means_]
    assert sorted(order) == [0, 1, 2]
    for k, true_k in enumerate(order):
        assert abs(q[f"weight_{k}"]["mean"] - GMM_WEIGHTS[true_k]) < 0.1
        for d in range(2):
            assert abs(q[f"loc_{k}_{d}"]["mean"] - GMM_LOCS[true_k, d]) < 4 * q[f"loc_{k}_{d}"]["sd"] + 0.05, (k, d, q[f"loc_{k}_{d}"])
            assert q[f"scale_{k}_{d}"]["mean"] == pytest.approx(GMM_SCALES[true_k, d], rel=0.3)
    # the SVI maximum-likelihood fit lies within a few posterior sds of the NUTS means
    assert gold["max_abs_z"] < 3.0, q


def test_nuts_gmm_refuses_large_mixtures():
    with pytest.raises(ConfigError, match="num_components x features <= 40"):
        nuts_gmm(np.zeros((50, 10)), num_components=5)


# ----- comparison by ranks, and progress ----------------------------------------------------------------------------
def test_an_svi_value_beyond_every_draw_is_said_outside_the_posterior_whatever_its_z():
    """A skewed posterior (a variance's, bounded below): an SVI value under every one of 4000 draws is 1 sd from
    the mean, which a z threshold of 3 passes; by rank it is outside the NUTS range, and the overall verdict is bad."""
    from ppmodels.analysis.diagnostics import overall_verdict
    from ppmodels.analysis.gold_standard import NUTS_TAIL, gold_standard_verdict, summarize

    rng = np.random.default_rng(0)
    draws = {"sigma2": 1.0 + rng.exponential(size=(4, 1000)), "mean": rng.normal(size=(4, 1000))}
    gold = {**summarize(draws, {"sigma2": 0.999, "mean": 0.1}), "num_chains": 4}
    q = gold["quantities"]["sigma2"]
    assert -1.5 < q["z"] < -0.5 and q["rank"] == 0 and q["outside"] == "below" and q["outside_every_chain"]
    assert gold["off_posterior"] == ["sigma2"] and gold["outside_range"] == ["sigma2"] and gold["most_extreme"] == "sigma2"
    inside = gold["quantities"]["mean"]  # the mid-rank quantile of a value inside the draws, against a direct count
    assert inside["quantile"] == pytest.approx(np.mean(draws["mean"] < 0.1)) and inside["outside"] is None
    assert inside["chain_quantiles"] == pytest.approx([np.mean(c < 0.1) for c in draws["mean"]])
    assert "sigma2 = 0.999 lies below all 4000 NUTS draws" in gold_standard_verdict(gold)
    problems = overall_verdict({"gold_standard": gold})["problems"]
    assert [(p["code"], p["severity"]) for p in problems] == [("svi_off_posterior", "bad")]
    assert problems[0]["value"] == 0 and problems[0]["threshold"] == NUTS_TAIL and "below all 4000" in problems[0]["message"]


def test_the_size_of_a_discrepancy_is_said_when_the_chains_have_not_mixed():
    """Two chains stuck in different places (R-hat far above 1.01): the comparison is not trusted (a warning, not
    bad), yet the verdict and the problem say how far out the SVI value lies, and that it lies beyond every chain."""
    from ppmodels.analysis.diagnostics import overall_verdict
    from ppmodels.analysis.gold_standard import gold_standard_verdict, summarize

    rng = np.random.default_rng(1)
    draws = {"a": rng.normal(size=(2, 500)) + np.array([[0.0], [3.0]])}
    gold = {**summarize(draws, {"a": 9.0}), "num_chains": 2}
    assert gold["max_rhat"] > 1.5 and gold["quantities"]["a"]["outside_every_chain"]
    text = gold_standard_verdict(gold)
    assert "have not mixed" in text and "a = 9 lies above all 1000 NUTS draws" in text and "beyond the draws of every chain" in text
    (p,) = overall_verdict({"gold_standard": gold})["problems"]
    assert p["code"] == "nuts_untrustworthy" and p["severity"] == "warning" and "above all 1000" in p["message"]


def test_nuts_progress_is_one_line_per_tenth_of_each_chain_off_a_terminal(capsys):
    import pyro.distributions as dist

    from ppmodels.analysis.gold_standard import run_chains

    def normal():
        pyro.sample("a", dist.Normal(0.0, 1.0))

    import pyro

    draws = run_chains(normal, (), num_samples=20, warmup=20, num_chains=2, seed=0, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert draws["a"].shape == (2, 20) and len(lines) == 20
    assert lines[0] == "NUTS chain 1 of 2: step 4 of 40 (warmup)" and lines[4] == "NUTS chain 1 of 2: step 20 of 40 (warmup)"
    assert lines[5] == "NUTS chain 1 of 2: step 24 of 40 (draws)" and lines[-1] == "NUTS chain 2 of 2: step 40 of 40 (draws)"
    run_chains(normal, (), num_samples=20, warmup=20, num_chains=2, seed=0)
    assert capsys.readouterr().err == ""
