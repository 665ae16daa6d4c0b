"""Denoising: the encoder sees a corrupted copy in training, the likelihood scores the clean x."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppmodels.corruption import corrupt
from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError
from ppmodels.models import GMVAE, VAE
from ppmodels.train import TrainConfig


def test_corrupt_masks_at_the_rate_and_adds_noise():
    x = torch.ones(20000)
    masked = corrupt(x, "mask", 0.3, torch.Generator().manual_seed(0))
    assert set(masked.unique().tolist()) == {0.0, 1.0} and float((masked == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    noisy = corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(0))
    assert float((noisy - x).std()) == pytest.approx(0.5, rel=0.03)
    assert corrupt(x, "none", 0.5) is x


def test_loss_scores_the_clean_x_while_the_encoder_sees_the_corrupted_one():
    vae = VAE(x_shape=[12], z_dim=2, hidden=[8], corruption="mask", noise_level=0.5)
    x = torch.rand(6, 12)
    pyro.set_rng_seed(4)
    loss = vae.loss({"x": x, "num_data": 6})
    pyro.set_rng_seed(4)
    x_in = corrupt(x, "mask", 0.5)  # the same draw the guide makes
    loc, scale = vae.encoder(x_in)
    z = dist.Normal(loc, scale).rsample()
    log_px = dist.Bernoulli(logits=vae.decoder(z), validate_args=False).log_prob(x).sum(-1)  # clean x
    elbo = log_px + dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - dist.Normal(loc, scale).log_prob(z).sum(-1)
    assert not torch.equal(x_in, x)
    assert torch.allclose(loss, -elbo.sum(), rtol=1e-5)
    vae.eval()  # evaluation, encoding and scoring see the data as given
    assert torch.equal(vae.encoder_input(x), x)


def test_corruption_options_apply_to_every_encoder_model():
    assert GMVAE(x_shape=[4], z_dim=2, hidden=[4], corruption="gaussian", noise_level=0.1).config.corruption == "gaussian"
    with pytest.raises(ConfigError, match="corruption"):
        VAE(x_shape=[4], corruption="blur")
    with pytest.raises(ConfigError, match="masking rate"):
        VAE(x_shape=[4], corruption="mask", noise_level=1.5)


def test_denoising_vae_reconstructs_masked_inputs_better(digits):
    data = prepare_data(digits)
    x = data.test.x
    masked = corrupt(x, "mask", 0.4, torch.Generator().manual_seed(0))
    errors = {}
    for kind, level in (("none", 0.0), ("mask", 0.4)):
        torch.manual_seed(0)
        vae = VAE(x_shape=[1, 8, 8], z_dim=8, hidden=[64], corruption=kind, noise_level=level)
        vae.fit(data, TrainConfig(epochs=40, batch_size=64, lr=3e-3, patience=None))
        errors[kind] = float(np.mean((vae.reconstruct(masked) - x.numpy()) ** 2))
    assert errors["mask"] < 0.85 * errors["none"], errors
