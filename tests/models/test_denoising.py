"""Denoising: the encoder sees a corrupted copy in training, the likelihood scores the clean x."""

from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch

from benchmarks.oracle import vae_loss as oracle_vae_loss
from ppmodels.corruption import corrupt
from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError
from ppmodels.models import GMVAE, VAE
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit


def test_corrupt_masks_at_the_rate_and_adds_noise():
    x = torch.ones(20000)
    masked = corrupt(x, "mask", 0.3, torch.Generator().manual_seed(0))
    assert set(masked.unique().tolist()) == {0.0, 1.0} and float((masked == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    noisy = corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(0))
    assert float((noisy - x).std()) == pytest.approx(0.5, rel=0.03)
    assert corrupt(x, "none", 0.5) is x


@pytest.mark.numerical
def test_loss_scores_the_clean_x_while_the_encoder_sees_the_corrupted_one():
    vae = VAE(x_shape=[12], z_dim=2, hidden=[8], corruption="mask", noise_level=0.5)
    x = torch.rand(6, 12)
    pyro.set_rng_seed(4)
    loss = vae.loss({"x": x, "num_data": 6})
    pyro.set_rng_seed(4)
    x_in = corrupt(x, "mask", 0.5)  # the same draw the guide makes
    assert not torch.equal(x_in, x)
    # the hand-written ELBO of the clean x, with an encoder that is fed the corrupted copy
    fed_x_in = SimpleNamespace(features=lambda _: vae.features(x_in), encoder=vae.encoder, x_dist=vae.x_dist)
    assert torch.allclose(loss, oracle_vae_loss(fed_x_in, {"x": x, "num_data": 6}), rtol=1e-5)
    vae.eval()  # evaluation, encoding and scoring see the data as given
    assert torch.equal(vae.encoder_input(x), x)


def test_corruption_options_apply_to_every_encoder_model():
    gmvae = GMVAE(x_shape=[4], z_dim=2, hidden=[4], corruption="gaussian", noise_level=0.1)
    x = torch.rand(500, 4)
    noise = gmvae.encoder_input(x) - x  # in training the encoder sees x plus noise of the asked scale
    assert float(noise.std()) == pytest.approx(0.1, rel=0.1)
    assert torch.equal(gmvae.eval().encoder_input(x), x)
    with pytest.raises(ConfigError, match="corruption"):
        VAE(x_shape=[4], corruption="blur")
    with pytest.raises(ConfigError, match="masking rate"):
        VAE(x_shape=[4], corruption="mask", noise_level=1.5)


def reconstruction_scores(vae, masked, clean, num_samples=50):
    """Expected log-likelihood of the clean images given the masked ones, E_q(z|masked) log p(clean | z), per image,
    and the squared error of the decoded means in the holes (pixels the mask zeroed that were not blank)."""
    with torch.no_grad():
        loc, scale = vae.encoder(vae.features(masked))
        z = dist.Normal(loc, scale).sample((num_samples,))
        log_lik = float(vae.x_dist(z).log_prob(clean).mean())
    holes = (masked == 0) & (clean > 0)
    hole_error = float(((torch.from_numpy(vae.reconstruct(masked)) - clean)[holes] ** 2).mean())
    return log_lik, hole_error


# two VAEs of 50 epochs (8 s): slow; the corrupted-encoder path trains by default in the two tests above
@pytest.mark.slow
def test_denoising_vae_reconstructs_masked_inputs_better(digits):
    """Same net, data and seed; only the corruption differs. The plain VAE is already a fair denoiser on 8x8
    digits, so the margin is modest (measured: about 1 nat per image and 5% lower hole error)."""
    data = prepare_data(digits)
    clean = data.test.x
    masked = corrupt(clean, "mask", 0.5, torch.Generator().manual_seed(0))
    scores = {}
    for kind, level in (("none", 0.0), ("mask", 0.5)):
        torch.manual_seed(0)
        vae = VAE(x_shape=[1, 8, 8], z_dim=16, hidden=[128], corruption=kind, noise_level=level)
        fit(vae, data, TrainConfig(epochs=50, batch_size=64, lr=3e-3, patience=None))
        scores[kind] = reconstruction_scores(vae, masked, clean)
    assert scores["mask"][0] > scores["none"][0] + 0.5, scores
    assert scores["mask"][1] < scores["none"][1], scores
