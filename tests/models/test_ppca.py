"""Probabilistic PCA against its closed form (Tipping & Bishop 1999), and the linear VAE against the same subspace."""

import numpy as np
import pytest
import pyro.distributions as dist
import torch
from scipy.linalg import subspace_angles

from ppmodels.data import TrainData, from_arrays, prepare_data
from ppmodels.errors import ConfigError
from ppmodels.models import PPCA, VAE
from ppmodels.models.ppca import closed_form_ppca, principal_angles
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from tests.helpers import assert_close_scaled

D, K = 8, 2


@pytest.fixture(scope="module")
def toy():
    """1000 points near a 2-D plane in 8-D, isotropic noise 0.5, and the closed-form ML solution on the train split."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, K)) * np.array([3.0, 1.5])
    x = rng.normal(size=(1000, K)) @ w.T + 0.5 * rng.normal(size=(1000, D)) + 1.0
    full = prepare_data(from_arrays("toy", x.astype(np.float32)))
    # no validation split: the trainer then keeps the weights with the best *training* likelihood, the ML estimate
    data = TrainData(full.dataset, full.train, None, None)
    cov = np.cov(data.train.x.numpy().astype(np.float64).T, bias=True)  # the ML estimate divides by N
    eigval, eigvec = np.linalg.eigh(cov)
    eigval, eigvec = eigval[::-1], eigvec[:, ::-1]
    return data, eigvec[:, :K], eigval[K:].mean()


@pytest.mark.numerical
def test_elbo_is_the_exact_log_likelihood():
    """With the exact posterior as guide the ELBO equals log N(x; mu, WW^T + sigma^2 I) for every z drawn."""
    torch.manual_seed(0)
    ppca = PPCA(x_shape=[D], z_dim=K)
    with torch.no_grad():
        ppca.loc.normal_()
        ppca.log_noise_scale.fill_(-0.3)
    x = torch.randn(7, D)
    cov = ppca.weight @ ppca.weight.T + ppca.noise_scale**2 * torch.eye(D)
    exact = dist.MultivariateNormal(ppca.loc, covariance_matrix=cov).log_prob(x).sum()
    for _ in range(3):
        assert torch.allclose(-ppca.loss({"x": x, "num_data": 7}), exact, rtol=1e-5)
    assert_close_scaled(ppca.log_importance_weights(x, num_particles=5), ppca.log_marginal(x).expand(5, 7), rel=1e-5)


def test_learns_principal_subspace_and_noise_variance(toy):
    data, top, noise_var = toy
    ppca = fit(PPCA(x_shape=[D], z_dim=K, init="random", optimizer="adam"), data, TrainConfig(epochs=1000, batch_size=len(data.train), lr=0.05, patience=None))
    angles = np.degrees(subspace_angles(ppca.components_, top))
    assert angles.max() < 0.5, angles
    assert ppca.noise_variance_ == pytest.approx(noise_var, rel=0.01)
    # W^T W has eigenvalues lambda_k - sigma^2 (the likelihood is flat along them, so the tolerance is looser)
    cov = np.cov(data.train.x.numpy().astype(np.float64).T, bias=True)
    w = ppca.weight.detach().numpy()
    expected = np.sort(np.linalg.eigvalsh(cov))[::-1][:K] - noise_var
    assert np.sort(np.linalg.eigvalsh(w.T @ w))[::-1] == pytest.approx(expected, rel=0.03)
    # and the log-likelihood reaches the closed-form maximum
    eigval = np.linalg.eigvalsh(cov)
    best = -0.5 * (D * np.log(2 * np.pi) + np.log(eigval[::-1][:K]).sum() + (D - K) * np.log(noise_var) + D)
    assert float(ppca.log_marginal(data.train.x).mean()) == pytest.approx(best, abs=1e-3)


def test_closed_form_is_the_maximum_of_the_likelihood(toy):
    """closed_form_ppca against the eigendecomposition, and its log-likelihood against log_marginal at its parameters."""
    data, top, noise_var = toy
    best = closed_form_ppca(data.train.x.numpy(), K)
    assert principal_angles(best["components"], top).max() < 1e-4
    assert best["noise_variance"] == pytest.approx(noise_var, rel=1e-9)
    ppca = PPCA(x_shape=[D], z_dim=K)
    with torch.no_grad():
        ppca.weight.copy_(torch.as_tensor(best["weight"]))
        ppca.loc.copy_(torch.as_tensor(best["loc"]))
        ppca.log_noise_scale.fill_(0.5 * np.log(best["noise_variance"]))
    assert float(ppca.log_marginal(data.train.x).double().mean()) == pytest.approx(best["log_likelihood"], abs=1e-4)
    with torch.no_grad():  # any other W is worse: rotate the subspace a little out of the plane
        ppca.weight.add_(0.3 * torch.randn(D, K))
    assert float(ppca.log_marginal(data.train.x).double().mean()) < best["log_likelihood"] - 1e-3


def test_closed_form_start_holds_the_closed_form_and_fit_checks_report_it(toy):
    """init=closed_form starts at the ML solution; minibatch SVI keeps it within 2 degrees (the run summary's check)."""
    data, top, _ = toy
    ppca = fit(PPCA(x_shape=[D], z_dim=K, seed=0, init="closed_form", optimizer="adam"), data, TrainConfig(epochs=5, batch_size=100))
    checks = ppca.fit_checks(data)
    assert checks["closed_form_angle_deg"] == pytest.approx(principal_angles(ppca.components_, top).max(), abs=1e-3)
    assert checks["closed_form_angle_deg"] < 2.0 and 0 <= checks["closed_form_log_likelihood_gap"] < 0.01
    # a random start trained for one epoch is far from it, and the check says so
    random = fit(PPCA(x_shape=[D], z_dim=K, seed=0, init="random", optimizer="adam"), data, TrainConfig(epochs=1, batch_size=100))
    assert random.fit_checks(data)["closed_form_log_likelihood_gap"] > 0.1
    with pytest.raises(ConfigError, match="init"):
        PPCA(x_shape=[D], z_dim=K, init="pca")
    with pytest.raises(ConfigError, match="optimizer"):
        PPCA(x_shape=[D], z_dim=K, optimizer="sgd")


@pytest.mark.parametrize("z_dim", [2, 5, 10])
def test_em_from_a_random_start_reaches_the_closed_form_and_keeps_it(z_dim):
    """The default fit (a random start, EM: one closed-form update per epoch, minibatches of 100, a validation split)
    ends within 1 degree and 1% of sigma^2 of the closed form on synthetic data whose eigenvalues fall slowly (the
    gap after the 2nd is 10%), and keeps the last epochs, not a transient of the validation ELBO."""
    rng = np.random.default_rng(1)
    d = 20
    w = rng.normal(size=(d, 12)) * np.linspace(2.0, 0.8, 12)
    x = rng.normal(size=(800, 12)) @ w.T + 0.4 * rng.normal(size=(800, d))
    data = prepare_data(from_arrays("toy", x.astype(np.float32)))
    best = closed_form_ppca(data.train.x, z_dim)
    ppca = PPCA(x_shape=[d], z_dim=z_dim, seed=0)
    assert ppca.config.init == "random" and ppca.config.optimizer == "em"
    from ppmodels.infer.trainer import Trainer

    trainer = Trainer(TrainConfig(epochs=80, batch_size=100, patience=None, seed=0))
    ppca.before_fit(data)
    start = principal_angles(ppca.components_, best["components"]).max()
    trainer.fit(ppca, data)
    assert start > 20  # a random start is far from the answer
    assert principal_angles(ppca.components_.astype(np.float64), best["components"]).max() < 1.0
    assert ppca.noise_variance_ == pytest.approx(best["noise_variance"], rel=0.01)
    assert trainer.state.selected_by == "train_elbo"  # the kept epoch is the likelihood's maximum, not a transient
    assert abs(ppca.fit_checks(data)["closed_form_log_likelihood_gap"]) < 0.05  # nats per datum (either side: float32 rounding)


def test_an_em_step_is_the_closed_form_update_and_raises_the_likelihood(toy):
    """One EM step on the whole data equals Tipping & Bishop's update computed from the sample covariance."""
    data, _, _ = toy
    x = data.train.x.double()
    ppca = PPCA(x_shape=[D], z_dim=K, seed=0)
    ppca.before_fit(data)
    w0, var0 = ppca.weight.detach().double().clone(), ppca.noise_variance_
    before = float(ppca.log_marginal(data.train.x).double().mean())
    ppca.closed_form_step({"x": data.train.x, "num_data": len(x)})
    s = torch.cov(x.T, correction=0)
    m_inv = torch.linalg.inv(w0.T @ w0 + var0 * torch.eye(K, dtype=torch.float64))
    w1 = s @ w0 @ torch.linalg.inv(var0 * torch.eye(K, dtype=torch.float64) + m_inv @ w0.T @ s @ w0)
    var1 = float(torch.trace(s - s @ w0 @ m_inv @ w1.T)) / D
    w = ppca.weight.detach().double()
    assert float((w - w1).norm() / w1.norm()) < 1e-5
    assert ppca.noise_variance_ == pytest.approx(var1, rel=1e-5)
    assert float(ppca.log_marginal(data.train.x).double().mean()) > before


def test_a_shared_noise_scale_is_one_parameter_that_trains(toy):
    """The default suite's run of x_scale="shared" (the slow test below checks what it converges to): one scale for
    every feature, moved by training, and the likelihood's scale is that one number on every feature."""
    data, _, _ = toy
    torch.manual_seed(0)
    vae = VAE(x_shape=[D], z_dim=K, hidden=[], likelihood="gaussian", x_scale="shared")
    before = vae.x_log_scale.detach().clone()
    assert before.numel() == 1
    fit(vae, data, TrainConfig(epochs=3, batch_size=100, lr=0.01, patience=None))
    assert not torch.equal(vae.x_log_scale.detach(), before)
    from pyro import poutine

    scale = poutine.trace(vae.model).get_trace(data.train.x[:5]).nodes["x"]["fn"].base_dist.scale
    assert scale.shape == (5, D) and torch.equal(scale, vae.x_log_scale.exp().expand(5, D))


# 300 epochs (7 s): slow; the test above trains the shared scale by default
@pytest.mark.slow
def test_linear_vae_recovers_the_same_subspace(toy):
    """A VAE with linear encoder and decoder and isotropic Gaussian noise is PPCA with an amortized guide."""
    data, top, noise_var = toy
    torch.manual_seed(0)
    vae = VAE(x_shape=[D], z_dim=K, hidden=[], likelihood="gaussian", x_scale="shared")
    fit(vae, data, TrainConfig(epochs=300, batch_size=100, lr=0.01, patience=None))
    decoder_weight = vae.decoder.net.net[0].weight.detach().numpy()
    angles = np.degrees(subspace_angles(decoder_weight, top))
    assert angles.max() < 2.0, angles
    assert float(vae.x_log_scale.detach().exp() ** 2) == pytest.approx(noise_var, rel=0.1)


def test_sample_encode_shapes_and_config_checks(digits):
    ppca = PPCA(x_shape=[1, 8, 8], z_dim=3)
    assert ppca.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 8, 8)
    loc, scale = ppca.encode(digits.split("test").x[:5])
    assert loc.shape == scale.shape == (5, 3) and (scale > 0).all()
    assert PPCA.config_from_data(digits, z_dim=3).likelihood == "gaussian"
    with pytest.raises(ConfigError, match="z_dim"):
        PPCA(x_shape=[4], z_dim=4)


