"""The trainer's closed-form losses compute the Pyro pair's objective: same value, same gradients, draw for draw."""

import pyro
import pytest
import torch

from benchmarks import oracle
from ppmodels.data import Split
from ppmodels.models import M1M2, M2, VAE
from ppmodels.models.closed_form import vae_closed_form_loss
from ppmodels.models.gmvae import GMVAE
from ppmodels.train import TrainConfig, Trainer

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def value_and_grads(model, loss_fn, batch, seed=7):
    """``loss_fn(batch)`` and the gradients of every parameter, with Pyro's and torch's RNG seeded alike."""
    model.zero_grad(set_to_none=True)
    pyro.set_rng_seed(seed)
    loss = loss_fn(batch)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def assert_same_objective(model, batch, reference=None, dtype=torch.float32):
    """``model.loss`` (what the trainer minimises) equals ``reference`` (default: the Pyro pair's loss)."""
    fast, g_fast = value_and_grads(model, model.loss, batch)
    ref, g_ref = value_and_grads(model, reference or model.pyro_loss, batch)
    tol = TOL[dtype]
    assert torch.allclose(fast, ref, rtol=tol, atol=0), (fast, ref)
    assert g_fast.keys() == g_ref.keys() and g_fast
    for name, g in g_ref.items():  # relative to the parameter's largest gradient entry
        assert (g_fast[name] - g).abs().max() <= tol * g.abs().max() + 1e-30, name


def m2_batch(dtype, x_shape=(5,), n_u=6, n_l=4, k=3, parts=("unlabeled", "labeled"), alpha=5.0):
    g = torch.Generator().manual_seed(1)
    batch = {}
    if "unlabeled" in parts:
        batch.update(x=torch.rand(n_u, *x_shape, generator=g, dtype=dtype), num_data=60)
    if "labeled" in parts:
        batch.update(x_labeled=torch.rand(n_l, *x_shape, generator=g, dtype=dtype), y_labeled=torch.tensor([2, 0, 1, 0][:n_l]) % k,
                     labeled_weights=torch.tensor([1.0, 2.0, 4.0, 0.5][:n_l], dtype=dtype), num_labeled=9, alpha=alpha)
    return batch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("parts", [("unlabeled", "labeled"), ("unlabeled",), ("labeled",)])
def test_m2_closed_form_equals_traceenum_elbo(parts, dtype):
    torch.manual_seed(0)
    m2 = M2(x_shape=[5], num_classes=3, z_dim=2, hidden=[7], class_prior="labeled").to(dtype)
    m2.log_prior.copy_(torch.tensor([0.2, 0.3, 0.5], dtype=dtype).log())  # p(y) not uniform, so its term counts
    assert_same_objective(m2, m2_batch(dtype, parts=parts), dtype=dtype)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_m2_closed_form_with_images_feature_mask_and_no_alpha(likelihood):
    torch.manual_seed(0)
    m2 = M2(x_shape=[1, 2, 3], likelihood=likelihood, num_classes=4, z_dim=3, hidden=[8, 5])
    m2.feature_mask[0, 1, 1:] = 0  # masked features follow a fixed distribution and are hidden from the guide
    assert_same_objective(m2, m2_batch(torch.float32, x_shape=(1, 2, 3), k=4, alpha=0.0))
    assert_same_objective(m2, m2_batch(torch.float32, x_shape=(1, 2, 3), k=4, alpha=2.5))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_closed_form_equals_traceenum_elbo(likelihood):
    torch.manual_seed(0)
    vae = VAE(x_shape=[1, 3, 3], likelihood=likelihood, z_dim=2, hidden=[6, 4])
    assert_same_objective(vae, {"x": torch.rand(5, 1, 3, 3), "num_data": 50})


def test_m1m2_trains_each_stage_on_the_pyro_objective():
    torch.manual_seed(0)
    model = M1M2(x_shape=[6], z1_dim=4, z2_dim=2, num_classes=3, m1_hidden=[5], m2_hidden=[5], m1_epochs=1)
    model.stage_ = "m1"
    assert_same_objective(model, {"x": torch.rand(5, 6), "num_data": 20}, reference=model.m1.pyro_loss)
    model.stage_ = "m2"
    model.m2.feature_mask[1] = 0
    batch = m2_batch(torch.float32, x_shape=(4,))
    batch.update(x=torch.randn(6, 4), x_labeled=torch.randn(4, 4))
    assert_same_objective(model, batch, reference=model.m2.pyro_loss)


