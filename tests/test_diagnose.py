import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from ppmodels.analysis.diagnostics import calibration, pareto_khat
from ppmodels.analysis.inference_data import labels_of
from ppmodels.commands.train import train
from ppmodels.commands.diagnose import DIAGNOSTICS, IDATA, REPORT, diagnose
from ppmodels.infer import TrainConfig
from tests.helpers import assert_close_scaled

M, S = 24, 30
RUNS = {
    "vae": ({"z_dim": 3, "hidden": [16]}, None, 3),
    "m1": ({"z_dim": 3, "hidden": [16], "likelihood": "bernoulli"}, 50, 3),  # 0/1 predictive draws, stored as integers
    "m2": ({"z_dim": 3, "hidden": [16]}, 50, 3),
    "m1m2": ({"z1_dim": 4, "z2_dim": 2, "m1_hidden": [16], "m2_hidden": [16]}, 50, 4),
}
LATENTS = {"vae": {"z": 3}, "m1": {"z": 3}, "m2": {"z": 3, "y": 10}, "m1m2": {"z1": 4, "y": 10, "z2": 2}}


@pytest.fixture(scope="module", params=list(RUNS))
def diagnosed(request, tmp_path_factory):
    name = request.param
    options, labels, epochs = RUNS[name]
    run = tmp_path_factory.mktemp(name) / "run"
    train(name, "digits", run, labels=labels, model_options=options, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=epochs, batch_size=128, patience=None, seed=0))
    result = diagnose(run, num_data=M, particles=S, batch_size=10)
    return name, run, result


def test_every_group_has_its_shape_after_reloading(diagnosed):
    import arviz as az

    name, run, result = diagnosed
    idata = az.from_netcdf(str(run / "diagnostics" / IDATA))
    for site, size in LATENTS[name].items():
        assert idata.posterior[site].dims == ("chain", "draw", "datum", f"{site}_dim")
        assert idata.posterior[site].shape == (1, S, M, size)
    assert set(idata.posterior.data_vars) == set(LATENTS[name])
    assert idata.posterior_predictive["x"].shape == (1, S, M, 1, 8, 8)  # every draw: LOO-PIT pairs them with the weights
    assert idata.log_likelihood["x"].shape == (1, S, M, 1, 8, 8)  # per pixel, as observed
    assert idata.sample_stats["log_weight"].shape == (1, S, M)
    for site, size in LATENTS[name].items():  # per-dimension KL terms of the continuous latents
        assert (f"kl_{site}" in idata.sample_stats) == (site != "y")
    assert idata.observed_data["x"].shape == (M, 1, 8, 8)
    assert labels_of(idata).shape == (M,)
    epochs = RUNS[name][2]
    assert idata.training["train_elbo"].dims == ("epoch",) and idata.training["train_elbo"].shape == (epochs,)
    assert np.isfinite(idata.training["valid_elbo"].values).all()
    # data are a random subset of the test split, named by their index in it
    assert np.all(np.diff(idata.observed_data["datum"].values) > 0) and idata.observed_data["datum"].values.max() < 360
    if name == "vae":  # labels are data the model does not predict
        assert "predictions" not in idata.groups() and "y" not in idata.observed_data and "y" in idata.constant_data
    else:
        assert idata.predictions["y_prob"].shape == (1, 1, M, 10) and idata.predictions["y_pred"].shape == (1, 1, M)
        np.testing.assert_allclose(idata.predictions["y_prob"].values.sum(-1), 1.0, rtol=1e-5)
        assert idata.observed_data["y"].shape == (M,) and idata.posterior_predictive["y"].shape == (1, S, M)
    if name in ("m2", "m1m2"):  # the exact sum over y, beside the sampled-y weights of the stored draws
        assert idata.sample_stats["iw_log_weight"].shape == (1, S, M)
        assert result["log_weights"] == "iw_log_weight" and "khat_exact_sum" in result
        # the headline k-hat judges the whole guide, q(y|x) included: the stored weights with y sampled
        np.testing.assert_allclose(result["khat"]["khat"], pareto_khat(idata.sample_stats["log_weight"].values[0].T.astype(float))["khat"])
        dep = result["class_dependence"]  # every class decoded from each datum's style
        assert 0 <= dep["share"] <= 1 and "class_dependence" in result["verdicts"]
    else:
        assert "iw_log_weight" not in idata.sample_stats and result["log_weights"] == "log_weight"