def test_simulation_based_calibration_of_the_guide():
    """SBC (Talts et al. 2018) for z: data simulated from known W, mu, sigma with z ~ N(0, I); the rank of the true z
    among 99 draws of the guide is uniform (chi-square over 10 bins), and a guide whose scale is halved fails it."""
    from scipy.stats import chisquare

    torch.manual_seed(0)
    ppca = PPCA(x_shape=[D], z_dim=K, seed=0)
    with torch.no_grad():
        ppca.weight.copy_(torch.randn(D, K))
        ppca.loc.copy_(torch.randn(D))
        ppca.log_noise_scale.fill_(np.log(0.7))
    z = torch.randn(2000, K)
    x = z @ ppca.weight.detach().T + ppca.loc.detach() + 0.7 * torch.randn(2000, D)

    def ranks(shrink):
        loc, tril = ppca.posterior(x)
        draws = loc + shrink * (torch.randn(99, 2000, 1, K) @ tril.detach().T).squeeze(-2)
        return (draws.detach() < z).sum(0).numpy().ravel()  # 0..99 per datum and dimension

    def uniform_p(r):
        return chisquare(np.bincount(r // 10, minlength=10)).pvalue

    assert uniform_p(ranks(1.0)) > 1e-3
    assert uniform_p(ranks(0.5)) < 1e-6
