"""The NaN guard: a non-finite loss, gradient or weight stops training with a message saying where, which term,
and which checkpoint is still good; nothing good is overwritten; ``skip_nonfinite`` skips and counts bad batches."""

from __future__ import annotations

import json

import pytest
import torch

from ppmodels.data import prepare_data
from ppmodels.errors import TrainingError
from ppmodels.models import VAE
from ppmodels.runs import prepare_run_dir
from ppmodels.runs import BestCheckpoint, MetricsLog
from ppmodels.infer import TrainConfig, Trainer


def small_vae():
    torch.manual_seed(0)
    return VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[16])


def poison(model, step: int, how: str):
    """Make the loss of the ``step``-th batch (1-based) non-finite, or its gradient only (the loss stays finite)."""
    original, calls = model.loss, {"n": 0}

    def loss(batch):
        calls["n"] += 1
        value = original(batch)
        if calls["n"] != step:
            return value
        if how == "loss":
            return value * float("nan")
        w = model.decoder.net.net[0].weight
        return value + (w - w.detach()).abs().sqrt().sum()  # adds 0, but d sqrt(|u|)/du at u = 0 is not finite

    model.loss = loss


class FillNaN:
    """Sets the first layer of the encoder or decoder to NaN once training (re)starts, after the checkpoint is restored."""

    def __init__(self, net: str):
        self.net = net

    def on_train_start(self, trainer):
        with torch.no_grad():
            getattr(trainer.model, self.net).net.net[0].weight.fill_(float("nan"))


def trained_run(digits, tmp_path, epochs=2):
    """A run folder with two good epochs (checkpoints written), and its model."""
    data, model, run = prepare_data(digits), small_vae(), prepare_run_dir(tmp_path / "run")
    Trainer(TrainConfig(epochs=epochs, batch_size=256, patience=None), [MetricsLog(run), BestCheckpoint(run)]).fit(model, data, run_dir=run)
    return data, model, run


def snapshot(run):
    return {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} | {"metrics": (run / "metrics.jsonl").read_bytes()}


@pytest.mark.parametrize("how, message", [
    ("loss", r"the loss became non-finite at epoch 3, step 11 \(terms: .*\)"),
    ("gradient", r"the gradient became non-finite at epoch 3, step 11 \(non-finite gradient of decoder\.net\.net\.0\.weight, "
                 r"while the loss was finite \(-?[0-9.e+]+\)\)"),
])
def test_nonfinite_stops_naming_where_what_and_the_good_checkpoint(digits, tmp_path, how, message):
    data, model, run = trained_run(digits, tmp_path)  # 2 epochs of 5 batches: step 10 done
    before = snapshot(run)
    poison(model, step=1, how=how)
    trainer = Trainer(TrainConfig(epochs=4, batch_size=256, patience=None), [MetricsLog(run), BestCheckpoint(run)])
    with pytest.raises(TrainingError, match=message) as info:
        trainer.fit(model, data, run_dir=run, resume=True)
    assert f"the last good checkpoint is {run / 'checkpoints' / 'last.pt'} (epoch 2), left untouched" in str(info.value)
    assert "\n" not in str(info.value)
    after = snapshot(run)
    assert after == before, "a good checkpoint or the metrics log was changed"


def test_nonfinite_loss_names_the_sample_site(digits, tmp_path):
    data, model, run = trained_run(digits, tmp_path, epochs=1)
    # the guard says it in one line: Pyro's own NaN warnings are silenced (filterwarnings=error would fail on them)
    with pytest.raises(TrainingError, match=r"terms: model site 'x'"):
        Trainer(TrainConfig(epochs=2, batch_size=256, patience=None), [FillNaN("decoder")]).fit(model, data, run_dir=run, resume=True)


def test_weights_that_turn_nonfinite_are_never_checkpointed(digits, tmp_path):
    data, model, run = trained_run(digits, tmp_path)
    before = snapshot(run)

    class Corrupt:
        def on_step_end(self, trainer, loss):
            if trainer.state.step == 15:  # the last step of epoch 3
                with torch.no_grad():
                    trainer.model.encoder.net.net[0].bias.fill_(float("inf"))

    with pytest.raises(TrainingError, match=r"parameters encoder\.net\.net\.0\.bias became non-finite in epoch 3; the last good checkpoint"):
        Trainer(TrainConfig(epochs=4, batch_size=256, patience=None), [Corrupt()]).fit(model, data, run_dir=run, resume=True)
    assert snapshot(run) == before


@pytest.mark.parametrize("how", ["loss", "gradient"])
def test_skip_nonfinite_skips_and_counts_in_the_metrics_log(digits, tmp_path, how):
    data, model, run = prepare_data(digits), small_vae(), prepare_run_dir(tmp_path / "run")
    poison(model, step=7, how=how)  # the second batch of epoch 2
    trainer = Trainer(TrainConfig(epochs=3, batch_size=256, patience=None, skip_nonfinite=True), [MetricsLog(run)])
    trainer.fit(model, data, run_dir=run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["skipped_batches"] for line in lines] == [0, 1, 0]
    assert [line["step"] for line in lines] == [5, 9, 14] and trainer.state.skipped_batches == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_every_batch_nonfinite_stops_even_when_skipping(digits):
    model = small_vae()
    model.loss = lambda batch: torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(TrainingError, match="every batch of epoch 1 was non-finite"):
        Trainer(TrainConfig(epochs=2, batch_size=256, skip_nonfinite=True)).fit(model, prepare_data(digits))


def test_nonfinite_encoder_output_stops_cleanly_under_argument_validation(digits, tmp_path):
    """With validation on, Normal(loc=NaN) raises ValueError inside the loss; the guard reports it like a NaN loss."""
    data, model, run = trained_run(digits, tmp_path, epochs=1)
    with pytest.raises(TrainingError, match=r"the loss became non-finite at epoch 2, step 6 \(a distribution got non-finite parameters: "
                                            r"Expected parameter loc .*\); the last good checkpoint"):
        Trainer(TrainConfig(epochs=2, batch_size=256, patience=None), [FillNaN("encoder")]).fit(model, data, run_dir=run, resume=True)