def test_diagnostics_json_is_strict_and_consistent_with_the_idata(diagnosed):
    import arviz as az

    name, run, result = diagnosed
    folder = run / "diagnostics"

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    saved = json.loads((folder / DIAGNOSTICS).read_text(), parse_constant=refuse)
    assert saved["model"] == name and saved["num_data"] == M and saved["particles"] == S
    ll = saved["log_likelihood"]
    assert ll["iw"] >= ll["elbo"] and ll["gap"] == pytest.approx(ll["iw"] - ll["elbo"])
    # the IW estimate and the k-hats recomputed from the stored weights
    idata = az.from_netcdf(str(folder / IDATA))
    lw = idata.sample_stats[saved["log_weights"]].values[0]
    iw = np.logaddexp.reduce(lw.astype(float), axis=0) - np.log(S)
    assert ll["iw"] == pytest.approx(iw.mean(), rel=1e-6)
    khat = pareto_khat(lw.T.astype(float))
    exact = saved.get("khat_exact_sum", saved["khat"])  # M2, M1+M2: the exact sum over y is the secondary judge
    assert_close_scaled(exact["khat"], khat["khat"], rel=1e-6)
    assert exact["frac_above_0.7"] == pytest.approx(np.mean(khat["khat"] > 0.7))
    assert exact["threshold"] == pytest.approx(1 - 1 / np.log10(S))  # 0.32 at 30 draws
    assert exact["frac_above_threshold"] == pytest.approx(np.mean(khat["khat"] > exact["threshold"]))
    assert saved["convergence"]["num_epochs"] == RUNS[name][2]
    conv = saved["convergence"]  # the kept epoch's weights are the ones diagnosed, and the verdict names them
    assert conv["selected_epoch"] == json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["best_epoch"]
    assert f"epoch {conv['selected_epoch']}" in saved["verdicts"]["convergence"] and "diagnosed weights" in saved["verdicts"]["convergence"]
    ecdf = saved["pit"]["ecdf"]  # one randomized PIT per datum; the values themselves stay out of the JSON
    assert ecdf["num_values"] == M and 0 < ecdf["informative_features"] <= 64 and "ecdf_values" not in saved["pit"]
    assert set(saved["verdicts"]) >= {"khat", "log_likelihood", "ppc", "convergence"}
    assert ("calibration" in saved["verdicts"]) == (name != "vae")
    if name != "vae":
        cal = saved["calibration"]  # of the stored class probabilities against the stored labels
        expected = calibration(idata.predictions["y_prob"].values[0, 0], idata.observed_data["y"].values)
        assert sum(b["count"] for b in cal["bins"]) == M and cal["ece"] == pytest.approx(expected["ece"])


