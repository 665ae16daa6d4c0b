import contextlib
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppmodels.infer.importance import iw_log_likelihood, log_importance_weights
from ppmodels.models import VAE
from tests.helpers import assert_close_scaled


def test_log_weights_shape_and_mean_equals_elbo(log_weights_match_elbo):
    torch.manual_seed(0)
    vae = VAE(x_shape=[6], z_dim=2, hidden=[8])
    x = torch.rand(5, 6)
    lw = log_importance_weights(vae, x, num_particles=4000)
    assert lw.shape == (4000, 5)
    log_weights_match_elbo(vae, x, lw)  # the mean log-weight is the ELBO


class LinearGaussian:
    """``z ~ N(0, 1)``, ``x ~ N(z, 1)``: the posterior is ``N(x/2, 1/2)`` and ``p(x) = N(x; 0, 2)``. The guide is
    ``N(x/2, guide_scale^2)``: the exact posterior at ``sqrt(1/2)``, too wide above it."""

    def __init__(self, guide_scale: float):
        self.guide_scale = guide_scale

    def evaluating(self):
        return contextlib.nullcontext()

    def model(self, x, num_data=None):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(self, x, num_data=None):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(x / 2, self.guide_scale))

    @staticmethod
    def log_evidence(x):
        return dist.Normal(0.0, math.sqrt(2.0)).log_prob(x)


def test_iw_bound_is_tighter_than_elbo_and_grows_with_particles():
    """A guide of variance 1 for a posterior of variance 1/2: the ELBO is log p(x) - KL(q || posterior), and the IW
    bound climbs from it towards log p(x) as particles are added. Each check allows 4 Monte Carlo standard errors."""
    torch.manual_seed(0)
    x = torch.tensor([-1.0, 0.0, 2.5])
    exact = LinearGaussian.log_evidence(x)
    kl = 0.5 * math.log(0.5) + 0.5  # KL(N(m, 1) || N(m, 1/2)) = log(sqrt(1/2)) + 1 / (2 * 1/2) - 1/2
    lw = log_importance_weights(LinearGaussian(1.0), x, num_particles=20000)
    assert torch.allclose(iw_log_likelihood(torch.tensor([[1.0], [2.0], [6.0]]).log()), torch.tensor([3.0]).log())  # log mean w
    assert ((lw.mean(0) - (exact - kl)).abs() < 4 * lw.std(0) / math.sqrt(len(lw))).all()  # the ELBO
    iw_10 = torch.stack([iw_log_likelihood(group) for group in lw.reshape(2000, 10, 3)])  # 2000 bounds of 10 particles
    assert (iw_10.mean(0) > exact - kl + 0.1).all()  # measured 0.145 above the ELBO (standard error 0.003)
    assert (iw_10.mean(0) < exact + 4 * iw_10.std(0) / math.sqrt(len(iw_10))).all()  # still a lower bound
    assert ((iw_log_likelihood(lw) - exact).abs() < 4 * iw_standard_error(lw)).all()  # 20000 particles: log p(x)


@pytest.mark.numerical
def test_iw_equals_exact_log_likelihood_when_guide_is_the_posterior():
    """With q = the exact posterior every weight equals log p(x)."""
    x = torch.tensor([-1.0, 0.0, 2.5])
    lw = log_importance_weights(LinearGaussian(math.sqrt(0.5)), x, num_particles=7)
    assert_close_scaled(lw, LinearGaussian.log_evidence(x).expand(7, 3), rel=1e-6)


def iw_standard_error(log_weights: torch.Tensor) -> torch.Tensor:
    """Monte Carlo standard error of each datum's ``log mean w`` from ``(S, N)`` log-weights (delta method)."""
    w = (log_weights - log_weights.max(0).values).exp()
    return w.std(0) / (w.mean(0) * math.sqrt(len(w)))


def test_generic_weights_leave_out_latents_drawn_from_their_prior():
    """The GMM's k has no guide site: the replay draws it from p(k), so log p(k) must not enter the weight.
    Then the generic IW estimate converges to the exact log p(x) (and with log p(k) counted it would not).
    Both comparisons allow 4 Monte Carlo standard errors per datum (the largest seen over 30 seeds: 2.8)."""
    from ppmodels.models import GMM, GMVAE

    torch.manual_seed(0)
    gmm = GMM(x_shape=[2], num_components=3)
    x = torch.randn(6, 2)
    lw = log_importance_weights(gmm, x, num_particles=20000)
    assert ((iw_log_likelihood(lw) - gmm.log_density(x)).abs() < 4 * iw_standard_error(lw)).all()
    # the GMVAE's generic weights (c drawn from the prior) and its exact sum over c estimate the same p(x)
    # overlapping components keep both estimators low-variance with an untrained guide
    gmvae = GMVAE(x_shape=[6], z_dim=2, hidden=[8], num_components=3, prior_spread=0.5)
    x = torch.rand(4, 6)
    generic = log_importance_weights(gmvae, x, num_particles=20000)
    exact = gmvae.log_importance_weights(x, num_particles=20000)
    se = (iw_standard_error(generic) ** 2 + iw_standard_error(exact) ** 2).sqrt()
    assert ((iw_log_likelihood(generic) - iw_log_likelihood(exact)).abs() < 4 * se).all()
