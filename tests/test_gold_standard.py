"""NUTS gold standard for PPCA: the chains mix on rotation-invariant quantities, find the closed-form MLE, and the SVI
fit lies inside the posterior."""

import numpy as np
import pytest

from ppmodels.data import TrainData, from_arrays, prepare_data
from ppmodels.gold_standard import compare_ppca, invariant_quantities, mean_subspace, principal_angles
from ppmodels.models import PPCA
from ppmodels.train import TrainConfig

D, K, N = 4, 1, 150


@pytest.fixture(scope="module")
def fitted():
    """150 points near a line in 4-D (noise variance 0.25; the train split keeps 105), a PPCA fitted by SVI, and the
    closed-form MLE on the train split."""
    rng = np.random.default_rng(1)
    w = np.array([[2.0], [-1.0], [1.0], [0.5]])
    x = (rng.normal(size=(N, K)) @ w.T + 0.5 * rng.normal(size=(N, D)) + 3.0).astype(np.float32)
    full = prepare_data(from_arrays("line", x))
    data = TrainData(full.dataset, full.train, None, None)
    ppca = PPCA(x_shape=[D], z_dim=K).fit(data, TrainConfig(epochs=600, batch_size=len(data.train), lr=0.05, patience=None))
    train_x = data.train.x.numpy().astype(np.float64)
    eigval = np.sort(np.linalg.eigvalsh(np.cov(train_x.T, bias=True)))[::-1]
    return ppca, train_x, {"sigma2": eigval[K:].mean(), "eigenvalue_1": eigval[0] - eigval[K:].mean()}


def test_invariants_ignore_rotation():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 2))
    rotation, _ = np.linalg.qr(rng.normal(size=(2, 2)))
    a, b = invariant_quantities(w, 0.3), invariant_quantities(w @ rotation, 0.3)
    np.testing.assert_allclose(a["eigenvalue"], b["eigenvalue"])
    assert a["eigenvalue"][0] > a["eigenvalue"][1]
    # draws that differ only by rotation (and sign) share one posterior-mean subspace, span(w)
    stacked = np.stack([w, w @ rotation, -w])
    basis = np.linalg.qr(w)[0]
    assert principal_angles(basis, mean_subspace(stacked)).max() < 1e-4
    assert principal_angles(basis, np.linalg.qr(rng.normal(size=(5, 2)))[0]).max() > 1.0


def test_nuts_agrees_with_closed_form_and_svi(fitted):
    ppca, x, mle = fitted
    gold = compare_ppca(ppca, x, num_samples=150, warmup=150, num_chains=2, seed=0)
    q = gold["quantities"]
    assert set(q) == {"sigma2", "eigenvalue_1"}
    assert gold["max_rhat"] < 1.1, q
    assert gold["min_ess"] > 30, q
    # the posterior mean sits near the MLE (the weak priors move it by a fraction of a posterior sd)
    for name, value in mle.items():
        assert abs(q[name]["mean"] - value) < 1.0 * q[name]["sd"], (name, q[name], value)
    assert q["sigma2"]["mean"] == pytest.approx(mle["sigma2"], rel=0.1)
    # SVI reached the MLE, so it lies well inside the posterior, and its subspace is the posterior's
    assert gold["max_abs_z"] < 2.0, q
    assert np.max(gold["subspace_angles_deg"]) < 5.0
