"""The GAN: its generator as a Pyro model, its two losses against closed forms, and the trainer's parameter groups.

Exact resume (interrupted + resumed equals straight) is checked with every registered model in
tests/train/test_resume.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive

from ppmodels.data import load_dataset, prepare_data
from ppmodels.errors import ConfigError, TrainingError
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import GAN, CanSample
from ppmodels.models.gan import discriminator_loss, generator_loss, r1_penalty
from ppmodels.nets import MinibatchStd, precision
from tests.helpers import assert_close_scaled


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def data(digits):
    return prepare_data(digits, seed=0)


def tiny(digits, **options) -> GAN:
    return GAN(GAN.config_from_data(digits, z_dim=4, channels=[8, 16], hidden=[16], seed=0, **options))


@pytest.mark.parametrize("net, shape", [("conv", (1, 8, 8)), ("mlp", (1, 8, 8))])
def test_generator_is_a_pyro_model_that_predictive_and_poutine_run(digits, net, shape):
    gan = tiny(digits, net=net).eval()
    samples = Predictive(gan.model, num_samples=3)(batch_size=5)
    assert samples["z"].shape == (3, 5, 4) and samples["x"].shape == (3, 5, *shape)
    assert float(samples["x"].min()) >= 0 and float(samples["x"].max()) <= 1  # sigmoid output for data in [0, 1]
    z = torch.randn(6, 4)
    x = poutine.condition(gan.model, data={"z": z})(batch_size=6)
    expected = torch.from_numpy(gan.decode(z))
    assert torch.allclose(x.detach(), expected, atol=1e-6 * float(expected.norm()))
    trace = poutine.trace(gan.model).get_trace(batch_size=2)
    assert trace.nodes["x"]["infer"].get("_deterministic") and trace.nodes["z"]["type"] == "sample"
    assert isinstance(gan, CanSample) and gan.sample(7, torch.Generator().manual_seed(0)).shape == (7, *shape)


def test_flat_data_gets_the_mlp_networks_and_conv_is_refused():
    gan = GAN(x_shape=[64], likelihood="gaussian", z_dim=3, hidden=[8])
    assert gan.sample(2).shape == (2, 64) and type(gan.generator).__name__ == "MLPGenerator"
    with pytest.raises(ConfigError, match="net=conv needs image data"):
        GAN(x_shape=[64], net="conv")
    for bad in ({"k": 0}, {"loss": "wasserstein"}, {"label_smoothing": 0.7}, {"g_betas": [0.5]}, {"output": "softmax"}):
        with pytest.raises(ConfigError):
            GAN(x_shape=[64], **bad)


def test_losses_equal_their_closed_forms():
    logits = torch.linspace(-4, 4, 9)
    d = logits.sigmoid()
    assert torch.allclose(generator_loss(logits, "non_saturating"), -d.log().mean(), rtol=1e-5)
    assert torch.allclose(generator_loss(logits, "minimax"), (1 - d).log().mean(), rtol=1e-5)
    real, fake = logits, logits.flip(0)
    smooth = 0.1  # one-sided: real targets 0.9, fakes 0
    expected = -((1 - smooth) * real.sigmoid().log() + smooth * (1 - real.sigmoid()).log()).mean() - (1 - fake.sigmoid()).log().mean()
    assert torch.allclose(discriminator_loss(real, fake, smooth), expected, rtol=1e-5)


def test_minibatch_std_appends_each_groups_spread():
    """The appended feature is the biased standard deviation over each group of 4 consecutive rows, averaged over
    features and positions, the same for every member; the rows after the last whole group (8, 9) take the last
    4 rows' (6-9); copies of one row give a spread of about 0, so a generator drawing one image stands out."""
    x = torch.randn(10, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = MinibatchStd(4)(x)
    assert out.shape == (10, 4, 2, 2) and torch.equal(out[:, :3], x)
    for rows, spread_of in [(range(0, 4), x[0:4]), (range(4, 8), x[4:8]), (range(8, 10), x[6:10])]:
        expected = spread_of.std(dim=0, unbiased=False).mean()
        for row in rows:
            assert_close_scaled(out[row, 3], expected.expand(2, 2))
    copies = MinibatchStd(4)(x[:1].expand(8, 3, 2, 2))
    assert float(copies[:, 3].max()) < 1e-3
    flat = MinibatchStd(4)(torch.randn(3, 5))  # fewer rows than a group: one group of 3
    assert flat.shape == (3, 6) and torch.allclose(flat[:, 5], flat[:3, :5].std(dim=0, unbiased=False).mean().expand(3))


def test_r1_penalty_equals_its_closed_form_for_a_linear_discriminator(digits, data):
    """For D(x) = w.x + b the gradient of the logit is w for every row: the penalty is gamma / 2 * |w|^2. In the GAN
    it is added to the discriminator's loss only (and only where a gradient is being taken)."""
    w = torch.randn(6, generator=torch.Generator().manual_seed(1))
    x = torch.rand(5, 6).requires_grad_()
    assert torch.allclose(r1_penalty(x @ w + 0.3, x, 2.5), 1.25 * w.pow(2).sum(), rtol=1e-5)
    plain, penalised = tiny(digits, net="mlp"), tiny(digits, net="mlp", r1_gamma=2.5)
    penalised.load_state_dict(plain.state_dict())
    batch = {"x": data.train.x[:32]}
    torch.manual_seed(0)
    base = plain.group_loss("discriminator", batch)
    torch.manual_seed(0)
    real = batch["x"].clone().requires_grad_()
    (grad,) = torch.autograd.grad(penalised.discriminator(real).sum(), real)
    torch.manual_seed(0)
    total = penalised.group_loss("discriminator", batch)
    assert torch.allclose(total, base + 1.25 * grad.pow(2).flatten(1).sum(1).mean(), rtol=1e-5)
    generator_losses = []
    for gan in (plain, penalised):
        torch.manual_seed(0)
        generator_losses.append(gan.group_loss("generator", batch))
    assert torch.allclose(*generator_losses)
    with torch.no_grad():  # a report's loss, under no_grad: no gradient to penalise, so no penalty
        torch.manual_seed(0)
        assert torch.allclose(penalised.group_loss("discriminator", batch), base)


@pytest.mark.parametrize("net", ["conv", "mlp"])
def test_minibatch_std_and_r1_train_both_networks(digits, data, net):
    gan = tiny(digits, net=net, minibatch_std=4, r1_gamma=2.5)
    before = snapshot(gan)
    fit(gan, data, TrainConfig(epochs=1, batch_size=128, seed=0))
    after = snapshot(gan)
    assert changed(before, after, "discriminator") and changed(before, after, "generator")
    assert np.isfinite(gan.sample(4, torch.Generator().manual_seed(0))).all()


def test_trainer_runs_two_optimisers_with_their_own_settings_and_k_steps(digits, data):
    gan = tiny(digits, k=2, d_lr=1e-3, g_lr=3e-4, g_betas=[0.3, 0.9])
    trainer_seen = {}

    class Spy:  # the trainer's optimizer and the parameters after each step
        def on_step_end(self, trainer, losses):
            trainer_seen.setdefault("groups", [g["name"] for g in trainer.optimizer.param_groups])
            trainer_seen.setdefault("lr", {g["name"]: (g["lr"], tuple(g["betas"])) for g in trainer.optimizer.param_groups})
            trainer_seen.setdefault("steps", []).append((sorted(losses), snapshot(gan)))

    before = snapshot(gan)
    fit(gan, data, TrainConfig(epochs=1, batch_size=128, seed=0), callbacks=[Spy()])
    assert trainer_seen["lr"] == {"discriminator": (1e-3, (0.5, 0.999)), "generator": (3e-4, (0.3, 0.9))}
    (first, after1), (second, after2) = trainer_seen["steps"][:2]
    assert first == ["discriminator"] and second == ["discriminator", "generator"]  # k=2: the generator every 2nd step
    assert changed(before, after1, "discriminator") and not changed(before, after1, "generator")
    assert changed(after1, after2, "discriminator") and changed(after1, after2, "generator")
    assert gan.train_state_.selected_by == "last_epoch" and gan.train_state_.best_epoch == 1


def test_one_objective_models_keep_one_adam_group(digits, data):
    from ppmodels.models import VAE

    seen = []

    class Spy:
        def on_step_end(self, trainer, loss):
            seen.append((len(trainer.optimizer.param_groups), trainer.groups, isinstance(loss, float)))

    fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8]), data, TrainConfig(epochs=1, batch_size=512), callbacks=[Spy()])
    assert set(seen) == {(1, None, True)}


