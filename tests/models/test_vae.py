import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from benchmarks.oracle import vae_loss as oracle_vae_loss
from ppmodels.data import prepare_data
from ppmodels.models import VAE
from ppmodels.infer import TrainConfig, Trainer
from ppmodels.infer import fit


def small_vae(**kw):
    return VAE(x_shape=[1, 8, 8], z_dim=3, hidden=[16], **kw)


def test_sites_and_shapes():
    vae = small_vae()
    x = torch.rand(5, 1, 8, 8)
    guide = poutine.trace(vae.guide).get_trace(x)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    assert guide.nodes["z"]["value"].shape == (5, 3)
    assert model.nodes["x"]["value"].shape == (5, 1, 8, 8)
    assert model.nodes["x"]["fn"].event_shape == (1, 8, 8)
    prior = poutine.trace(vae.model).get_trace(batch_size=4)
    assert prior.nodes["x"]["value"].shape == (4, 1, 8, 8)


@pytest.mark.numerical
def test_loss_matches_hand_written_elbo():
    """The Pyro loss equals the hand-written -[log p(x|z) + log p(z) - log q(z|x)] at the same z, scaled by N/B."""
    vae = small_vae()
    batch = {"x": torch.rand(6, 1, 8, 8), "num_data": 60}
    pyro.set_rng_seed(1)
    loss = vae.loss(batch)
    pyro.set_rng_seed(1)
    assert torch.allclose(loss, oracle_vae_loss(vae, batch), rtol=1e-5)


def test_gaussian_likelihood_learns_per_feature_scale():
    vae = VAE(x_shape=[4], z_dim=2, hidden=[8], likelihood="gaussian")
    x = torch.randn(10, 4) * 3
    loss = vae.loss({"x": x, "num_data": 10})
    loss.backward()
    assert vae.x_log_scale.grad is not None and vae.x_log_scale.grad.abs().sum() > 0


def test_train_step_changes_parameters_and_eval_does_not(digits):
    vae = small_vae()
    data = prepare_data(digits)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    vae.elbo_per_datum(data.valid)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    Trainer(TrainConfig(epochs=1, batch_size=200, patience=None)).fit(vae, data)
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(before[k], v)]
    assert any(k.startswith("encoder") for k in changed) and any(k.startswith("decoder") for k in changed)


def test_elbo_rises_on_toy_data(digits):
    data = prepare_data(digits)
    vae = small_vae()
    start = vae.elbo_per_datum(data.valid)
    fit(vae, data, TrainConfig(epochs=15, batch_size=64, lr=3e-3, patience=None))
    end = vae.elbo_per_datum(data.valid)
    assert math.isfinite(end) and end > start + 5


def test_transform_sample_reconstruct_shapes(digits):
    vae = small_vae()
    x = digits.split("test").x[:7]
    assert vae.transform(x).shape == (7, 3)
    loc, scale = vae.encode(x)
    assert (scale > 0).all()
    samples = vae.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert np.array_equal(samples, vae.sample(4, generator=torch.Generator().manual_seed(0)))
    assert vae.reconstruct(x).shape == (7, 1, 8, 8)


def test_pyro_svi_with_pyro_optim_also_trains():
    """The Pyro pair composes with plain Pyro SVI: pyro.module puts the weights in the param store."""
    vae = small_vae()
    x = torch.rand(20, 1, 8, 8)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.TraceEnum_ELBO(max_plate_nesting=1))
    before = vae.decoder.net.net[0].weight.clone()
    svi.step(x)
    assert len(pyro.get_param_store()) > 0
    assert not torch.equal(before, vae.decoder.net.net[0].weight)
