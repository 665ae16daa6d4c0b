"""Every registered model trains under plain Pyro: ``SVI(model.model, model.guide, Adam, TraceEnum_ELBO)``.

The models are built from the registry, so a model added later is covered without touching this file. Each model
registers its parameters in Pyro's param store under its own instance name (``pyro_name``): a few SVI steps move
every one of ``model.parameters()``, and two instances of one class keep their own parameters.
"""

from __future__ import annotations

import dataclasses
import inspect

import pyro
import pytest
import torch
from pyro.infer import SVI, TraceEnum_ELBO
from pyro.optim import Adam
from pyro.params.param_store import param_with_module_name

import ppmodels
from ppmodels.data import load_dataset

# tiny networks; Gaussian likelihoods, so that every model uses its observation-noise parameters too (a Bernoulli
# likelihood leaves the VAE's x_log_scale without a gradient)
TINY = {"hidden": [8], "z_dim": 2, "z1_dim": 3, "z2_dim": 2, "m1_hidden": [8], "m2_hidden": [8], "num_components": 3,
        "a_dim": 2, "likelihood": "gaussian", "seed": 0}
NAMES = sorted(ppmodels.list_models())
# a model without an ELBO (the GAN: an adversarial game, no guide q(z|x)) is trained by its own losses in the shared
# trainer; its generator is still a Pyro model (tests/models/test_gan.py runs Predictive on it)
ELBO_NAMES = [name for name in NAMES if ppmodels.get_model_class(name).has_elbo]


@pytest.fixture(scope="module")
def toy():
    """100 standardised digits and their labels."""
    data = load_dataset("digits")
    x = torch.from_numpy(data.x[:100]).reshape(100, -1)
    x = ((x - x.mean(0)) / (x.std(0) + 0.1)).reshape(100, *data.x_shape)
    return data, x, torch.from_numpy(data.y[:100]).long()


def build(name: str, dataset):
    cls = ppmodels.get_model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    return cls(cls.config_from_data(dataset, **{k: v for k, v in TINY.items() if k in fields}))


def batches(model, x, y) -> list[dict]:
    """An unlabeled batch, and a labeled one for models whose ``model``/``guide`` take ``y`` (M2, the ADGM)."""
    unlabeled = {"x": x, "num_data": len(x)}
    if "y" in inspect.signature(model.model).parameters:
        return [unlabeled, {"x": x, "y": y, "num_data": len(x)}]
    return [unlabeled]


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def svi_steps(model, x, y, steps: int = 3) -> None:
    model.train()
    svi = SVI(model.model, model.guide, Adam({"lr": 0.01}), TraceEnum_ELBO(max_plate_nesting=1))
    for _ in range(steps):
        for batch in batches(model, x, y):
            assert torch.isfinite(torch.tensor(svi.step(**batch)))


@pytest.mark.parametrize("name", ELBO_NAMES)
def test_plain_svi_moves_every_parameter(name, toy):
    dataset, x, y = toy
    model = build(name, dataset)
    before = snapshot(model)
    assert before, f"{name} has no parameters"
    svi_steps(model, x, y)
    unmoved = [key for key, value in snapshot(model).items() if torch.equal(value, before[key])]
    assert not unmoved, f"plain SVI left these parameters of {name} unchanged: {unmoved}"
    # they are in the param store under this instance's name, not the class's
    stored = set(pyro.get_param_store().keys())
    assert {param_with_module_name(model.pyro_name, key) for key in before} <= stored


@pytest.mark.parametrize("name", ELBO_NAMES)
def test_two_instances_keep_their_own_parameters(name, toy):
    dataset, x, y = toy
    first, second = build(name, dataset), build(name, dataset)
    assert first.pyro_name != second.pyro_name
    for trained, other in ((first, second), (second, first)):
        before_trained, before_other = snapshot(trained), snapshot(other)
        svi_steps(trained, x, y, steps=2)
        assert any(not torch.equal(v, before_trained[k]) for k, v in snapshot(trained).items()), f"SVI left its own {name} unchanged"
        assert all(torch.equal(v, before_other[k]) for k, v in snapshot(other).items()), f"SVI on one {name} changed the other"


def test_only_the_adversarial_models_are_left_out():
    assert sorted(set(NAMES) - set(ELBO_NAMES)) == ["gan"]
