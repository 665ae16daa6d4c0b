import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from benchmarks.imbalanced import imbalanced_digits
from benchmarks.oracle import adgm_elbo, adgm_nll, m2_elbo, m2_loss, m2_nll
from ppmodels import load
from ppmodels.errors import ConfigError
from ppmodels.data import Split, prepare_data
from ppmodels.infer.importance import iw_log_likelihood
from ppmodels.models import ADGM, M2
from ppmodels.models.ssl_batches import LabeledSampler, labeled_unlabeled_batches
from ppmodels.infer import TrainConfig, Trainer
from ppmodels.infer import fit
from ppmodels.runs import save_model
from tests.helpers import assert_close_scaled

K = 3


def small_m2(**kw):
    return M2(**{"x_shape": [5], "num_classes": K, "z_dim": 2, "hidden": [7], **kw})


def small_adgm(**kw):
    return ADGM(**{"x_shape": [5], "num_classes": K, "z_dim": 2, "a_dim": 3, "hidden": [7], **kw})


# M2 and the ADGM (M2 with an auxiliary a in the guide) against their hand-written losses (benchmarks/oracle.py)
ORACLES = {"m2": (small_m2, m2_elbo, m2_nll), "adgm": (small_adgm, adgm_elbo, adgm_nll)}


def grads(m2, loss):
    m2.zero_grad()
    loss.backward()
    return {k: p.grad.clone() for k, p in m2.named_parameters() if p.grad is not None}


@pytest.mark.numerical
@pytest.mark.parametrize("name", list(ORACLES))
@pytest.mark.parametrize("labeled", [False, True])
def test_enumerated_elbo_equals_brute_force_sum_over_classes(labeled, name):
    build, hand_elbo, _ = ORACLES[name]
    torch.manual_seed(0)
    m2 = build(class_prior="labeled")
    m2.log_prior.copy_(torch.tensor([0.2, 0.3, 0.5]).log())  # a non-uniform p(y) so that the prior term counts
    x, y = torch.rand(6, 5), torch.tensor([0, 2, 1, 1, 0, 2])
    kwargs = {"y": y} if labeled else {}
    pyro.set_rng_seed(3)
    loss = m2.elbo.differentiable_loss(m2.model, m2.guide, x=x, num_data=60, **kwargs)
    g_pyro = grads(m2, loss)
    pyro.set_rng_seed(3)
    expected = -hand_elbo(m2, x, y if labeled else None).sum() * 60 / 6
    g_hand = grads(m2, expected)
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert g_pyro.keys() == g_hand.keys() and len(g_pyro) > 0
    for name in g_pyro:
        assert_close_scaled(g_pyro[name], g_hand[name], rel=1e-5, what=name)
    if not labeled:
        assert "classifier.net.net.0.weight" in g_pyro  # the enumerated sum trains q(y|x)
    if name == "adgm":
        assert {"a_encoder.net.net.0.weight", "a_decoder.net.net.0.weight"} <= g_pyro.keys()  # q(a|x) and p(a|x,y,z) train


@pytest.mark.numerical
@pytest.mark.parametrize("name", list(ORACLES))
def test_loss_adds_scaled_parts_and_the_alpha_term(name):
    """A mixed batch: unlabeled ELBO * N_u/B_u + weighted labeled ELBO + alpha * sum_i w_i (-log q(y_i|x_i)) (for the
    ADGM -log q(y_i|a_i,x_i) at one draw a_i ~ q(a|x_i), its classification pair's)."""
    build, hand_elbo, hand_nll = ORACLES[name]
    torch.manual_seed(0)
    m2 = build()
    x_u, x_l, y_l = torch.rand(4, 5), torch.rand(3, 5), torch.tensor([2, 0, 0])
    w = torch.tensor([1.0, 2.0, 4.0])
    batch = {"x": x_u, "num_data": 40, "x_labeled": x_l, "y_labeled": y_l, "labeled_weights": w, "num_labeled": 9, "alpha": 5.0}
    pyro.set_rng_seed(1)
    loss = m2.loss(batch)
    pyro.set_rng_seed(1)
    unlabeled = -hand_elbo(m2, x_u).sum() * 40 / 4
    labeled = -(w * hand_elbo(m2, x_l, y_l)).sum()
    classification = 5.0 * (w * hand_nll(m2, x_l, y_l)).sum()
    assert torch.allclose(loss, unlabeled + labeled + classification, rtol=1e-5)
    pyro.set_rng_seed(1)
    assert torch.allclose(loss, m2_loss(m2, batch, hand_elbo, hand_nll), rtol=1e-5)
    batch["alpha"] = 0.0  # alpha = 0 drops the term instead of scaling by zero
    pyro.set_rng_seed(1)
    assert torch.allclose(m2.loss(batch), unlabeled + labeled, rtol=1e-5)