def test_arviz_own_functions_accept_the_idata(diagnosed):
    """The file follows ArviZ's schema: its functions run on it with their defaults (loo_pit needs the variable)."""
    import warnings

    import arviz as az
    import matplotlib.pyplot as plt

    name, run, result = diagnosed
    idata = az.from_netcdf(str(run / "diagnostics" / IDATA))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # one chain (R-hat) and k-hat > 0.7 warnings: the note says why
        warnings.simplefilter("ignore", DeprecationWarning)  # ArviZ 0.23 calls a matplotlib 3.11 deprecated helper
        warnings.simplefilter("ignore", RuntimeWarning)  # MCSE of a constant one-hot entry of y divides 0 by 0
        summary = az.summary(idata)
        assert len(summary) == sum(size for size in LATENTS[name].values()) * M
        assert not az.summary(idata, group="sample_stats", var_names=["log_weight"]).empty
        assert idata.log_likelihood["x"].dtype == np.float64  # float32 gives az.loo NaN
        loo = az.loo(idata, var_name="x")  # classifiers also have log q(y|x) as log_likelihood.y
        assert np.isfinite(float(loo.elpd_loo))
        if "y" in idata.observed_data:  # the label's LOO-PIT pairs log_likelihood.y with the draws of y
            assert az.loo_pit(idata, y="y").shape == (M,)
        az.plot_ppc(idata, num_pp_samples=5)
        az.plot_khat(loo)
        if RUNS[name][0].get("likelihood") == "bernoulli":  # binary x: no LOO-PIT, and the file says why
            assert idata.posterior_predictive["x"].dtype == np.int8 and "LOO-PIT is not defined" in idata.posterior_predictive.attrs["note"]
        else:
            pit = az.loo_pit(idata, y="x")
            assert pit.shape == (M, 1, 8, 8) and float(pit.min()) >= 0 and float(pit.max()) <= 1
            az.plot_loo_pit(idata, y="x")
        az.extract(idata, group="predictions") if name != "vae" else None
    plt.close("all")
    # az.loo is no estimate of log p(x) here (per-feature harmonic means), and the file says by how much it is off
    attrs = idata.log_likelihood.attrs
    assert "harmonic mean" in attrs["note"] and "az.loo gives" in attrs["warning"]
    assert attrs["loo_minus_iw_per_datum"] == pytest.approx(float(loo.elpd_loo) / M - result["log_likelihood"]["iw"], rel=1e-6)
    assert abs(attrs["loo_minus_iw_per_datum"]) > 0.1


def test_report_is_one_self_contained_page(diagnosed):
    name, run, _ = diagnosed
    page = (run / "diagnostics" / REPORT).read_text()
    assert page.startswith("<!doctype html>") and "src=\"http" not in page and "<script" not in page
    images = page.count('src="data:image/png;base64,')
    # ELBO, k-hat, bound, reconstructions, worst images, samples, latent, PPC (+ calibration, + class-conditional)
    assert images >= 8 + (name != "vae") + (name in ("m2", "m1m2"))
    assert "Class-conditional samples" in page if name in ("m2", "m1m2") else "Class-conditional samples" not in page
    for heading in ("Pareto k-hat", "How tight is the ELBO", "Reconstructions", "Latent space", "Posterior predictive checks",
                    "I(x; z_d)", "as ArviZ draws them", "Randomized PIT: ECDF against the uniform", "PSIS-smoothed estimate (not a bound)"):
        assert heading in page
    # an overall verdict first, verdicts keyed by their questions, not by internal names
    assert page.index('class="overall') < page.index("<h2>Verdicts</h2>") and "Overall: " in page
    assert "Does the guide cover the posterior?" in page and "<td>khat</td>" not in page and "<td>ppc</td>" not in page
    # no panel runs for thousands of pixels
    from PIL import Image

    for data in re.findall(r'src="data:image/png;base64,([^"]*)"', page):
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[1] <= 950
    assert "max-height:640px" in page
    # the sample-quality yardstick beside the sample grid, with the numbers of diagnostics.json
    quality = json.loads((run / "diagnostics" / DIAGNOSTICS).read_text())["sample_quality"]
    grid, beside = page.index('alt="prior samples"'), page.index("<th>sample quality</th>")
    assert grid < beside < page.index('alt="share of samples per class"') and "Do the samples look like the data?" in page
    assert f"<td>{quality['frechet_distance']:.3f}</td>" in page[beside:] and f"<td>{quality['recall']:.3f}</td>" in page[beside:]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(diagnosed, tmp_path):
    from PIL import Image

    name, run, _ = diagnosed
    if name != "m2":
        pytest.skip("one browser run is enough: the M2 page has every section")
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    f"--screenshot={shot}", "--window-size=1200,3000", (run / "diagnostics" / REPORT).resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (3000, 1200)
    assert (pixels < 128).mean() > 0.01  # text and figures were drawn, not a blank page


def test_diagnose_refuses_too_few_particles(tmp_path):
    from ppmodels.errors import ConfigError

    with pytest.raises(ConfigError, match="particles"):
        diagnose(tmp_path, particles=20)


