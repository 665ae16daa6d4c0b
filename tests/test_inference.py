import math

import pytest
import torch

from ppmodels.infer.importance import iw_log_likelihood, log_importance_weights
from ppmodels.models import VAE


def test_log_weights_shape_and_mean_equals_elbo():
    torch.manual_seed(0)
    vae = VAE(x_shape=[6], z_dim=2, hidden=[8])
    x = torch.rand(5, 6)
    lw = log_importance_weights(vae, x, num_particles=4000)
    assert lw.shape == (4000, 5)
    elbo = -vae.elbo.loss(vae.model, vae.guide, x=x, num_data=5)
    # the mean log-weight is the ELBO (Monte Carlo, 4000 draws per datum)
    assert float(lw.mean(0).sum()) == pytest.approx(elbo, rel=0.02)


def test_iw_bound_is_tighter_than_elbo_and_grows_with_particles():
    torch.manual_seed(0)
    vae = VAE(x_shape=[6], z_dim=2, hidden=[8])
    x = torch.rand(20, 6)
    lw = log_importance_weights(vae, x, num_particles=1000)
    assert (iw_log_likelihood(lw) >= lw.mean(0)).all()  # Jensen
    small = torch.stack([iw_log_likelihood(lw[i * 10:(i + 1) * 10]) for i in range(100)]).mean(0)
    assert float(iw_log_likelihood(lw).mean()) > float(small.mean())


def test_iw_equals_exact_log_likelihood_when_guide_is_the_posterior():
    """Linear-Gaussian check: with q = the exact posterior every weight equals log p(x)."""
    import pyro
    import pyro.distributions as dist

    class Exact:
        def evaluating(self):
            import contextlib

            return contextlib.nullcontext()

        def model(self, x, num_data=None):
            with pyro.plate("data", len(x)):
                z = pyro.sample("z", dist.Normal(0.0, 1.0))
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

        def guide(self, x, num_data=None):
            with pyro.plate("data", len(x)):
                pyro.sample("z", dist.Normal(x / 2, math.sqrt(0.5)))

    x = torch.tensor([-1.0, 0.0, 2.5])
    lw = log_importance_weights(Exact(), x, num_particles=7)
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x)
    assert torch.allclose(lw, exact.expand(7, 3), atol=1e-5)


def test_generic_weights_leave_out_latents_drawn_from_their_prior():
    """The GMM's k has no guide site: the replay draws it from p(k), so log p(k) must not enter the weight.
    Then the generic IW estimate converges to the exact log p(x) (and with log p(k) counted it would not)."""
    from ppmodels.models import GMM, GMVAE

    torch.manual_seed(0)
    gmm = GMM(x_shape=[2], num_components=3)
    x = torch.randn(6, 2)
    lw = log_importance_weights(gmm, x, num_particles=20000)
    assert torch.allclose(iw_log_likelihood(lw), gmm.log_density(x), atol=0.05)
    # the GMVAE's generic weights (c drawn from the prior) and its exact sum over c estimate the same p(x)
    # overlapping components keep both estimators low-variance with an untrained guide
    gmvae = GMVAE(x_shape=[6], z_dim=2, hidden=[8], num_components=3, prior_spread=0.5)
    x = torch.rand(4, 6)
    generic = iw_log_likelihood(log_importance_weights(gmvae, x, num_particles=20000))
    exact = iw_log_likelihood(gmvae.log_importance_weights(x, num_particles=20000))
    assert torch.allclose(generic, exact, atol=0.1)