def test_labeled_weight_defaults_to_the_unlabeled_to_labeled_ratio():
    """lambda = N_u / N_l (at least 1) unless set; the batches carry it in the labeled weights, and the alpha term
    with it, so the whole labeled part is multiplied by lambda: J = sum_u U + lambda sum_l (L - alpha CE)."""
    y = torch.full((23,), -1)
    y[[0, 5, 9, 12]] = torch.tensor([0, 1, 2, 0])
    train = Split("train", torch.rand(23, 5), y)
    assert small_m2().labeled_weight_for(train) == pytest.approx(19 / 4)
    assert small_m2(labeled_weight=1.0).labeled_weight_for(train) == 1.0
    all_labeled = Split("train", torch.rand(6, 5), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert small_m2().labeled_weight_for(all_labeled) == 1.0
    assert small_m2().config.alpha == 10.0
    plain, scaled = (list(labeled_unlabeled_batches(train, 8, None, True, torch.Generator().manual_seed(0), torch.device("cpu"),
                                                    alpha=2.0, labeled_weight=lam)) for lam in (1.0, 4.75))
    for a, b in zip(plain, scaled):
        assert torch.equal(a["x_labeled"], b["x_labeled"]) and torch.allclose(b["labeled_weights"], 4.75 * a["labeled_weights"])
    m2 = small_m2()
    batch_1, batch_l = ({k: v for k, v in b.items() if k not in ("x", "num_data")} for b in (plain[0], scaled[0]))
    pyro.set_rng_seed(2)
    loss_1 = m2.loss(batch_1)
    pyro.set_rng_seed(2)
    assert torch.allclose(m2.loss(batch_l), 4.75 * loss_1, rtol=1e-5)
    with pytest.raises(ConfigError, match="labeled_weight"):
        small_m2(labeled_weight=0.0)


@pytest.mark.parametrize("balanced", [True, False])
def test_labeled_weights_make_every_batch_unbiased(balanced):
    """Unbalanced labels (5, 1, 2 per class): E[sum_b w_b f(i_b)] = sum_i f(i), here exactly, from the probabilities."""
    y = torch.tensor([0, 0, 0, 0, 0, 1, 2, 2])
    sampler = LabeledSampler(y, batch_size=4, balanced=balanced, generator=torch.Generator().manual_seed(0))
    idx, w = sampler.draw()
    assert torch.allclose(w.double(), 1 / (4 * sampler.probs[idx]))
    assert torch.allclose(sampler.probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    f = torch.arange(1.0, 9.0, dtype=torch.float64)
    # each of the B draws picks i with the probability that defines the scheme (balanced: a class uniformly, then an
    # example within it; else uniformly), so the exact expectation is B * sum_i p_i w_i f_i, w_i the sampler's weight
    p = 1 / (3 * torch.bincount(y).double()[y]) if balanced else torch.full((8,), 1 / 8, dtype=torch.float64)
    weight_of = {}
    for _ in range(100):
        weight_of.update(zip(*(t.tolist() for t in sampler.draw())))
    assert sorted(weight_of) == list(range(8))  # every example is drawn, each always with one weight
    weights = torch.tensor([weight_of[i] for i in range(8)], dtype=torch.float64)
    assert torch.allclose(4 * (p * weights * f).sum(), f.sum())
    if balanced:  # every class is drawn equally often
        per_class = torch.zeros(3, dtype=torch.float64).index_add_(0, y, sampler.probs)
        assert torch.allclose(per_class, torch.full((3,), 1 / 3, dtype=torch.float64))
    mc = torch.stack([(lambda i, w: (w.double() * f[i]).sum())(*sampler.draw()) for _ in range(4000)]).mean()
    assert float(mc) == pytest.approx(float(f.sum()), rel=0.03)


def test_batches_cover_unlabeled_data_and_carry_counts():
    y = torch.full((23,), -1)
    y[[0, 5, 9, 12]] = torch.tensor([0, 1, 2, 0])
    train = Split("train", torch.rand(23, 5), y)
    batches = list(labeled_unlabeled_batches(train, 8, None, True, torch.Generator().manual_seed(0), torch.device("cpu"), alpha=2.3))
    assert [len(b["x"]) for b in batches] == [8, 8, 3]  # one pass over the 19 unlabeled examples
    assert all(b["num_data"] == 19 and b["num_labeled"] == 4 and b["alpha"] == 2.3 and len(b["x_labeled"]) == 4 for b in batches)
    assert all(set(b["y_labeled"].tolist()) <= {0, 1, 2} for b in batches)
    only_labeled = Split("train", torch.rand(10, 5), torch.tensor([0, 1, 2] * 3 + [0]))
    batches = list(labeled_unlabeled_batches(only_labeled, 4, None, False, torch.Generator(), torch.device("cpu"), alpha=1.0))
    assert len(batches) == 3 and all("x" not in b for b in batches)
    assert all(torch.allclose(b["labeled_weights"], torch.full((4,), 10 / 4)) for b in batches)


def test_exact_importance_weights_are_unbiased_for_p_x():
    """With z_dim=1 the marginal p(x) = sum_y p(y) int p(z) p(x|y,z) dz is a 1-D integral: check the IW bound against it."""
    torch.manual_seed(0)
    m2 = M2(x_shape=[4], num_classes=3, z_dim=1, hidden=[6])
    last = m2.encoder.net.net[-1]
    with torch.no_grad():  # q(z|x,y) = N(0.2, 1.3^2), wider than the prior, so the weights have finite variance
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.2, math.log(math.expm1(1.3 - 1e-4))]))
    x = torch.bernoulli(torch.full((5, 4), 0.4))
    grid = torch.linspace(-8, 8, 4001).reshape(-1, 1, 1)  # (G, 1, 1) of z values, rectangle rule
    eye = torch.eye(3).unsqueeze(1).unsqueeze(0)  # (1, K, 1, K)
    with torch.no_grad():
        log_px_z = m2.x_dist(grid.unsqueeze(1).expand(-1, 3, 5, 1), eye).log_prob(x)  # (G, K, N)
        joint = log_px_z + dist.Normal(0.0, 1.0).log_prob(grid.unsqueeze(1)).squeeze(-1) + m2.log_prior[:, None]
        exact = torch.logsumexp(joint.reshape(-1, 5), 0) + math.log(16 / 4000)
    lw = m2.log_importance_weights(x, num_particles=3000)
    assert lw.shape == (3000, 5)
    assert torch.allclose(iw_log_likelihood(lw), exact, atol=0.02)
    assert (lw.mean(0) <= exact + 1e-4).all()  # each particle's log-weight is a lower bound in expectation