def test_nan_guard_names_the_group_whose_loss_failed(digits, data, monkeypatch):
    gan = tiny(digits)
    original = GAN.group_loss

    def broken(self, name, batch):
        loss = original(self, name, batch)
        return loss * float("nan") if name == "generator" else loss

    monkeypatch.setattr(GAN, "group_loss", broken)
    with pytest.raises(TrainingError, match="generator loss"):
        fit(gan, data, TrainConfig(epochs=1, batch_size=256))


@pytest.mark.parametrize("net", ["conv", "mlp"])
def test_bf16_reaches_both_networks_during_training_steps_only(digits, data, net):
    """``precision="bf16"``: every layer of the generator and the discriminator computes in bfloat16 during the
    training steps (their outputs come back float32 for the losses), weights stay float32, and sampling afterwards
    runs in float32; with ``fp32`` nothing is bfloat16."""
    layers = {}
    for name in ("fp32", "bf16"):
        gan = tiny(digits, net=net)
        seen = set()
        watched = [m for part in (gan.generator, gan.discriminator) for m in part.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        hooks = [m.register_forward_hook(lambda m, i, out: seen.add(out.dtype)) for m in watched]
        fit(gan, data, TrainConfig(epochs=1, batch_size=256, seed=0, precision=name))
        layers[name] = set(seen)
        seen.clear()
        samples = gan.sample(3, torch.Generator().manual_seed(0))
        assert seen == {torch.float32} and samples.dtype == np.float32 and np.isfinite(samples).all()
        assert all(p.dtype == torch.float32 for p in gan.parameters())
        for hook in hooks:
            hook.remove()
    assert layers == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    gan, x = tiny(digits, net=net), data.test.x[:8]
    with precision("bf16"):
        logits, fake = gan.discriminator(x), gan.generator(torch.randn(8, 4))
    assert logits.dtype == fake.dtype == torch.float32
    assert_close_scaled(logits, gan.discriminator(x), rel=5e-2)


def test_lr_is_refused_with_the_options_that_set_the_rates(digits, data):
    with pytest.raises(ConfigError, match=r"option lr does not apply to model 'gan'.*\(d_lr, g_lr\); drop --lr and use --set d_lr=VALUE --set g_lr=VALUE"):
        fit(tiny(digits), data, TrainConfig(epochs=1, lr=1e-2))
    with pytest.raises(ConfigError, match="option lr_patience does not apply to model 'gan'"):
        fit(tiny(digits), data, TrainConfig(epochs=1, lr_patience=2))


def test_no_elbo_and_no_log_likelihood(digits, data):
    gan = tiny(digits)
    with pytest.raises(ConfigError, match="no ELBO"):
        gan.elbo_per_datum(data.test)
    with pytest.raises(ConfigError, match="not available"):
        gan.iw_log_likelihood(data.test.x[:3])
    with pytest.raises(ConfigError, match="no inference network"):
        gan.guide(data.test.x[:3])


def snapshot(model: GAN) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in getattr(model, name).named_parameters()} for name in ("discriminator", "generator")}


