"""The enumerated Gaussian mixture: the ELBO against the brute-force sum, recovery of known parameters, latents:RUN."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import ppmodels
from ppmodels.data import TrainData, from_arrays, load_dataset, prepare_data
from ppmodels.models import GMM
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from tests.helpers import assert_close_scaled

TRUE_MEANS = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
TRUE_SCALES = np.array([[1.0, 0.5], [0.7, 0.7], [0.5, 1.5]])
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])


def synthetic(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    return (TRUE_MEANS[k] + TRUE_SCALES[k] * rng.normal(size=(n, 2))).astype(np.float32), k


@pytest.mark.numerical
def test_enumerated_loss_equals_brute_force_sum():
    torch.manual_seed(0)
    gmm = GMM(x_shape=[2], num_components=3)
    x = torch.randn(9, 2) * 3
    brute = torch.stack([
        torch.distributions.Normal(gmm.locs[k], gmm.scales[k]).log_prob(x).sum(-1) + gmm.logits.log_softmax(-1)[k] for k in range(3)
    ]).logsumexp(0)
    assert torch.allclose(-gmm.loss({"x": x, "num_data": 18}), 2 * brute.sum(), rtol=1e-5)
    assert_close_scaled(gmm.log_density(x), brute, rel=1e-6)
    assert_close_scaled(gmm.log_importance_weights(x, 4), brute.expand(4, 9), rel=1e-6)


def matched_errors(gmm, means, weights):
    """Largest mean distance and weight difference after matching components (Hungarian, on mean distance)."""
    cost = ((gmm.means_[:, None] - means[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return np.sqrt(cost[rows, cols]).max(), np.abs(gmm.weights_[rows] - weights[cols]).max(), (rows, cols)


def test_recovers_known_means_and_weights_up_to_label_switching():
    from sklearn.mixture import GaussianMixture

    x, _ = synthetic()
    data = prepare_data(from_arrays("toy", x))
    gmm = GMM(x_shape=[2], num_components=3)
    gmm.before_fit(data)
    start = float(gmm.log_density(data.train.x).mean())
    fit(gmm, data, TrainConfig(epochs=100, batch_size=len(data.train), lr=0.02, patience=None))
    assert float(gmm.log_density(data.train.x).mean()) > start + 0.01  # the ELBO improves on the k-means start
    mean_error, weight_error, (rows, cols) = matched_errors(gmm, TRUE_MEANS, TRUE_WEIGHTS)
    scale_error = np.abs(gmm.scales.detach().numpy()[rows] - TRUE_SCALES[cols]).max()
    # the truth, within sampling error of 1050 training points
    assert mean_error < 0.2 and weight_error < 0.03 and scale_error < 0.15, (mean_error, weight_error, scale_error)
    # the maximum-likelihood fit of the same model by EM, closely
    em = GaussianMixture(3, covariance_type="diag", random_state=0).fit(data.train.x.numpy())
    em_mean_error, em_weight_error, _ = matched_errors(gmm, em.means_, em.weights_)
    assert em_mean_error < 0.06 and em_weight_error < 0.005, (em_mean_error, em_weight_error)


def test_sample_and_cluster_shapes():
    x, k = synthetic(300)
    gmm = GMM(x_shape=[2], num_components=3)
    fit(gmm, from_arrays("toy", x), TrainConfig(epochs=5, batch_size=100, lr=0.05, patience=None))
    draws = gmm.sample(50, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (50, 2)
    assert gmm.responsibilities(x).sum(1) == pytest.approx(np.ones(len(x)), abs=1e-5)
    assert set(np.unique(gmm.cluster(x))) <= {0, 1, 2}


def test_gmm_on_latents_of_a_run_samples_through_its_decoder(tmp_path):
    vae_run = tmp_path / "vae"
    cfg = TrainConfig(epochs=2, batch_size=256, patience=None)
    ppmodels.train("vae", "digits", vae_run, train_config=cfg, model_options={"z_dim": 3, "hidden": [16]}, progress=False)
    latents = load_dataset(f"latents:{vae_run}")
    digits = load_dataset("digits")
    assert latents.x.shape == (len(digits.x), 3) and latents.likelihood == "gaussian"
    assert np.array_equal(latents.y, digits.y) and all(np.array_equal(latents.splits[s], digits.splits[s]) for s in digits.splits)
    assert_close_scaled(latents.x, ppmodels.load(vae_run).transform(digits.x), rel=1e-5)

    gmm_run = tmp_path / "gmm"
    model, _ = ppmodels.train("gmm", f"latents:{vae_run}", gmm_run, train_config=cfg, model_options={"num_components": 4}, progress=False)
    assert model.config.decoder_run == str(vae_run.resolve())
    out = ppmodels.sample(gmm_run, tmp_path / "s.npy", num=6, seed=1)
    images = np.load(out)
    z = ppmodels.load(gmm_run).sample(6, generator=torch.Generator().manual_seed(1))
    assert images.shape == (6, 1, 8, 8)
    assert_close_scaled(images, ppmodels.load(vae_run).decode(z), rel=1e-5)


def test_simulation_based_calibration_of_the_component_posterior():
    """SBC (Talts et al. 2018) for k: 20,000 data simulated from known, overlapping components; the mixture fitted to
    them by the trainer (no validation split: the kept epoch is the best training likelihood); the rank of the true
    component of each of 10,000 of them among 99 draws of the fit's p(k | x) (components matched to the truth, ties broken
    at random) is uniform (chi-square over 10 bins). p(k | x) sharpened (responsibilities to the power 3) or flattened
    (to the power 1/3) fails it. With 2100 training data the fit's own error (means 0.3 off) already failed it."""
    from tests.helpers import sbc_ranks, uniform_ranks_pvalue

    means, scales, weights = np.array([[0.0, 0.0], [2.5, 0.0], [0.0, 3.0]]), np.array([[1.0, 0.8], [0.7, 1.0], [0.9, 1.2]]), np.array([0.4, 0.35, 0.25])
    rng = np.random.default_rng(1)
    k = rng.choice(3, size=20_000, p=weights)
    x = (means[k] + scales[k] * rng.normal(size=(20_000, 2))).astype(np.float32)
    full = prepare_data(from_arrays("toy", x))
    gmm = GMM(x_shape=[2], num_components=3)
    fit(gmm, TrainData(full.dataset, full.train, None, None), TrainConfig(epochs=50, batch_size=len(full.train), lr=0.03, patience=None))
    _, _, (rows, cols) = matched_errors(gmm, means, weights)
    x, k = x[:10_000], k[:10_000]
    resp = gmm.responsibilities(x)[:, rows[np.argsort(cols)]]  # columns in the order of the true components
    assert np.mean(resp.max(1) < 0.9) > 0.2  # the components overlap: p(k | x) is no point mass for many data

    def ranks(power):
        p = resp**power / (resp**power).sum(1, keepdims=True)
        draws = (rng.random((99, len(x), 1)) > p.cumsum(1)).sum(-1)  # 99 draws of k ~ p(k | x) per datum
        return sbc_ranks(draws, k, rng)

    assert uniform_ranks_pvalue(ranks(1.0), 99) > 1e-3
    assert uniform_ranks_pvalue(ranks(3.0), 99) < 1e-6
    assert uniform_ranks_pvalue(ranks(1 / 3), 99) < 1e-6
