"""``lr_patience``: the learning rate is cut after every ``lr_patience`` epochs without a better validation score."""

import pytest

from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError
from ppmodels.infer import TrainConfig, Trainer
from ppmodels.models import M1M2, VAE


class ScriptedScores(Trainer):
    """A trainer whose validation ELBO follows a script, so that the epochs without improvement are known."""

    def __init__(self, scores, callbacks=(), **config):
        options = {"epochs": len(scores), "batch_size": 400, "lr": 0.01, "patience": None, "min_epoch_steps": 0,
                   "select_by": "valid_elbo", **config}
        super().__init__(TrainConfig(**options), list(callbacks))
        self.scores = list(scores)

    def _valid_elbo(self):
        return self.scores[self.state.epoch - 1]


class Rates:
    def __init__(self):
        self.lr = []

    def on_epoch_end(self, trainer, record):
        self.lr.append(record["lr"])


def rates(model, data, scores, **config):
    seen = Rates()
    ScriptedScores(scores, [seen], **config).fit(model, data)
    return seen.lr


def small_vae():
    return VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0)


def test_the_rate_halves_after_every_lr_patience_epochs_without_improvement(digits):
    scores = [-5, -6, -6, -6, -6, -4, -7, -7, -7, -7, -7, -7]  # better at epochs 1 and 6 only
    got = rates(small_vae(), prepare_data(digits), scores, lr_patience=2)
    # each record holds the rate its epoch trained at; the cut comes after the 2nd, 4th, ... epoch without improvement
    assert got == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025, 0.0025, 0.00125, 0.00125, 0.000625, 0.000625])


def test_the_rate_stops_at_a_hundredth_and_is_constant_without_lr_patience(digits):
    data = prepare_data(digits)
    got = rates(small_vae(), data, [-5, -6, -6, -6, -6], lr_patience=1, lr_factor=0.1)
    assert got == pytest.approx([0.01, 0.01, 0.001, 0.0001, 0.0001])
    assert rates(small_vae(), data, [-5, -6, -6, -6, -6]) == pytest.approx([0.01] * 5)


def test_a_new_stage_starts_again_at_the_configured_rate(digits):
    data = prepare_data(digits, num_labels=50)
    model = M1M2(x_shape=[1, 8, 8], num_classes=10, z1_dim=4, z2_dim=2, m1_hidden=[8], m2_hidden=[8], m1_epochs=4, seed=0)
    got = rates(model, data, [-5, -6, -6, -6, -5, -6], lr_patience=2)  # M1: epochs 1-4, M2: 5-6
    assert got == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.01, 0.01])


def test_a_resumed_run_continues_at_the_cut_rate(digits, tmp_path):
    data, scores = prepare_data(digits), [-5, -6, -6, -6, -6, -6]
    ScriptedScores(scores[:4], lr_patience=2).fit(small_vae(), data, run_dir=tmp_path)  # cut after epoch 3
    seen = Rates()
    ScriptedScores(scores, [seen], lr_patience=2).fit(small_vae(), data, run_dir=tmp_path, resume=True)
    assert seen.lr == pytest.approx([0.005, 0.0025])  # epoch 5 at the rate epoch 4 left, cut again after it


@pytest.mark.parametrize("field, value", [("lr_patience", 0), ("lr_factor", 1.0), ("lr_factor", 0.0)])
def test_bad_lr_schedule_is_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})