def changed(a: dict, b: dict, group: str) -> bool:
    return any(not torch.equal(a[group][k], b[group][k]) for k in a[group])


def test_samples_come_from_the_generators_weight_average(digits, data):
    """``after_group_step("generator")`` moves every weight of ``generator_ema`` by ``w_avg += (1 - d)(w - w_avg)``
    with ``d = min(ema_decay, (1 + n) / (10 + n))`` after n updates (checked by replaying the recursion on the weights
    the generator had after each step), copies batch-norm statistics, ignores the discriminator's steps; trained and
    sampling networks differ only in eval mode; ``ema_decay=0`` samples from the last weights."""
    gan = tiny(digits, ema_decay=0.9)
    start = [p.detach().clone() for p in gan.generator_ema.parameters()]
    seen, average = [], gan.after_group_step

    def spy(group: str) -> None:  # the generator's weights after each of its steps, then the model's own hook
        if group == "generator":
            seen.append([p.detach().clone() for p in gan.generator.parameters()])
        average(group)

    gan.after_group_step = spy
    fit(gan, data, TrainConfig(epochs=1, batch_size=256, seed=0))
    assert len(seen) == int(gan.ema_updates) == len(data.train) // 256 + (len(data.train) % 256 > 0)
    expected = start
    for n, weights in enumerate(seen):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = [avg + (1 - decay) * (w - avg) for avg, w in zip(expected, weights)]
    for avg, want in zip(gan.generator_ema.parameters(), expected):
        assert_close_scaled(avg.detach(), want, rel=1e-5)
    for avg, live in zip(gan.generator_ema.buffers(), gan.generator.buffers()):
        assert torch.equal(avg, live)
    z = torch.randn(5, 4)
    with torch.no_grad():
        assert_close_scaled(torch.from_numpy(gan.decode(z)), gan.generator_ema.eval()(z), rel=1e-6)
        assert not torch.allclose(torch.from_numpy(gan.decode(z)), gan.generator.eval()(z))
    assert gan.train().sampler is gan.generator and gan.eval().sampler is gan.generator_ema
    plain = tiny(digits, ema_decay=0.0)
    fit(plain, data, TrainConfig(epochs=1, batch_size=256, seed=0))
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(plain.decode(z)), plain.generator.eval()(z)) and not hasattr(plain, "generator_ema")