def test_batched_posterior_keeps_the_layout():
    import torch

    from ppmodels.models import M2
    from ppmodels.analysis.inference_data import posterior_idata

    m2 = M2(x_shape=[1, 8, 8], z_dim=2, hidden=[8])
    x, y = torch.rand(7, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5, 6])
    whole = posterior_idata(m2, x, num_draws=4, seed=3, y=y)
    batched = posterior_idata(m2, x, num_draws=4, seed=3, y=y, batch_size=3, predictive_draws=2)
    assert batched.posterior["z"].shape == whole.posterior["z"].shape == (1, 4, 7, 2)
    assert batched.posterior_predictive["x"].shape == (1, 2, 7, 1, 8, 8)
    assert batched.log_likelihood["x"].shape == whole.log_likelihood["x"].shape == (1, 4, 7, 1, 8, 8)
    assert batched.sample_stats["log_weight"].shape == (1, 4, 7)
    assert batched.posterior["y"].shape == (1, 4, 7, 10)  # y is a latent of M2: sampled from q(y|x)
    np.testing.assert_array_equal(batched.constant_data["y"].values, y.numpy())
    assert np.isfinite(batched.sample_stats["log_weight"].values).all()


@pytest.mark.numerical
def test_a_latent_the_guide_leaves_to_the_prior_cancels_out_of_the_weights():
    import pyro
    import pyro.distributions as dist
    import torch

    from ppmodels.infer.importance import replay_log_weights, trace_particles
    from ppmodels.models.base import data_plate

    class PriorOnly:  # k is sampled in the model only; the guide is empty
        def evaluating(self):
            import contextlib
            return contextlib.nullcontext()

        def model(self, x, num_data=None):
            with data_plate(len(x), num_data, x.device):
                k = pyro.sample("k", dist.Bernoulli(0.3))
                pyro.sample("x", dist.Normal(k, 1.0), obs=x)

        def guide(self, x, num_data=None):
            pass

    x = torch.tensor([0.2, -1.0, 2.5])
    guide_trace, model_trace = trace_particles(PriorOnly(), x, 40)
    k = model_trace.nodes["k"]["value"]
    expected = dist.Normal(k, 1.0).log_prob(x)  # log p(x | k): p(k) is proposal and target at once
    assert_close_scaled(replay_log_weights(guide_trace, model_trace, 40, 3), expected.expand(40, 3), rel=1e-6)


def test_a_model_without_guide_latents_is_diagnosed_by_its_exact_weights(tmp_path):
    import warnings

    import arviz as az
    import matplotlib.pyplot as plt
    import torch

    from ppmodels import load

    run = tmp_path / "gmm"
    train("gmm", "digits", run, model_options={"num_components": 3}, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=2, batch_size=256, patience=None, seed=0))
    result = diagnose(run, num_data=M, particles=S, batch_size=10)
    assert not result["guide_samples_latents"] and "khat_exact_sum" not in result and "pit" in result  # exact posterior draws of k
    assert "no approximate posterior" in result["verdicts"]["khat"] and "covers" not in result["verdicts"]["khat"]
    page = (run / "diagnostics" / REPORT).read_text()  # nothing to plot where there is no approximation
    assert "Pareto k-hat per datum" not in page and "slack per datum" not in page and "fits worst" not in page
    assert result["khat"]["frac_above_0.5"] == 0.0 and abs(result["log_likelihood"]["gap"]) < 1e-6
    idata = az.from_netcdf(str(run / "diagnostics" / IDATA))
    # a posterior all the same: k ~ p(k | x), exact, with its predictive; ArviZ's functions run on it
    assert idata.posterior.attrs["source"] == "exact" and idata.posterior["k"].shape == (1, S, M)
    assert idata.posterior_predictive["x"].shape == (1, S, M, 1, 8, 8)
    model = load(run)
    frequencies = np.stack([(idata.posterior["k"].values[0] == j).mean(0) for j in range(3)], 1)
    x = torch.as_tensor(idata.observed_data["x"].values)
    assert np.abs(frequencies - model.responsibilities(x)).max() < 5 / np.sqrt(S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(az.summary(idata)) == M and np.isfinite(float(az.loo(idata).elpd_loo))
        az.plot_trace(idata, coords={"datum": idata.posterior["datum"].values[:2]})
        az.loo_pit(idata, y="x")
    plt.close("all")
    assert json.loads((run / "diagnostics" / DIAGNOSTICS).read_text())["khat"]["median"] is None  # -inf: an exact guide
    page = (run / "diagnostics" / REPORT).read_text()  # no section where it has no meaning: exact weights have no tail
    assert "Pareto k-hat per datum" not in page and "fits worst" not in page and "The weights are exact here" in page


def test_a_latent_left_to_the_prior_keeps_the_stored_weights_out_of_the_elbo(tmp_path):
    run = tmp_path / "gmvae"
    train("gmvae", "digits", run, model_options={"z_dim": 2, "hidden": [16]}, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=2, batch_size=256, patience=None, seed=0))
    result = diagnose(run, num_data=M, particles=S, batch_size=10, report=False)
    idata = result["idata"]
    assert idata.sample_stats.attrs["prior_sampled_latents"] == "c"  # the component is summed in training
    own = idata.sample_stats["iw_log_weight"].values[0]
    assert result["log_likelihood"]["elbo"] == pytest.approx(own.mean())  # the ELBO with c summed, as trained
    assert "khat_exact_sum" not in result and "pit" in result  # x depends on z alone: the PPC stands


