"""``average_epochs``: what is scored, selected and kept is the average of the weights at the ends of the stage's
epochs (uniform over the first N, then each new epoch weighing 1/N), while training goes on from the last weights."""

from __future__ import annotations

import pytest
import torch

from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError
from ppmodels.infer import TrainConfig, Trainer, fit
from ppmodels.models import M1M2, VAE

EPOCHS = 5


class Weights:
    """Records the model's floating-point weights as ``on_epoch_end`` callbacks see them."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, record):
        self.seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()})


def run(digits, average_epochs: int, select_by: str = "last_epoch"):
    seen = Weights()
    model = fit(VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0), prepare_data(digits),
                TrainConfig(epochs=EPOCHS, batch_size=256, lr=0.01, patience=None, seed=3, select_by=select_by, average_epochs=average_epochs),
                callbacks=[seen])
    return model, seen.seen


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, float(b.abs().max())))


def test_the_weights_scored_and_kept_are_the_running_average_of_the_epoch_ends(digits):
    _, last = run(digits, 0)  # the same training, scored on its last weights: the trajectory to average
    model, seen = run(digits, 3)
    expected = []
    for n, weights in enumerate(last):  # uniform over the first 3 epoch ends, then 1/3 for each new one
        if not expected:
            expected.append(weights)
            continue
        share = max(1 / (n + 1), 1 / 3)
        expected.append({k: expected[-1][k] + share * (w - expected[-1][k]) for k, w in weights.items()})
    assert len(seen) == EPOCHS
    for epoch, (got, want) in enumerate(zip(seen, expected), 1):  # callbacks see the average, epoch by epoch
        for key in want:
            assert close(got[key], want[key]), (epoch, key)
    for key, value in model.state_dict().items():  # the kept model is the last average (select_by=last_epoch)
        if value.is_floating_point():
            assert close(value, expected[-1][key]), key
    assert not all(close(expected[-1][k], last[-1][k]) for k in last[-1])  # the average is not the last weights


def test_selection_compares_averages(digits):
    model, seen = run(digits, 2, select_by="valid_elbo")
    best = model.train_state_.best_epoch
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert close(value, seen[best - 1][key]), key


def m1m2_run(digits, **config):
    """M1+M2 (2 epochs of M1, then 3 of M2) and the weights its callbacks saw, epoch by epoch."""
    data = prepare_data(digits, num_labels=50, seed=0)
    model = M1M2(x_shape=[1, 8, 8], num_classes=10, z1_dim=4, z2_dim=2, m1_hidden=[8], m2_hidden=[8], m1_epochs=2, seed=0)
    seen = Weights()
    trainer = Trainer(TrainConfig(epochs=5, batch_size=256, lr=0.01, patience=None, min_epoch_steps=0, select_by="last_epoch", seed=3, **config),
                      callbacks=[seen])
    trainer.fit(model, data)
    return trainer, seen.seen


def same(a: dict, b: dict) -> bool:
    return all(close(a[key], b[key]) for key in b)


def test_a_new_stage_averages_only_its_own_epochs(digits):
    trainer, _ = m1m2_run(digits, average_epochs=10)
    assert trainer.state.stage == "m2" and trainer.state.averaged_epochs == 3


def test_average_stages_final_keeps_the_first_stage_on_its_last_weights(digits):
    _, last = m1m2_run(digits)
    trainer, final = m1m2_run(digits, average_epochs=10, average_stages="final")
    _, every = m1m2_run(digits, average_epochs=10)
    assert trainer.state.averaged_epochs == 3
    assert same(final[0], last[0]) and same(final[1], last[1])  # M1's epochs: the last weights, as without averaging
    assert not same(every[1], last[1])  # (with average_stages=all, M1's second epoch is scored on an average)
    assert same(final[2], last[2])  # M2's first epoch: its average is its one epoch end
    assert not same(final[4], last[4])  # then M2's weights are averaged


def test_average_epochs_must_not_be_negative():
    with pytest.raises(ConfigError, match="average_epochs must be at least 0"):
        TrainConfig(average_epochs=-1)