def test_runs_saved_before_kernel_and_ema_load_as_they_were_trained(digits):
    """A config without ``kernel`` and ``ema_decay`` (saved before them) gets kernel 3 and no averaging, and its
    weights load as they are; a new model gets kernel 4."""
    from ppmodels.runs.folder import build_model

    old = tiny(digits, kernel=3)
    config = {k: v for k, v in vars(old.config).items() if k not in ("kernel", "ema_decay")}
    rebuilt = build_model({"model": "gan", "model_config": config})
    assert rebuilt.config.kernel == 3 and rebuilt.config.ema_decay == 0.0
    rebuilt.load_state_dict(old.state_dict())
    z = torch.randn(4, 4)
    assert np.array_equal(rebuilt.decode(z), old.decode(z))
    assert GAN(x_shape=[1, 8, 8]).config.kernel == 4


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (5, 69, 69), (3, 7, 9)])
def test_kernel_4_meets_every_size_and_gives_every_pixel_the_same_taps(shape):
    """Both kernels reach the data's size exactly; with all-ones weights and a constant input, kernel 4 (a multiple of
    the stride) gives a constant interior, where kernel 3 alternates 1, 2 and 4 taps: the checkerboard."""
    from ppmodels.nets import DCGenerator

    for kernel in (3, 4):
        assert DCGenerator(6, shape, [4, 8], kernel=kernel)(torch.randn(2, 6)).shape == (2, *shape)
    taps = {}
    for kernel in (3, 4):
        up = torch.nn.ConvTranspose2d(1, 1, kernel, stride=2, padding=1, bias=False)
        torch.nn.init.ones_(up.weight)
        with torch.no_grad():
            taps[kernel] = up(torch.ones(1, 1, 6, 6))[0, 0, 2:-2, 2:-2]
    assert taps[4].unique().tolist() == [4.0] and taps[3].unique().tolist() == [1.0, 2.0, 4.0]
