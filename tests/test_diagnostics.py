import dataclasses
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppmodels.analysis import diagnostics as dg
from ppmodels.models.base import ModelConfig, PPModel, data_plate
from ppmodels.analysis.inference_data import posterior_idata
from tests.helpers import assert_close_scaled


@dataclasses.dataclass
class LinearGaussianConfig(ModelConfig):
    guide_scale: float = 1.0


class LinearGaussian(PPModel):
    """z ~ N(0, I_2), x ~ N(W z, s^2 I_3), whose posterior is Gaussian in closed form.

    The guide is that exact posterior with its covariance multiplied by ``guide_scale**2``: 1 is exact, below 1
    too narrow. The importance weights then have a Pareto tail with shape k = 1 - guide_scale**2 (z_dim = 2: the
    squared radius of the guide's standard normal is exponential, so P(w > t) = t^(-1 / (1 - c^2))).
    """

    Config = LinearGaussianConfig
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.6, -1.2]])
    noise = 0.7

    def __init__(self, **kwargs):
        super().__init__(x_shape=[3], likelihood="gaussian", **kwargs)
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # device lookup needs a parameter
        precision = torch.eye(2) + self.W.T @ self.W / self.noise**2
        self.post_cov = torch.linalg.inv(precision)
        self.post_chol = torch.linalg.cholesky(self.post_cov)

    def model(self, x, num_data=None):
        with data_plate(len(x), num_data, x.device):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T, self.noise).to_event(1), obs=x)

    def guide(self, x, num_data=None):
        with data_plate(len(x), num_data, x.device):
            loc = x @ self.W / self.noise**2 @ self.post_cov
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=self.config.guide_scale * self.post_chol))

    def exact_log_evidence(self, x):
        cov = self.W @ self.W.T + self.noise**2 * torch.eye(3)
        return dist.MultivariateNormal(torch.zeros(3), cov).log_prob(x).numpy()


def log_weights(model, x, draws, seed=0):
    idata = posterior_idata(model, x, num_draws=draws, seed=seed)
    return idata.sample_stats["log_weight"].values[0].T  # (datum, draw)


@pytest.fixture
def data():
    torch.manual_seed(1)
    z = torch.randn(30, 2)
    return z @ LinearGaussian.W.T + LinearGaussian.noise * torch.randn(30, 3)


@pytest.mark.numerical
def test_exact_guide_gives_flat_weights_and_the_exact_evidence(data):
    model = LinearGaussian(guide_scale=1.0)
    lw = log_weights(model, data, 200)
    khat = dg.pareto_khat(lw)
    assert khat["frac_above_0.5"] == 0.0 and np.all(khat["khat"] < 0.5)
    ll = dg.log_likelihood_summary(lw)
    exact = model.exact_log_evidence(data)
    assert_close_scaled(ll["per_datum"]["iw"], exact, rel=1e-5)
    assert_close_scaled(ll["per_datum"]["psis"], exact, rel=1e-5)
    assert_close_scaled(ll["per_datum"]["elbo"], exact, rel=1e-5)
    assert abs(ll["gap"]) < 1e-4


@pytest.mark.parametrize("scale", [0.3, 0.6, 0.85])
def test_khat_matches_the_known_tail_of_a_too_narrow_guide(data, scale):
    model = LinearGaussian(guide_scale=scale)
    khat = dg.pareto_khat(log_weights(model, data, 4000))
    expected = 1 - scale**2  # 0.91, 0.64, 0.28
    assert abs(khat["median"] - expected) < 0.12, (khat["median"], expected)
    if expected > 0.7:
        assert khat["frac_above_0.7"] > 0.5
    if expected < 0.5:
        assert khat["frac_above_0.7"] == 0.0


def test_a_too_narrow_guide_underestimates_the_evidence_and_the_gap_shows_it(data):
    model = LinearGaussian(guide_scale=0.5)
    ll = dg.log_likelihood_summary(log_weights(model, data, 500))
    exact = model.exact_log_evidence(data)
    assert ll["elbo"] < ll["iw"] <= exact.mean() + 0.05
    assert ll["gap"] > 0.1 and ll["gap_se"] > 0
    assert math.isclose(ll["gap"], ll["iw"] - ll["elbo"], rel_tol=1e-9)


def test_too_few_draws_for_a_tail_fit_are_refused():
    from ppmodels.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 21 draws"):
        dg.pareto_khat(np.zeros((3, 20)))
    assert np.isfinite(dg.pareto_khat(np.random.default_rng(0).normal(size=(3, 21)))["khat"]).all()


