"""M2's feature standardisation (``standardize``): an exact change of variables, invariant to each feature's units."""

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from ppmodels.data import from_arrays, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import ADGM, M2
from tests.helpers import assert_close_scaled


def table(shift, scale, seed=0):
    """Two Gaussian classes in 4 features, each feature then put in units ``x * scale + shift``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    x = rng.normal(0, 1, (300, 4)) + 1.5 * y[:, None] * np.array([1, -1, 0.5, 0])
    y = np.where(rng.random(300) < 0.9, -1, y)  # partly labeled
    y[:2] = [0, 1]
    return from_arrays("t", (x * scale + shift).astype(np.float32), y, likelihood="gaussian")


def test_default_is_on_for_the_gaussian_likelihood_only():
    assert M2(x_shape=[3], likelihood="gaussian").config.standardizes()
    assert not M2(x_shape=[3], likelihood="bernoulli").config.standardizes()
    assert not M2(x_shape=[3], likelihood="gaussian", standardize=False).config.standardizes()


def test_statistics_come_from_every_training_row_and_no_label():
    data = prepare_data(table(np.array([100.0, -3, 0, 7]), np.array([10.0, 0.1, 1, 3])), seed=0)
    m2 = M2(M2.config_from_data(data.dataset, z_dim=2, hidden=[8]))
    m2.start_stage("fit", data)
    x = data.train.x.double().numpy()
    assert_close_scaled(m2.x_loc.double(), torch.from_numpy(x.mean(0)), rel=1e-6)
    assert_close_scaled(m2.x_scale.double(), torch.from_numpy(x.std(0)), rel=1e-5)


def test_the_likelihood_is_an_exact_change_of_variables():
    """log p(x | y, z) in the data's units = the standard-unit Normal's log density of (x - m) / s - sum log s."""
    torch.manual_seed(0)
    m2 = M2(x_shape=[4], likelihood="gaussian", num_classes=3, z_dim=2, hidden=[8])
    m2.x_loc.copy_(torch.tensor([100.0, -3, 0, 7]))
    m2.x_scale.copy_(torch.tensor([10.0, 0.1, 1, 3]))
    z, y, x = torch.randn(5, 2), torch.eye(3)[[0, 1, 2, 0, 1]], torch.randn(5, 4) * 5 + 20
    out = m2.decoder(z, y).reshape(5, 2, 4)
    standard = dist.Normal(out[:, 0], torch.nn.functional.softplus(out[:, 1]) + 1e-3)
    expected = standard.log_prob((x - m2.x_loc) / m2.x_scale).sum(-1) - m2.x_scale.log().sum()
    assert_close_scaled(m2.x_dist(z, y).log_prob(x), expected, rel=1e-5)


@pytest.mark.parametrize("cls", [M2, ADGM])
def test_training_does_not_depend_on_the_features_units(cls):
    """The same table in other units (each feature shifted and scaled) trains to the same classifier: what the
    networks see and their gradients are the same; without standardisation they differ."""
    outputs = {}
    for standardize in (True, False):
        for units in ("plain", "other"):
            shift, scale = (0.0, 1.0) if units == "plain" else (np.array([100.0, -3, 0, 7]), np.array([10.0, 0.1, 1, 3]))
            data = prepare_data(table(shift, scale), seed=0)
            model = cls(cls.config_from_data(data.dataset, z_dim=2, hidden=[8], standardize=standardize, seed=0))
            fit(model, data, TrainConfig(epochs=2, min_epoch_steps=3, batch_size=50, seed=0, patience=None))
            outputs[standardize, units] = model.predict_proba(data.test.x)
    assert_close_scaled(torch.from_numpy(outputs[True, "other"]), torch.from_numpy(outputs[True, "plain"]), rel=1e-3)
    assert np.abs(outputs[False, "other"] - outputs[False, "plain"]).max() > 1e-2


def test_runs_saved_before_the_option_load_unstandardised():
    """A state dict without ``x_loc``/``x_scale`` (saved before the option) loads as trained: unstandardised."""
    m2 = M2(x_shape=[4], likelihood="gaussian", num_classes=3, z_dim=2, hidden=[8])
    old = {k: v for k, v in m2.state_dict().items() if k not in ("x_loc", "x_scale")}
    again = M2(x_shape=[4], likelihood="gaussian", num_classes=3, z_dim=2, hidden=[8])
    again.load_state_dict(old)
    assert torch.equal(again.x_loc, torch.zeros(4)) and torch.equal(again.x_scale, torch.ones(4))
    x = torch.randn(6, 4)
    assert np.array_equal(again.predict_proba(x), m2.predict_proba(x))
    with pytest.raises(RuntimeError, match="Missing key"):  # anything else missing is still refused
        again.load_state_dict({k: v for k, v in old.items() if k != "feature_mask"})