def test_train_step_changes_parameters_and_predicts(digits, tmp_path):
    data = prepare_data(digits, num_labels=50, seed=0)
    m2 = M2(M2.config_from_data(digits, z_dim=4, hidden=[32], class_prior="labeled"))
    before = {k: v.clone() for k, v in m2.state_dict().items()}
    m2.elbo_per_datum(data.valid)
    assert all(torch.equal(before[k], v) for k, v in m2.state_dict().items())  # evaluation changes nothing
    Trainer(TrainConfig(epochs=1, batch_size=200, patience=None)).fit(m2, data)
    changed = {k.split(".")[0] for k, v in m2.state_dict().items() if not torch.equal(before[k], v)}
    assert {"classifier", "encoder", "decoder"} <= changed
    proba = m2.predict_proba(data.test.x)
    assert proba.shape == (len(data.test), 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert np.array_equal(m2.predict(data.test.x), proba.argmax(1))
    assert m2.sample(6, generator=torch.Generator().manual_seed(0), y=torch.arange(6)).shape == (6, 1, 8, 8)
    save_model(m2, tmp_path)
    again = load(tmp_path)
    assert np.array_equal(again.predict_proba(data.test.x), proba)
    assert torch.equal(again.log_prior, m2.log_prior)


def test_gaussian_likelihood_and_feature_mask():
    m2 = small_m2(likelihood="gaussian")
    m2.feature_mask[3:] = 0  # masked features follow N(0, 1) whatever the networks say
    z, y = torch.randn(2, 2), torch.eye(K)[:2]
    d = m2.x_dist(z, y).base_dist
    assert torch.equal(d.loc[:, 3:], torch.zeros(2, 2)) and torch.equal(d.scale[:, 3:], torch.ones(2, 2))
    assert (d.scale[:, :3] > 0).all()
    x = torch.randn(4, 5)
    assert torch.equal(m2.y_logits(x), m2.y_logits(torch.cat([x[:, :3], torch.randn(4, 2)], 1)))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_unmasked_shortcut_equals_the_masked_path(likelihood, monkeypatch):
    """With every feature modelled the masking is skipped; the distribution and the classifier's input are what
    the masked path gives for an all-ones mask."""
    m2 = small_m2(likelihood=likelihood)
    z, y, x = torch.randn(3, 2), torch.eye(K)[:3], torch.rand(3, 5)
    assert m2.models_every_feature()
    fast = m2.x_dist(z, y).log_prob(x), m2.y_logits(x)
    monkeypatch.setattr(M2, "models_every_feature", lambda self: False)
    masked = m2.x_dist(z, y).log_prob(x), m2.y_logits(x)
    assert all(torch.equal(a, b) for a, b in zip(fast, masked))
    m2.feature_mask[0] = 0
    monkeypatch.undo()
    assert not m2.models_every_feature()


def test_the_unmasked_answer_follows_every_change_of_the_mask():
    """models_every_feature keeps its answer between steps, and a mask loaded, edited or moved is read again."""
    m2, masked = small_m2(), small_m2()
    masked.feature_mask[2] = 0
    assert m2.models_every_feature() and m2.models_every_feature()
    m2.load_state_dict(masked.state_dict())
    assert not m2.models_every_feature()
    m2.feature_mask.fill_(1)
    assert m2.models_every_feature()
    m2.feature_mask[4] = 0
    m2.to(torch.float64)  # a new mask tensor, same values
    assert not m2.models_every_feature()


def test_m2_learns_digits_with_50_labels(digits):
    """Short run on digits, 50 labels: far above chance after 2 epochs of 100 steps (the trainer's least number
    of steps an epoch for a classifier)."""
    data = prepare_data(digits, num_labels=50, seed=0)
    m2 = fit(M2(M2.config_from_data(digits, z_dim=8, hidden=[128])), data, TrainConfig(epochs=2, lr=3e-3, patience=None))
    assert (m2.predict(data.test.x) == data.test.y.numpy()).mean() > 0.6


@pytest.mark.numerical
def test_learned_class_prior_is_the_elbo_maximiser_over_the_unlabeled_examples():
    """``class_prior='learned'``: p(y) becomes the (add-one smoothed) mean of q(y | x) over the unlabeled examples,
    and there the gradient of the unlabeled ELBO (through Pyro) in the prior's logits is zero without the smoothing:
    ``d/dl sum_n E_q[log softmax(l)_y] = sum_n q_n - N pi``. Labeled examples do not enter the estimate."""
    torch.manual_seed(0)
    m2 = small_m2(class_prior="learned")
    x = torch.rand(40, 5)
    y = torch.full((40,), -1)
    y[:10] = 0  # ten labels, all of class 0: a prior fitted to them too would lean towards class 0
    train = Split("train", x, y)
    next(iter(m2.training_batches(train, 8, torch.Generator().manual_seed(0))))  # a pass over the data starts with the M-step
    q = m2.y_logits(x[10:]).softmax(-1).detach()
    assert torch.allclose(m2.log_prior.exp(), (q.sum(0) + 1) / (30 + K), atol=1e-6)
    logits = q.mean(0).log().requires_grad_()  # pi = mean q exactly: the maximiser
    m2.log_prior = logits.log_softmax(-1)
    loss = m2.elbo.differentiable_loss(m2.model, m2.guide, x=x[10:], num_data=30)
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max() < 1e-5
    off = torch.zeros(K, requires_grad=True)  # elsewhere the gradient is the closed form's
    m2.log_prior = off.log_softmax(-1)
    (grad,) = torch.autograd.grad(m2.elbo.differentiable_loss(m2.model, m2.guide, x=x[10:], num_data=30), off)
    assert_close_scaled(grad, -(q.sum(0) - 30 / K), rel=1e-5)


def test_other_class_priors_are_left_alone_by_a_pass():
    m2 = small_m2(class_prior="labeled")
    before = m2.log_prior.clone()
    next(iter(m2.training_batches(Split("train", torch.rand(20, 5), torch.full((20,), -1)), 8, torch.Generator())))
    assert torch.equal(m2.log_prior, before)
    with pytest.raises(ConfigError, match="option class_prior must be one of uniform, labeled, learned"):
        small_m2(class_prior="empirical")


# two M2 trainings of 3 epochs (8.5 s): slow; the learned prior's M-step and gradient are checked by default in
# test_learned_class_prior_is_the_elbo_maximiser_over_the_unlabeled_examples
@pytest.mark.slow
def test_learned_class_prior_finds_the_majority_class_and_stops_calling_it_rare():
    """Digits with one class at 90% and 3 labels of each class: a uniform p(y) makes M2 explain the majority's
    images with the rare classes (measured: 0.648 of them classified right after 3 epochs), a learned one gives
    the majority its share (pi_0 0.46) and classifies 0.760 of them right, with balanced accuracy 0.726 against 0.715."""
    digits90 = imbalanced_digits()
    data = prepare_data(digits90, num_labels=30, seed=0)
    y = data.test.y.numpy()
    recall = {}
    for prior in ("uniform", "learned"):
        pyro.set_rng_seed(0)
        m2 = fit(M2(M2.config_from_data(digits90, z_dim=8, hidden=[128], class_prior=prior)), data, TrainConfig(epochs=3, patience=None, seed=0))
        recall[prior] = (m2.predict(data.test.x)[y == 0] == 0).mean()
        assert (m2.log_prior.exp()[0] > 0.3) == (prior == "learned")
    assert recall["learned"] >= recall["uniform"] + 0.05


@pytest.mark.parametrize("name", list(ORACLES))
def test_style_posterior_is_q_z_given_x_and_the_most_likely_class(name):
    """``encode``'s code of M2 and the ADGM: q(z | x, y) at y = argmax q(y|x) (the ADGM's at a = E[a|x]), against
    every class's q(z | x, y) computed the plain way (benchmarks/oracle.py) and the best class picked per datum."""
    from benchmarks.oracle import encode
    from ppmodels.nets import broadcast_cat

    torch.manual_seed(1)
    model = ORACLES[name][0](likelihood="gaussian")
    x = 10 * torch.randn(40, 5)  # spread out, so that an untrained classifier's best class varies across the data
    loc, scale, y = model.style_posterior(x, batch_size=16)  # three batches, joined
    with torch.no_grad():
        features = model.features(x)
        inputs = (features,) if name == "m2" else (features, encode(model.a_encoder, features)[0])
        best = model.classifier.net.net(broadcast_cat(*inputs)).argmax(-1)
        every_loc, every_scale = encode(model.encoder, *inputs, torch.eye(K).unsqueeze(1))  # (K, N, z_dim)
    rows = torch.arange(len(x))
    assert len(set(y.tolist())) > 1  # the classes differ across the data, so picking the class per datum is tested
    np.testing.assert_array_equal(y, best.numpy())
    np.testing.assert_array_equal(y, model.predict(x))
    assert_close_scaled(loc, every_loc[best, rows], rel=1e-6)
    assert_close_scaled(scale, every_scale[best, rows], rel=1e-6)
    assert_close_scaled(model.style_means(x), loc, rel=1e-6)
