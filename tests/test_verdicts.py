"""Verdicts from checks that can fail: posterior predictive p-values, the independent-features baseline, and the small
verdict benchmark (known-bad fits named bad for the right reason, a good fit not named bad; benchmarks/verdicts.py
holds the large one)."""

import numpy as np
import pytest
from scipy import stats

from ppmodels.analysis import diagnostics as dg
from ppmodels.commands.diagnose import diagnose
from ppmodels.commands.train import train
from ppmodels.infer import TrainConfig


def test_mid_p_splits_ties_and_extreme_statistics_are_flagged():
    assert dg.mid_p(np.zeros(10), np.array(0.0)) == pytest.approx(0.5)  # every draw ties: no evidence either way
    assert dg.mid_p(np.arange(10.0), np.array(4.0)) == pytest.approx(0.55)
    rng = np.random.default_rng(0)
    observed = np.where(rng.random((200, 16)) < 0.5, 0.0, rng.random((200, 16)))  # half exact zeros
    gaussian = rng.normal(observed.mean(0), observed.std(0), size=(100, 200, 16))  # right mean and sd, no zeros
    ppc = dg.ppc_pvalues(observed, gaussian)
    zeros = ppc["statistics"]["zero_share"]
    assert zeros["p_value"] == 0.0 and zeros["flagged"] and zeros["severity"] == "bad" and "zero_share" in ppc["flagged"]
    same = np.where(rng.random((100, 200, 16)) < 0.5, 0.0, rng.random((100, 200, 16)))  # replicates from the data's own law
    ppc = dg.ppc_pvalues(observed, same)
    assert ppc["flagged"] == [] and 0.01 < ppc["statistics"]["zero_share"]["p_value"] < 0.99


def test_independent_baseline_is_the_product_of_fitted_marginals():
    rng = np.random.default_rng(1)
    train_x = (rng.random((500, 6)) < np.linspace(0.1, 0.9, 6)).astype(float)
    x = (rng.random((7, 6)) < 0.5).astype(float)
    p = train_x.mean(0)
    got = dg.independent_baseline(train_x, x, "bernoulli")["per_datum"]
    np.testing.assert_allclose(got, stats.bernoulli(p).logpmf(x).sum(-1), rtol=1e-10)
    k = rng.integers(0, 17, size=(400, 5))
    counts = dg.independent_baseline(k[:300] / 16, k[300:] / 16, "binomial:16")["per_datum"]
    np.testing.assert_allclose(counts, stats.binom(16, (k[:300] / 16).mean(0)).logpmf(k[300:]).sum(-1), rtol=1e-10)
    g = rng.normal(size=(300, 4)) * [1, 2, 3, 4]
    gauss = dg.independent_baseline(g, g[:5], "gaussian")["per_datum"]
    np.testing.assert_allclose(gauss, stats.norm(g.mean(0), g.std(0)).logpdf(g[:5]).sum(-1), rtol=1e-10)
    cmp = dg.baseline_comparison({"log_likelihood": -10.0, "per_datum": np.full(5, -10.0), "num_features": 4}, np.full(5, -12.0) + np.arange(5) * 0.01)
    assert cmp["gain"] < 0 and cmp["explains_little"] and "worse than independent" in dg.baseline_verdict(cmp)


FITS = {  # name: (model, options, epochs, what the verdict must be)
    "vae_one_epoch": ("vae", {"z_dim": 5, "hidden": [64]}, 1, "bad"),
    "ppca_gaussian": ("ppca", {"z_dim": 5}, 30, "bad"),
    "vae_trained": ("vae", {"z_dim": 5, "hidden": [64]}, 40, "not bad"),
}


@pytest.fixture(scope="module", params=list(FITS))
def verdict(request, tmp_path_factory):
    model, options, epochs, truth = FITS[request.param]
    run = tmp_path_factory.mktemp(request.param) / "run"
    train(model, "digits", run, model_options=options, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=epochs, batch_size=64, patience=None, seed=0))
    result = diagnose(run, num_data=60, particles=100, report=False)
    return request.param, truth, result


def test_small_verdict_benchmark(verdict):
    """A 1-epoch VAE is bad because it explains the data worse than independent pixels (its reconstructions are one
    grey blob); a Gaussian PPCA on digits is bad because it predicts no exact zeros where half the pixels are 0; a
    trained VAE is not bad (warnings are allowed: its binomial predictive has fewer zeros than the data)."""
    name, truth, result = verdict
    overall = result["overall"]
    codes = {p["code"] for p in overall["problems"] if p["severity"] == "bad"}
    if truth == "bad":
        assert overall["status"] == "bad", overall
    else:
        assert overall["status"] != "bad", overall
    if name == "vae_one_epoch":
        assert "worse_than_independent" in codes and result["baseline"]["gain"] < 0
    if name == "ppca_gaussian":
        assert "ppc_zero_share" in codes and result["ppc_pvalues"]["statistics"]["zero_share"]["replicated_mean"] < 0.01
    if name == "vae_trained":
        assert result["baseline"]["gain"] > 50 and not codes


def test_mutual_information_of_a_gaussian_channel_and_of_a_guide_that_ignores_x():
    """q(z | x_n) = N(m_n, v) with m_n ~ N(0, 1): I(x; z) = 0.5 log(1 + 1/v) (0.80 nats at v = 0.25); a guide that gives
    every x the same N(0, 0.01) carries nothing, though its KL to a N(0, 1) prior is 1.8 nats."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(400, 1))
    channel = means + 0.5 * rng.normal(size=(50, 400, 1))
    same = 0.1 * rng.normal(size=(50, 400, 1))
    mi = dg.mutual_information(np.concatenate([channel, same], -1))
    # 50 draws fit each q(z_d | x_n): a bias of about 1 / (2 x 50) nats, well under the collapse threshold
    assert mi[0] == pytest.approx(0.5 * np.log(5), abs=0.08) and abs(mi[1]) < dg.MI_COLLAPSED / 2
    units = dg.active_units(np.concatenate([means, same.mean(0)], -1), kl_per_dim=np.array([0.8, 1.8]), mi_per_dim=mi)
    assert units["collapsed"] == [1] and "mutual information" in dg.active_verdict({"z": units})


def test_calibration_has_an_ece_interval_a_noise_floor_nll_and_brier():
    """A classifier calibrated by construction: its ECE lies near the floor of a perfectly calibrated one of the same
    size; NLL and Brier against their definitions."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=300)
    labels = np.array([rng.choice(4, p=p) for p in probs])
    cal = dg.calibration(probs, labels)
    assert cal["ece_low"] <= cal["ece"] <= cal["ece_high"] and cal["ece"] < cal["ece_floor_95"] + 0.02
    assert cal["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(300), labels])))
    assert cal["brier"] == pytest.approx(np.mean(((probs - np.eye(4)[labels]) ** 2).sum(1)))
    sure = np.eye(4)[(labels + (rng.random(300) < 0.3)) % 4] * 0.97 + 0.01  # 97% sure, right 70% of the time
    assert dg.calibration(sure, labels)["ece"] > dg.calibration(sure, labels)["ece_floor_95"]
