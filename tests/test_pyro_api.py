"""The models' ``model`` and ``guide`` are ordinary Pyro callables: Predictive and the poutine handlers work on them."""

import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

import ppmodels
from ppmodels.models import VAE
from ppmodels.train import TrainConfig


@pytest.fixture(scope="module")
def loaded_vae(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    ppmodels.train("vae", "digits", out=out, train_config=TrainConfig(epochs=1, batch_size=256, patience=None),
                   model_options={"hidden": [16], "z_dim": 3}, progress=False, sample_every=0)
    return ppmodels.load(out)


@pytest.fixture(params=["loaded", "fresh"])
def vae(request, loaded_vae):
    return loaded_vae if request.param == "loaded" else VAE(x_shape=[1, 8, 8], z_dim=3, hidden=[16]).eval()


@pytest.fixture
def x():
    data = ppmodels.load_dataset("digits")
    return torch.from_numpy(data.x[:5])


def test_predictive_with_guide_returns_documented_sites(vae, x):
    out = Predictive(vae.model, guide=vae.guide, num_samples=7)(x)
    assert set(out) == {"z", "x"}
    assert out["z"].shape == (7, 5, 3)
    assert out["x"].shape == (7, 5, 1, 8, 8)
    assert torch.equal(out["x"], x.expand(7, *x.shape))  # x is observed: Predictive returns the data
    # the draws of z follow q(z|x): their mean is near the encoder's mean
    many = Predictive(vae.guide, num_samples=2000)(x)["z"]
    loc = torch.as_tensor(vae.transform(x))
    assert torch.allclose(many.mean(0), loc, atol=0.15)


def test_posterior_predictive_from_guide_samples(vae, x):
    posterior = Predictive(vae.guide, num_samples=4)(x)
    out = Predictive(vae.model, posterior_samples=posterior, return_sites=["x"])(None, batch_size=5)
    assert out["x"].shape == (4, 5, 1, 8, 8)
    assert set(out["x"].unique().tolist()) <= {0.0, 1.0}  # Bernoulli draws


def test_prior_predictive_without_guide(vae):
    out = Predictive(vae.model, num_samples=3)(None, batch_size=6)
    assert out["z"].shape == (3, 6, 3) and out["x"].shape == (3, 6, 1, 8, 8)


def test_condition_scores_x_under_the_decoder(vae, x):
    z = torch.randn(5, 3)
    trace = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(x)
    assert trace.nodes["z"]["is_observed"] and torch.equal(trace.nodes["z"]["value"], z)
    logits = vae.decoder(z)
    # grey pixels score as the Bernoulli cross-entropy, x log p + (1 - x) log(1 - p)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    assert torch.allclose(trace.nodes["x"]["fn"].log_prob(x), expected, atol=1e-5)


def test_do_intervenes_on_z(vae):
    z = torch.randn(5, 3)
    trace = poutine.trace(poutine.do(vae.model, data={"z": z})).get_trace(None, batch_size=5)
    assert torch.allclose(trace.nodes["x"]["fn"].mean, torch.as_tensor(vae.decode(z)), atol=1e-6)


def test_guide_trace_holds_the_encoder(vae, x):
    trace = poutine.trace(vae.guide).get_trace(x)
    site = trace.nodes["z"]
    assert site["value"].shape == (5, 3)
    assert torch.allclose(site["fn"].base_dist.loc, torch.as_tensor(vae.transform(x)), atol=1e-6)
    assert [f.name for f in site["cond_indep_stack"]] == ["data"]


def test_sklearn_surface(loaded_vae, x):
    assert loaded_vae.transform(x).shape == (5, 3)
    assert loaded_vae.sample(4).shape == (4, 1, 8, 8)
    fitted = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8])
    assert fitted.fit(ppmodels.load_dataset("digits"), TrainConfig(epochs=1, patience=None)) is fitted


@pytest.fixture(scope="module")
def loaded_m2(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "m2"
    ppmodels.train("m2", "digits", out=out, labels=50, train_config=TrainConfig(epochs=1, batch_size=256, patience=None),
                   model_options={"hidden": [16], "z_dim": 3}, progress=False, sample_every=0)
    return ppmodels.load(out)


def test_predictive_on_a_loaded_m2(loaded_m2, x):
    m = loaded_m2
    out = Predictive(m.model, guide=m.guide, num_samples=6)(x)
    assert set(out) == {"y", "z", "x"}
    assert out["y"].shape == (6, 5, 10) and torch.equal(out["y"].sum(-1), torch.ones(6, 5))  # one-hot draws of q(y|x)
    assert out["z"].shape == (6, 5, 3) and out["x"].shape == (6, 5, 1, 8, 8)
    # labeled data: y observed, so only z is drawn from the guide
    labeled = Predictive(m.model, guide=m.guide, num_samples=2, return_sites=["z"])(x, y=torch.arange(5))
    assert labeled["z"].shape == (2, 5, 3)
    # q(y|x) draws follow predict_proba
    many = Predictive(m.guide, num_samples=3000, return_sites=["y"])(x)["y"].mean(0)
    assert torch.allclose(many, torch.as_tensor(m.predict_proba(x), dtype=torch.float32), atol=0.04)


def test_do_on_y_gives_the_class_conditional(loaded_m2):
    m = loaded_m2
    y = torch.nn.functional.one_hot(torch.full((4,), 3), 10).float()
    z = torch.randn(4, 3)
    trace = poutine.trace(poutine.do(m.model, data={"y": y, "z": z})).get_trace(None, batch_size=4)
    mean = trace.nodes["x"]["fn"].mean.detach()
    expected = torch.as_tensor(m.decode_every_class(z)[:, 3])
    assert torch.allclose(mean, expected, atol=1e-6)