def test_arviz_compare_ranks_a_trained_vae_above_a_one_epoch_one(tmp_path):
    """az.compare on two idata.nc files: with float32 log-likelihoods az.loo was NaN for the trained VAE and the
    1-epoch one came first."""
    import warnings

    import arviz as az

    files = {}
    for name, epochs in (("one_epoch", 1), ("trained", 40)):
        run = tmp_path / name
        train("vae", "digits", run, model_options={"z_dim": 5, "hidden": [64]}, progress=False, sample_every=0,
              train_config=TrainConfig(epochs=epochs, batch_size=64, patience=None, seed=0))
        diagnose(run, num_data=40, particles=40, report=False)
        files[name] = az.from_netcdf(str(run / "diagnostics" / IDATA))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranking = az.compare(files, ic="loo")
    assert np.isfinite(ranking["elpd_loo"]).all() and list(ranking.index) == ["trained", "one_epoch"]


def test_diagnose_emits_no_runtime_warning(tmp_path):
    """No NumPy or ArviZ RuntimeWarning reaches the user from diagnose, report and NUTS plots included (the report
    silenced every RuntimeWarning of ArviZ's plots before; none is left to silence)."""
    import warnings

    vae, ppca = tmp_path / "vae", tmp_path / "ppca"
    train("vae", "digits", vae, model_options={"z_dim": 3, "hidden": [16]}, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=2, batch_size=128, seed=0))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "line.npy", (rng.normal(size=(120, 1)) * [2.0, -1.0, 1.0] + 0.5 * rng.normal(size=(120, 3))).astype(np.float32))
    train("ppca", f"npy:{tmp_path / 'line.npy'}", ppca, model_options={"z_dim": 1}, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=10, batch_size=32, seed=0))  # on disk, batches above the training rows meet an empty one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diagnose(vae, num_data=M, particles=S, batch_size=10)
        diagnose(ppca, num_data=M, particles=S, nuts=True, nuts_samples=30, nuts_warmup=30, nuts_chains=2)
    runtime = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    assert runtime == []


def test_a_one_component_mixture_is_drawn_without_pyro_warning_of_nothing_to_enumerate():
    """k of a one-component GMM has one value: its posterior draws are that value, with no UserWarning from
    infer_discrete (which found nothing to enumerate and said so in every diagnose of such a run)."""
    import warnings

    import torch

    from ppmodels.analysis.inference_data import posterior_idata
    from ppmodels.models import GMM

    gmm, x = GMM(x_shape=[2], num_components=1), torch.randn(7, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = posterior_idata(gmm, x, None, num_draws=30, seed=0)
    assert [str(w.message) for w in caught] == []
    assert idata.posterior["k"].shape == (1, 30, 7) and not idata.posterior["k"].values.any()
    assert_close_scaled(idata.log_likelihood["x"].values[0].sum(-1), gmm.log_density(x).numpy()[None].repeat(30, 0), rel=1e-6)
