import numpy as np
import pytest
import torch

from ppmodels.models import VAE
from ppmodels.analysis.inference_data import posterior_idata
from tests.helpers import assert_close_scaled


@pytest.mark.numerical
def test_vae_inference_data_groups_shapes_and_round_trip(tmp_path):
    import arviz as az

    vae = VAE(x_shape=[1, 8, 8], z_dim=3, hidden=[16])
    x = torch.rand(5, 1, 8, 8)
    idata = posterior_idata(vae, x, y=torch.arange(5), num_draws=7, seed=1)
    assert idata.posterior["z"].dims == ("chain", "draw", "datum", "z_dim")
    assert idata.posterior["z"].shape == (1, 7, 5, 3)
    assert idata.posterior_predictive["x"].shape == (1, 7, 5, 1, 8, 8)
    assert idata.log_likelihood["x"].shape == (1, 7, 5, 1, 8, 8)  # per pixel, as observed_data.x
    assert idata.sample_stats["log_weight"].shape == (1, 7, 5)
    assert idata.constant_data["y"].shape == (5,)  # a VAE does not model labels: no predictive counterpart
    assert "y" not in idata.observed_data
    # log_weight = log p(x|z) + log p(z) - log q(z|x) at the recorded z
    z = torch.as_tensor(idata.posterior["z"].values[0])
    loc, scale = vae.encoder(x.reshape(5, -1))
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    guide = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    expected = idata.log_likelihood["x"].values[0].reshape(7, 5, -1).sum(-1) + (prior - guide).detach().numpy()
    assert_close_scaled(idata.sample_stats["log_weight"].values[0], expected, rel=1e-5)
    # the KL terms are log q(z_d | x) - log p(z_d) per dimension at the recorded z
    per_dim = torch.distributions.Normal(loc, scale).log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)
    assert_close_scaled(idata.sample_stats["kl_z"].values[0], per_dim, rel=1e-5)
    path = tmp_path / "idata.nc"
    idata.to_netcdf(str(path))
    again = az.from_netcdf(str(path))
    assert again.posterior["z"].shape == (1, 7, 5, 3)
    # the same seed gives the same draws
    np.testing.assert_array_equal(posterior_idata(vae, x, num_draws=7, seed=1).posterior["z"].values, idata.posterior["z"].values)
