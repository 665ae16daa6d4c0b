"""The ADGM (M2 with an auxiliary latent a): its ELBO against a brute-force sum is checked with M2's in test_m2.py;
here: a short training run through the one trainer, the run folder round trip, Pyro's Predictive and the registry."""

import json
import math

import numpy as np
import pytest
import torch
from pyro.infer import Predictive

import ppmodels
from ppmodels.errors import ConfigError
from ppmodels.infer import TrainConfig
from ppmodels.models import ADGM, CanClassify, CanSample, LabeledGenerator, M2
from ppmodels.models.options import model_options

TINY = {"hidden": [32], "z_dim": 4, "a_dim": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "adgm"
    ppmodels.train("adgm", "digits", out=out, labels=50, train_config=TrainConfig(epochs=6, batch_size=128, lr=3e-3, patience=None, seed=0, min_epoch_steps=0),
                   model_options=TINY, progress=False, sample_every=0)
    return out


@pytest.fixture
def x():
    return torch.from_numpy(ppmodels.load_dataset("digits").x[:5])


def test_trains_without_nan_and_the_elbo_rises(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    elbos = [r["train_elbo"] for r in records]
    assert len(elbos) == 6 and all(math.isfinite(e) for e in elbos)
    assert elbos[-1] > elbos[0] + 100  # measured: -971 after one epoch, -510 after six (-J/N, the labeled part weighted up)
    valid = [r["valid_elbo"] for r in records]
    assert all(math.isfinite(v) for v in valid) and valid[-1] > valid[0]  # measured: -411, then -262 nats per image


def test_save_load_round_trip_gives_identical_predictions(run, digits):
    first, again = ppmodels.load(run), ppmodels.load(run)
    assert isinstance(first, ADGM) and first.config.a_dim == 4
    x = digits.x[:200]
    proba = first.predict_proba(x)
    assert proba.shape == (200, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(again.predict_proba(x), proba)  # a = E[a|x]: deterministic
    assert np.array_equal(first.predict(x), proba.argmax(1))
    assert (first.predict(x) == digits.y[:200]).mean() > 0.3  # six short epochs on 50 labels: well above chance (0.1)


def test_predictive_composes_with_the_pair(run, x):
    m = ppmodels.load(run)
    out = Predictive(m.model, guide=m.guide, num_samples=6)(x)
    assert set(out) == {"a", "y", "z", "x"}
    assert out["a"].shape == (6, 5, 4) and out["z"].shape == (6, 5, 4) and out["y"].shape == (6, 5, 10)
    assert torch.equal(out["y"].sum(-1), torch.ones(6, 5))
    prior = Predictive(m.model, num_samples=3)(None, batch_size=4)  # the generative story alone: a follows x, y, z
    assert prior["a"].shape == (3, 4, 4) and prior["x"].shape == (3, 4, 1, 8, 8)
    labeled = Predictive(m.model, guide=m.guide, num_samples=2, return_sites=["a", "z"])(x, y=torch.arange(5))
    assert labeled["a"].shape == (2, 5, 4) and labeled["z"].shape == (2, 5, 4)


def test_importance_weights_sampling_and_the_protocols(run, x):
    m = ppmodels.load(run)
    log_w = m.log_importance_weights(x, num_particles=8)
    assert log_w.shape == (8, 5) and torch.isfinite(log_w).all()
    assert isinstance(m, CanClassify) and isinstance(m, CanSample) and isinstance(m, LabeledGenerator)
    assert m.sample(4, label=3).shape == (4, 1, 8, 8)
    assert m.decode_with_labels(x).shape == (5, 10, 1, 8, 8)


def test_registered_with_every_option_documented_and_checked():
    assert ppmodels.get_model_class("adgm") is ADGM and issubclass(ADGM, M2)
    options = {o.name: o for o in model_options(ADGM)}
    assert {"a_dim", "z_dim", "hidden", "alpha", "labeled_weight"} <= options.keys()
    assert options["a_dim"].default == 100 and options["z_dim"].default == 100 and options["hidden"].default == [500, 500]
    assert all(o.help for o in options.values())
    with pytest.raises(ConfigError, match="option a_dim must be at least 1, got"):
        ADGM(x_shape=[4], a_dim=0)
