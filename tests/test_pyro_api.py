"""The models' ``model`` and ``guide`` are ordinary Pyro callables: Predictive and the poutine handlers work on them."""

import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

import ppmodels
from ppmodels.models import VAE
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from tests.helpers import assert_close_scaled


@pytest.fixture(scope="module")
def loaded_vae(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    ppmodels.train("vae", "digits", out=out, train_config=TrainConfig(epochs=1, batch_size=256, patience=None),
                   model_options={"hidden": [16], "z_dim": 3, "likelihood": "bernoulli"}, progress=False, sample_every=0)
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


@pytest.mark.numerical
def test_condition_scores_x_under_the_decoder(vae, x):
    z = torch.randn(5, 3)
    trace = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(x)
    assert trace.nodes["z"]["is_observed"] and torch.equal(trace.nodes["z"]["value"], z)
    logits = vae.decoder(z)
    # grey pixels score as the Bernoulli cross-entropy, x log p + (1 - x) log(1 - p)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    assert_close_scaled(trace.nodes["x"]["fn"].log_prob(x), expected, rel=1e-5)


@pytest.mark.numerical
def test_do_intervenes_on_z(vae):
    z = torch.randn(5, 3)
    trace = poutine.trace(poutine.do(vae.model, data={"z": z})).get_trace(None, batch_size=5)
    assert_close_scaled(trace.nodes["x"]["fn"].mean, vae.decode(z), rel=1e-5)


@pytest.mark.numerical
def test_guide_trace_holds_the_encoder(vae, x):
    trace = poutine.trace(vae.guide).get_trace(x)
    site = trace.nodes["z"]
    assert site["value"].shape == (5, 3)
    assert_close_scaled(site["fn"].base_dist.loc, vae.transform(x), rel=1e-5)
    assert [f.name for f in site["cond_indep_stack"]] == ["data"]


def test_sklearn_surface(loaded_vae, x):
    assert loaded_vae.transform(x).shape == (5, 3)
    assert loaded_vae.sample(4).shape == (4, 1, 8, 8)
    fitted = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8])
    assert fit(fitted, ppmodels.load_dataset("digits"), TrainConfig(epochs=1, patience=None)) is fitted
    again = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=3)
    before = _weights(again)
    assert again.fit(ppmodels.load_dataset("digits"), TrainConfig(epochs=1, patience=None)) is again  # the method form
    assert again.train_state_.epoch == 1 and any(not torch.equal(before[k], v) for k, v in _weights(again).items())


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
    assert_close_scaled(mean, expected, rel=1e-5)


def test_the_trainer_minimises_pyros_elbo(monkeypatch, digits):
    """Every training step of every loss part goes through TraceEnum_ELBO.differentiable_loss of the model's pair:
    counted here for a VAE (one call a step) and an M2 (unlabeled, labeled and classification pairs: three a step)."""
    from pyro.infer import TraceEnum_ELBO

    from ppmodels.data import prepare_data
    from ppmodels.models import M2

    calls = []
    original = TraceEnum_ELBO.differentiable_loss

    def counting(self, model, guide, *args, **kwargs):
        calls.append(getattr(model, "__name__", type(model).__name__))
        return original(self, model, guide, *args, **kwargs)

    monkeypatch.setattr(TraceEnum_ELBO, "differentiable_loss", counting)
    data = prepare_data(digits, num_labels=50)
    vae = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8]), data, TrainConfig(epochs=1, batch_size=400, patience=None))
    steps = vae.train_state_.step
    assert steps == 4 and len(calls) == steps
    calls.clear()
    m2 = fit(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[8]), data, TrainConfig(epochs=1, batch_size=400, patience=None, min_epoch_steps=0))
    assert len(calls) == 3 * m2.train_state_.step and m2.train_state_.step == 4


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_models_of_one_class_train_side_by_side_with_plain_svi(x):
    """Each instance has its own name in Pyro's param store, so plain SVI on the second model trains it (and only it)."""
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    first, second = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8]), VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8])
    assert first.pyro_name != second.pyro_name
    for trained, other in ((first, second), (second, first)):
        before_trained, before_other = _weights(trained), _weights(other)
        svi = SVI(trained.model, trained.guide, Adam({"lr": 1e-2}), Trace_ELBO())
        for _ in range(3):
            svi.step(x)
        assert any(not torch.equal(before_trained[k], v) for k, v in _weights(trained).items()), "SVI left its own model unchanged"
        assert all(torch.equal(before_other[k], v) for k, v in _weights(other).items()), "SVI changed the other model"


def test_two_models_of_one_class_train_side_by_side_with_the_trainer(digits):
    first, second = (VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=1) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(_weights(first).values(), _weights(second).values()))
    fit(first, digits, TrainConfig(epochs=1, batch_size=256, patience=None, seed=0))
    untouched = _weights(second)
    fit(second, digits, TrainConfig(epochs=1, batch_size=256, patience=None, seed=5))
    assert any(not torch.equal(untouched[k], v) for k, v in _weights(second).items())
    assert any(not torch.equal(_weights(first)[k], v) for k, v in _weights(second).items())  # other batches, other weights


def test_a_seed_at_construction_makes_fits_identical(digits):
    """Seeded at construction (as scikit-learn's random_state) and in the trainer: the same weights, exactly."""
    config = TrainConfig(epochs=1, batch_size=256, patience=None, seed=0)
    torch.manual_seed(123)
    a = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=7), digits, config)
    torch.manual_seed(456)  # whatever ran before does not matter
    b = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=7), digits, config)
    assert all(torch.equal(u, v) for u, v in zip(_weights(a).values(), _weights(b).values()))
    c = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=8), digits, config)
    assert any(not torch.equal(u, v) for u, v in zip(_weights(a).values(), _weights(c).values()))