def test_the_benchmark_oracles_equal_traceenum_elbo():
    """The hand-written losses that speed.py times are the same objective too (so its ratios compare like with like)."""
    torch.manual_seed(0)
    m2 = M2(x_shape=[5], num_classes=3, z_dim=2, hidden=[7])
    assert_same_objective(m2, m2_batch(torch.float32), reference=lambda b: oracle.m2_loss(m2, b))
    vae = VAE(x_shape=[5], z_dim=2, hidden=[6])
    assert_same_objective(vae, {"x": torch.rand(4, 5), "num_data": 8}, reference=lambda b: oracle.vae_loss(vae, b))


def test_the_trainer_step_minimises_the_pyro_objective():
    """``Trainer._step`` returns (and differentiates) the Pyro pair's loss of the batch."""
    torch.manual_seed(0)
    y = torch.full((30,), -1)
    y[:6] = torch.tensor([0, 1, 2, 0, 1, 2])
    train = Split("train", torch.rand(30, 5), y)
    m2 = M2(x_shape=[5], num_classes=3, z_dim=2, hidden=[7])
    batch = next(m2.training_batches(train, 8, torch.Generator().manual_seed(0)))
    pyro.set_rng_seed(3)
    expected = m2.pyro_loss(batch).item()
    trainer = Trainer(TrainConfig(lr=1e-2))
    trainer.model, trainer.optimizer = m2, torch.optim.Adam(m2.parameters(), lr=1e-2)
    before = m2.encoder.net.net[0].weight.clone()
    pyro.set_rng_seed(3)
    assert trainer._step(batch) == pytest.approx(expected, rel=1e-5)
    assert not torch.equal(before, m2.encoder.net.net[0].weight)


@pytest.mark.parametrize("make", [lambda: M2(x_shape=[5], num_classes=3, z_dim=2, hidden=[7]), lambda: VAE(x_shape=[5], z_dim=2, hidden=[6])])
def test_validation_elbo_without_pyro_equals_traceenum_elbo(make):
    """``elbo_per_datum`` (the trainer's validation ELBO) uses the closed form; it equals Pyro's ``TraceEnum_ELBO.loss``."""
    torch.manual_seed(0)
    model, split = make(), Split("valid", torch.rand(12, 5), torch.full((12,), -1))
    pyro.set_rng_seed(5)
    fast = model.elbo_per_datum(split, batch_size=5)
    pyro.set_rng_seed(5)
    with torch.no_grad():
        pyro_elbo = -sum(model.elbo.loss(model.model, model.guide, **b) for b in model.evaluation_batches(split, 5)) / 12
    assert fast == pytest.approx(pyro_elbo, rel=1e-5)


@pytest.mark.parametrize("options", [{"corruption": "mask", "noise_level": 0.3}, {"corruption": "gaussian", "noise_level": 0.2},
                                     {"net": "conv", "channels": [2, 3]}])
def test_closed_forms_with_denoising_and_conv_nets(options):
    """The corrupted copy the encoder sees is drawn in the guide's order; conv features and decoders broadcast alike."""
    torch.manual_seed(0)
    x_shape = [1, 4, 4]
    m2 = M2(x_shape=x_shape, num_classes=3, z_dim=2, hidden=[7], **options)
    assert_same_objective(m2, m2_batch(torch.float32, x_shape=tuple(x_shape)))
    vae = VAE(x_shape=x_shape, z_dim=2, hidden=[6], **options)
    assert_same_objective(vae, {"x": torch.rand(5, *x_shape), "num_data": 50})


def test_a_subclass_with_its_own_pair_keeps_pyro_loss():
    """GMVAE inherits the VAE but changes the prior: its loss must stay the Pyro pair's, not the VAE's closed form."""
    torch.manual_seed(0)
    gmvae = GMVAE(x_shape=[5], z_dim=2, hidden=[6])
    batch = {"x": torch.rand(4, 5), "num_data": 8}
    assert_same_objective(gmvae, batch)
    vae_objective = value_and_grads(gmvae, lambda b: vae_closed_form_loss(gmvae, b), batch)[0]
    assert not torch.allclose(vae_objective, value_and_grads(gmvae, gmvae.loss, batch)[0])  # the guard matters
    split = Split("valid", batch["x"], torch.full((4,), -1))
    pyro.set_rng_seed(2)
    elbo = gmvae.elbo_per_datum(split)
    pyro.set_rng_seed(2)
    assert elbo == pytest.approx(-gmvae.elbo.loss(gmvae.model, gmvae.guide, x=batch["x"], num_data=4) / 4, rel=1e-6)