def test_worst_reports_the_named_data_with_the_largest_khat():
    rng = np.random.default_rng(0)
    lw = rng.normal(size=(5, 1000))
    lw[3] = rng.standard_t(1, size=1000) * 3  # a Cauchy-tailed datum
    khat = dg.pareto_khat(lw, datum_index=np.array([10, 11, 12, 13, 14]), num_worst=2)
    assert khat["worst"][0]["datum"] == 13 and khat["worst"][0]["khat"] == khat["max"]
    # only the heavy-tailed datum is above the cut in both halves of the draws; the Gaussian ones are not listed at all
    assert [w["datum"] for w in khat["worst"]] == [13] and khat["frac_above_threshold_both_halves"] == pytest.approx(0.2)


def synthetic_classifier(n=20000, k=5, seed=0, sharpen=1.0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    labels = np.array([rng.choice(k, p=p) for p in probs])  # the labels follow the probabilities: calibrated
    sharp = probs**sharpen
    return sharp / sharp.sum(1, keepdims=True), labels


def test_ece_of_a_calibrated_classifier_is_near_zero_and_of_an_overconfident_one_is_not():
    probs, labels = synthetic_classifier()
    calibrated = dg.calibration(probs, labels)
    assert calibrated["ece"] < 0.015
    assert sum(b["count"] for b in calibrated["bins"]) == len(labels)
    for b in calibrated["bins"]:
        if b["count"] > 500:
            assert abs(b["accuracy"] - b["confidence"]) < 0.04
    over = dg.calibration(*synthetic_classifier(sharpen=4.0))
    assert over["ece"] > 0.1 and over["overconfidence"] > 0.1
    assert over["accuracy"] == pytest.approx(calibrated["accuracy"])  # sharpening keeps the argmax


def test_pit_is_uniform_for_a_right_predictive_and_piles_at_the_ends_for_a_narrow_one():
    rng = np.random.default_rng(7)
    loc = rng.normal(size=(400, 6))
    observed = loc + rng.normal(size=loc.shape)
    right = dg.predictive_pit(observed, loc + rng.normal(size=(50, *loc.shape)), "gaussian")
    assert abs(right["tail_fraction"] - 0.1) < 0.02 and right["ks_distance"] < 0.03
    narrow = dg.predictive_pit(observed, loc + 0.3 * rng.normal(size=(50, *loc.shape)), "gaussian")
    assert narrow["tail_fraction"] > 0.4
    np.testing.assert_allclose(right["feature_mean"], 0.5, atol=0.05)


def test_randomized_pit_of_binary_data_is_uniform_when_probabilities_are_right():
    rng = np.random.default_rng(7)  # not the PIT's own seed 0: its uniform draws must not repeat these
    p = rng.uniform(0.1, 0.9, size=(500, 20))
    observed = (rng.random(p.shape) < p).astype(float)
    replicates = (rng.random((200, *p.shape)) < p).astype(float)
    pit = dg.predictive_pit(observed, replicates, "bernoulli")
    assert pit["informative_fraction"] > 0.95
    assert abs(pit["tail_fraction"] - 0.1) < 0.02 and pit["ks_distance"] < 0.03
    wrong = dg.predictive_pit(observed, (rng.random((200, *p.shape)) < 1 - p).astype(float), "bernoulli")
    assert wrong["ks_distance"] > pit["ks_distance"] + 0.05


def test_pit_ecdf_of_binary_and_binomial_data_stays_in_its_band_when_the_predictive_is_right():
    """One randomized PIT per datum against arviz's simultaneous band: replicates from the data's own probabilities stay
    inside it (binary pixels, and binomial counts out of 16), sharpened probabilities leave it; a feature constant in
    the data (a corner pixel, always 0) is never drawn."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(600, 12))
    p = 1 / (1 + np.exp(-logits))
    p[:, 0] = 0.0  # a corner: 0 in every datum and every replicate, its PIT pure noise
    observed = (rng.random(p.shape) < p).astype(float)
    sharp = np.where(p > 0, 1 / (1 + np.exp(-3 * logits)), 0.0)

    def check(probs):
        replicates = (rng.random((20, *probs.shape)) < probs).astype(float)
        return dg.pit_ecdf_check(dg.predictive_pit(observed, replicates, "bernoulli", seed=1)["pit"], observed, seed=1)

    right, wrong = check(p), check(sharp)
    assert right["informative_features"] == 11 and right["num_values"] == 600 and not right["outside_band"], right["max_deviation"]
    assert wrong["outside_band"] and wrong["max_deviation"] > right["max_deviation"]
    assert np.all((right["lower"] < right["eval_points"]) & (right["eval_points"] < right["upper"]))
    counts = rng.binomial(16, p[:, 1:])
    binomial = dg.pit_ecdf_check(dg.predictive_pit(counts / 16, rng.binomial(16, p[:, 1:], size=(20, 600, 11)) / 16, "binomial:16", seed=2)["pit"],
                                 counts / 16, seed=2)
    assert not binomial["outside_band"], binomial["max_deviation"]
    off = dg.pit_ecdf_check(dg.predictive_pit(counts / 16, rng.binomial(16, np.clip(p[:, 1:] + 0.15, 0, 1), size=(20, 600, 11)) / 16,
                                              "binomial:16", seed=2)["pit"], counts / 16, seed=2)
    assert off["outside_band"]


def test_pit_ecdf_of_a_vae_on_data_simulated_from_it_stays_in_its_band_and_a_one_epoch_vae_leaves_it():
    """The check through the model: binary images simulated from a 20-epoch digits VAE are diagnosed by that VAE (the
    true model, up to its guide) and by a 1-epoch one; only the latter leaves the band (seeds 0-2: largest deviation
    0.03-0.054 inside against 0.096-0.138 outside)."""
    from ppmodels.data import load_dataset
    from ppmodels.infer import TrainConfig, fit
    from ppmodels.models import VAE

    digits = load_dataset("digits")

    def trained(epochs):
        torch.manual_seed(0)
        return fit(VAE(x_shape=[1, 8, 8], z_dim=4, hidden=[32], likelihood="bernoulli", seed=0), digits,
                   TrainConfig(epochs=epochs, batch_size=64, patience=None, seed=0))

    good, bad = trained(20), trained(1)
    with torch.no_grad():
        x = good.x_dist(torch.randn(500, 4, generator=torch.Generator().manual_seed(1))).sample()

    def check(model):
        idata = posterior_idata(model, x, None, num_draws=20, seed=0)
        observed = idata.observed_data["x"].values.reshape(len(x), -1)
        replicates = idata.posterior_predictive["x"].values[0].reshape(-1, len(x), observed.shape[1])
        return dg.pit_ecdf_check(dg.predictive_pit(observed, replicates, "bernoulli")["pit"], observed)

    inside, outside = check(good), check(bad)
    assert not inside["outside_band"] and outside["outside_band"], (inside["max_deviation"], outside["max_deviation"])
    problems = [p["code"] for p in dg.overall_verdict({"pit": {"ecdf": outside}})["problems"]]
    assert problems == ["pit_outside_band"] and dg.overall_verdict({"pit": {"ecdf": inside}})["problems"] == []


def test_reconstruction_shift_detects_worse_held_out_errors():
    rng = np.random.default_rng(0)
    train = rng.normal(100, 10, size=500)
    same = dg.reconstruction_shift(rng.normal(100, 10, size=500), train)
    assert abs(same["difference"]) < 3 * same["difference_se"]
    worse = dg.reconstruction_shift(rng.normal(110, 10, size=500), train)
    assert worse["difference"] > 5 * worse["difference_se"]
    assert "overfitting" in dg.ppc_verdict(None, worse) and "noticeably worse" in dg.ppc_verdict(None, worse)


def test_training_convergence_slope_best_epoch_and_verdicts():
    rising = [{"epoch": e, "train_elbo": -100 + 2 * e, "valid_elbo": -101 + 2 * e} for e in range(1, 11)]
    conv = dg.training_convergence(rising)
    assert conv["slope"] == pytest.approx(2.0) and conv["best_epoch"] == 10 and conv["epochs_since_best"] == 0
    assert "still improving" in dg.convergence_verdict(conv)
    peaked = [{"epoch": e, "train_elbo": -100 + e, "valid_elbo": -100 + 5 - abs(e - 5)} for e in range(1, 21)]
    conv = dg.training_convergence(peaked)  # the window is the last 10 epochs (at least 10, 20% of long runs)
    assert conv["best_epoch"] == 5 and conv["epochs_since_best"] == 15 and conv["slope"] == pytest.approx(-1.0)
    assert "past its best" in dg.convergence_verdict(conv)
    flat = dg.training_convergence([{"epoch": e, "train_elbo": -50.0} for e in range(1, 6)])
    assert flat["slope_of"] == "train_elbo" and "levelled off" in dg.convergence_verdict(flat)
    assert "too few" in dg.convergence_verdict(dg.training_convergence(rising[:1]))
    staged = [{**r, "stage": "m1", "valid_elbo": -20.0 + r["epoch"]} for r in rising[:5]] + [{**r, "stage": "m2"} for r in rising[5:]]
    conv = dg.training_convergence(staged)  # the m2 stage's ELBO is lower than m1's best, but m1 optimised another objective
    assert conv["stage_starts"] == {"m1": 1, "m2": 6} and conv["best_epoch"] == 10 and conv["slope"] == pytest.approx(2.0)


def test_convergence_names_the_epoch_whose_weights_are_diagnosed():
    """M2 keeps its most accurate epoch (24 here) while its validation ELBO still rises to epoch 39: the verdict names
    epoch 24 as the diagnosed one, beside the last epoch and the ELBO there; a run that kept its last epoch says so."""
    records = [{"epoch": e, "train_elbo": -90 + e, "valid_elbo": -100 + 0.5 * e, "valid_accuracy": 0.8 - abs(e - 24) / 100,
                "valid_accuracy_kind": "balanced", "best_epoch": min(e, 24)} for e in range(1, 40)]
    conv = dg.training_convergence(records)
    assert (conv["selected_epoch"], conv["last_epoch"], conv["best_epoch"], conv["selected_by"]) == (24, 39, 39, "valid_accuracy")
    assert conv["selected_elbo"] == pytest.approx(-88.0)
    text = dg.convergence_verdict(conv)
    assert ("The diagnosed weights are those of epoch 24 (chosen by the accuracy of the validation labels, balanced over their classes), not of the last epoch 39; the validation "
            "ELBO there was -88.00, 7.50 nats per datum below its best (epoch 39).") in text
    kept_last = dg.training_convergence([{**r, "best_epoch": r["epoch"]} for r in records[:10]])
    assert kept_last["selected_epoch"] == 10 and "those of epoch 10, the last (chosen by the accuracy of the validation labels, balanced over their classes)." in dg.convergence_verdict(kept_last)
    plain = dg.training_convergence([{k: v for k, v in r.items() if k != "valid_accuracy_kind"} for r in records])  # before balanced selection
    assert plain["accuracy_kind"] == "plain" and "epoch 24 (chosen by the accuracy of the validation labels), not" in dg.convergence_verdict(plain)
    old = dg.training_convergence([{k: v for k, v in r.items() if k != "best_epoch"} for r in records])  # an older metrics.jsonl
    assert old["selected_epoch"] == old["best_epoch"] == 39


def test_a_slow_rise_under_jitter_is_still_improving_over_a_long_enough_window():
    """0.05 nats per epoch under jitter of sd 0.1: over 5 epochs the slope is within 2 standard errors of 0 (the old
    check called such runs levelled off), over the last 20 of 100 epochs its t-statistic is far above 2."""
    jitter = np.random.default_rng(0).normal(scale=0.1, size=100)
    records = [{"epoch": e, "train_elbo": -99.0, "valid_elbo": -100 + 0.05 * e + j} for e, j in zip(range(1, 101), jitter)]
    short = dg.training_convergence(records, last=5)
    assert abs(short["slope_t"]) < 2 and dg.convergence_state(short) == "levelled"
    conv = dg.training_convergence(records)
    assert conv["slope_epochs"] == 20 and conv["slope_t"] > 5 and dg.convergence_state(conv) == "improving"


def test_a_jittering_plateau_has_levelled_off_and_a_real_decline_is_past_its_best():
    """The validation ELBO of PPCA started at its closed form (ppmodels train ppca --data digits, epochs 12-23): it
    jitters by 0.01 nats around -0.79 with no trend, which the slope's standard error tells from a real decline."""
    plateau = [-0.7820, -0.7867, -0.7819, -0.7747, -0.7846, -0.7837, -0.7904, -0.7897, -0.7779, -0.7748, -0.7910, -0.8001]
    records = [{"epoch": e, "train_elbo": -0.7, "valid_elbo": -0.76 if e == 3 else v} for e, v in zip(range(12, 24), plateau)]
    records = [{"epoch": 3, "train_elbo": -0.7, "valid_elbo": -0.76}] + records
    conv = dg.training_convergence(records)
    assert conv["relative_slope"] < -1e-3 and abs(conv["slope"]) < 2 * conv["slope_se"]  # a large relative slope, no trend
    assert dg.convergence_state(conv) == "levelled" and "levelled off" in dg.convergence_verdict(conv)
    declining = [{"epoch": e, "train_elbo": -0.7, "valid_elbo": -0.76 - 0.01 * max(0, e - 3) + 0.001 * (-1) ** e} for e in range(1, 24)]
    assert dg.convergence_state(dg.training_convergence(declining)) == "past_best"


def test_khat_verdict_names_the_share_of_bad_data():
    khat = {"frac_above_threshold": 0.12, "frac_above_threshold_se": 0.015, "frac_above_threshold_mc_se": 0.01, "threshold": 0.5654,
            "frac_above_0.5": 0.3, "num_particles": 200}
    text = dg.khat_verdict(khat, "test images")
    assert text.startswith("12.0% of test images (+- 1.5 over data, +- 1.0 Monte Carlo) have k-hat > 0.57, the cut for 200 draws")
    assert "too narrow" in text and "several points" in text
    assert "exact posterior" in dg.khat_verdict({"exact": True, "num_particles": 200}, "test images")


@pytest.mark.parametrize("draws", [30, 200, 1000, 5000])
def test_khat_threshold_is_arviz_good_k(draws):
    """The cut that depends on the number of draws is ArviZ's own (``az.loo(...).good_k``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        rng = np.random.default_rng(0)
        idata = az.from_dict(posterior={"a": rng.normal(size=(1, draws))}, log_likelihood={"x": rng.normal(size=(1, draws, 5))})
        good_k = az.loo(idata).good_k
    assert dg.khat_threshold(draws) == pytest.approx(good_k)
    assert dg.khat_threshold(200) == pytest.approx(0.5654, abs=1e-4)


def test_khat_share_has_a_monte_carlo_error_that_matches_its_spread_over_seeds():
    """Data whose k-hat sits near the cut: the share moves from seed to seed by about its Monte Carlo error, and the
    k-hats are ArviZ's psislw on the same weights."""
    import warnings

    tails = np.repeat([0.3, 0.55, 0.62, 0.9], 50)  # Pareto tails of shape k around the cut 0.67 at 1000 draws
    shares, errors = [], []
    for seed in range(6):
        lw = np.log(np.random.default_rng(seed).pareto(1 / tails[:, None], size=(200, 1000)) + 1)
        khat = dg.pareto_khat(lw, seed=seed)
        shares.append(khat["frac_above_threshold"])
        errors.append(khat["frac_above_threshold_mc_se"])
        if seed == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import arviz as az

                assert_close_scaled(khat["khat"], az.psislw(lw.copy(), normalize=False)[1], rel=1e-7)
    assert 0.2 < np.mean(shares) < 0.6
    spread = np.std(shares, ddof=1)
    assert 0.3 * spread < np.mean(errors) < 4 * spread + 0.01, (spread, errors)
    assert min(errors) > 0.3 * spread, (spread, errors)  # 10 splits: no single estimate far too small


def test_worst_list_skips_exact_weights():
    khat = dg.pareto_khat(np.full((4, 100), -3.0))
    assert khat["exact"] and khat["worst"] == [] and khat["frac_above_threshold_mc_se"] == 0.0


def test_active_units_count_dimensions_that_carry_information():
    rng = np.random.default_rng(0)
    means = np.column_stack([rng.normal(size=500), 0.01 * rng.normal(size=500), rng.normal(size=500)])
    units = dg.active_units(means)
    assert units["active"] == 2 and units["dims"] == 3
    collapsed = dg.active_units(0.001 * rng.normal(size=(500, 4)))
    assert collapsed["active"] == 0 and "posterior collapse" in dg.active_verdict({"z": collapsed})


def test_a_dimension_with_no_kl_to_its_prior_is_flagged_as_collapsed():
    """q(z|x) = N(m, s^2) per datum with KL per dimension against N(0, 1) in closed form (the ``kl_<site>`` terms of
    the InferenceData estimate it; tests/test_diagnose.py checks them against torch): a dimension whose q is the prior
    for every datum is flagged as collapsed even when the others are active."""
    rng = np.random.default_rng(0)
    n = 300
    loc = np.column_stack([rng.normal(size=n), np.zeros(n), 0.5 * rng.normal(size=n)])
    scale = np.array([0.2, 1.0, 0.5])
    kl = (0.5 * (scale**2 + loc**2 - 1 - np.log(scale**2))).mean(0)
    units = dg.active_units(loc, kl_per_dim=kl)
    assert units["collapsed"] == [1] and units["active"] == 2
    text = dg.active_verdict({"z": units})
    assert "1 of 3 dimensions of z are collapsed" in text and "dimension 1)" in text


def test_class_dependence_sees_a_decoder_that_ignores_the_label():
    rng = np.random.default_rng(0)
    style = rng.random((50, 1, 16))
    ignores = np.repeat(style, 10, axis=1)  # every class row the same image
    uses = style + np.eye(10, 16)[None] * 3  # each class lights its own feature
    assert dg.class_dependence(ignores)["share"] == pytest.approx(0.0)
    assert "ignores y" in dg.class_dependence_verdict(dg.class_dependence(ignores))
    dep = dg.class_dependence(uses)
    assert dep["share"] > 0.5 and "uses the label" in dg.class_dependence_verdict(dep)


def test_verdicts_are_true_of_models_without_an_approximate_guide():
    ll = {"iw": -10.0, "iw_se": 0.1, "psis": -10.0, "elbo": -10.0, "gap": 0.0, "num_particles": 100}
    exact = {"khat": {"exact": True, "num_particles": 100}, "log_likelihood": ll, "guide_samples_latents": True}
    assert "exact posterior" in dg.verdicts(exact)["khat"] and "exact" in dg.verdicts(exact)["log_likelihood"]
    no_guide = {**exact, "khat": {"exact": False, "num_particles": 100}, "guide_samples_latents": False}
    text = dg.verdicts(no_guide)["khat"]
    assert "covers" not in text and "no approximate posterior" in text
    assert set(dg.verdicts(exact)) <= set(dg.VERDICT_TITLES)


@pytest.mark.numerical
def test_the_elbo_comes_from_the_guide_weights_when_the_bound_uses_exact_sums():
    rng = np.random.default_rng(0)
    exact, sampled = rng.normal(-10, 0.3, size=(4, 50)), rng.normal(-12, 1.0, size=(4, 50))
    ll = dg.log_likelihood_summary(exact, sampled)
    assert_close_scaled(ll["per_datum"]["elbo"], sampled.mean(1), rel=1e-12)
    assert ll["gap"] == pytest.approx(ll["iw"] - sampled.mean())


@pytest.mark.parametrize("tail, ks, mean, phrase", [(0.3, 0.2, 0.5, "overconfident"), (0.03, 0.1, 0.5, "bunched in the middle"),
                                                    (0.1, 0.1, 0.5, "without a bias"), (0.1, 0.01, 0.5, "close to uniform"),
                                                    (0.1, 0.1, 0.6, "biased, the data are larger"), (0.03, 0.1, 0.4, "smaller than it predicts")])
def test_pit_verdict_reads_the_histogram_shape(tail, ks, mean, phrase):
    """Only a shifted PIT is called biased; a centred one of another shape (PPCA's Gaussian on pixels piled at 0) is not."""
    text = dg.ppc_verdict({"tail_fraction": tail, "ks_distance": ks, "mean": mean, "informative_fraction": 0.3}, None)
    assert phrase in text
    assert ("biased" in text) == (abs(mean - 0.5) > dg.PIT_SHIFT)


def test_overall_verdict_takes_the_most_severe_problem():
    rising = dg.training_convergence([{"epoch": e, "train_elbo": -100 + 2 * e + 0.1 * (-1) ** e} for e in range(1, 21)])
    base = {"khat": {"frac_above_threshold": 0.0, "threshold": 0.6}, "active_units": {"z": {"active": 3, "dims": 3, "threshold": 0.01}}}
    assert dg.overall_verdict(base) == {"status": "good", "problems": []}
    warned = dg.overall_verdict({**base, "convergence": rising})
    assert warned["status"] == "warning" and [p["code"] for p in warned["problems"]] == ["not_converged"]
    assert warned["problems"][0]["value"] > dg.CONVERGENCE_T
    collapsed = {**base, "convergence": rising, "active_units": {"z": {"active": 0, "dims": 3, "threshold": 0.01}}}
    bad = dg.overall_verdict(collapsed)
    assert bad["status"] == "bad" and [p["code"] for p in bad["problems"]] == ["not_converged", "posterior_collapse"]
    assert dg.overall_text(bad, "10 data").startswith("Overall: bad.")
