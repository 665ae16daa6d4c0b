"""Resume restores everything a run depends on: weights, optimizer, RNG states, early-stopping state, metrics log."""

from __future__ import annotations

import json

import pytest
import torch

from ppmodels.data import prepare_data
from ppmodels.models import VAE
from ppmodels.runs import prepare_run_dir
from ppmodels.runs import MetricsLog

# lr 0.05, patience 3, seed 1: early stopping ends this run at epoch 13 (best epoch 10), measured
from ppmodels.infer import TrainConfig, Trainer

# lr 0.05, patience 3, seed 1: early stopping ends this run at epoch 13 (best epoch 10), measured
CONFIG = dict(epochs=200, batch_size=128, lr=0.05, patience=3, seed=1)


class Crash(Exception):
    pass


class CrashAt:
    """Stands for a kill: raises at the end of ``epoch``, after its metrics line and before its checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            raise Crash


def fit(data, run, crash_at=None, resume=False):
    torch.manual_seed(0 if not resume else 99)  # a resumed process starts from other random weights
    model = VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[16])
    trainer = Trainer(TrainConfig(**CONFIG), [MetricsLog(run)] + ([CrashAt(crash_at)] if crash_at else []))
    trainer.fit(model, data, run_dir=run, resume=resume)
    return model, trainer


def records(run):
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"} for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("crash_at", [2, 12])
def test_resume_restores_early_stopping_and_the_metrics_log(digits, tmp_path, crash_at):
    data = prepare_data(digits)
    straight, reference = fit(data, prepare_run_dir(tmp_path / "straight"))
    assert reference.state.stopped_early and reference.state.epoch == 13

    run = prepare_run_dir(tmp_path / "crashed")
    with pytest.raises(Crash):
        fit(data, run, crash_at=crash_at)
    assert [r["epoch"] for r in records(run)] == list(range(1, crash_at + 1))  # one line past the checkpoint
    resumed, trainer = fit(data, run, resume=True)

    assert trainer.state.epoch == 13 and trainer.state.best_epoch == 10 and trainer.state.stopped_early
    assert trainer.state.epochs_without_improvement == reference.state.epochs_without_improvement == 3
    assert records(run) == records(tmp_path / "straight")
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(digits, tmp_path):
    data = prepare_data(digits)
    run = prepare_run_dir(tmp_path / "run")
    with pytest.raises(Crash):
        fit(data, run, crash_at=3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "step": 4')  # the kill landed mid-write
    (run / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"half a checkpoint")
    prepare_run_dir(run, resume=True)
    assert not (run / "checkpoints" / ".last.pt.abc.tmp").exists()
    _, trainer = fit(data, run, resume=True)
    assert [r["epoch"] for r in records(run)] == list(range(1, trainer.state.epoch + 1))


def small_model(name, seed=0):
    from ppmodels.models import M2, M1M2

    torch.manual_seed(seed)
    if name == "m2":
        return M2(x_shape=[1, 8, 8], num_classes=10, z_dim=3, hidden=[16], class_prior="labeled")
    return M1M2(x_shape=[1, 8, 8], num_classes=10, z1_dim=6, z2_dim=3, m1_hidden=[32], m2_hidden=[16], m1_epochs=2)


@pytest.mark.parametrize("name, crash_at", [("m2", 2), ("m1m2", 2), ("m1m2", 4)])
def test_resume_is_exact_for_semi_supervised_models(digits, tmp_path, name, crash_at):
    """M2 (labeled and unlabeled batches) and M1+M2 (two stages; killed in the M1 stage and in the M2 stage)."""
    data = prepare_data(digits, num_labels=50, seed=0)
    config = TrainConfig(epochs=5, batch_size=200, patience=None, seed=2)
    straight = small_model(name)
    Trainer(config, [MetricsLog(prepare_run_dir(tmp_path / "straight"))]).fit(straight, data, run_dir=tmp_path / "straight")
    run = prepare_run_dir(tmp_path / "crashed")
    with pytest.raises(Crash):
        Trainer(config, [MetricsLog(run), CrashAt(crash_at)]).fit(small_model(name), data, run_dir=run)
    resumed = small_model(name, seed=99)  # a fresh process starts from other random weights
    Trainer(config, [MetricsLog(run)]).fit(resumed, data, run_dir=run, resume=True)
    assert records(run) == records(tmp_path / "straight")
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


# m1_epochs fixed: by default M1+M2 splits its epochs in half, and this test changes the epoch count on resume
TINY = {"hidden": [16], "z_dim": 2, "z1_dim": 4, "z2_dim": 2, "m1_hidden": [16], "m2_hidden": [8], "num_components": 3, "m1_epochs": 1}


@pytest.mark.parametrize("name", sorted(__import__("ppmodels").list_models()))
def test_every_model_resumes_exactly(tmp_path, name):
    """Every registered model: 2 epochs, then resumed to 4, equals 4 epochs straight (weights bitwise, metrics)."""
    import dataclasses

    import ppmodels
    from safetensors.torch import load_file

    fields = {f.name for f in dataclasses.fields(ppmodels.get_model_class(name).Config)}
    options = {k: v for k, v in TINY.items() if k in fields}

    def train(out, epochs, resume=False):
        config = TrainConfig(epochs=epochs, batch_size=256, patience=None, seed=4)
        return ppmodels.train(name, "digits", out, labels=50, train_config=None if resume else config, model_options=options,
                              resume=resume, progress=False, sample_every=0)

    train(tmp_path / "straight", 4)
    train(tmp_path / "resumed", 2)
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    saved["train"]["epochs"] = 4
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(saved))
    train(tmp_path / "resumed", 4, resume=True)
    assert records(tmp_path / "resumed") == records(tmp_path / "straight")
    straight, resumed = (load_file(tmp_path / r / "model.safetensors") for r in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_diagnose_reads_the_metrics_of_a_killed_run(tmp_path):
    from ppmodels.commands.diagnose import read_metrics
    from ppmodels.errors import RunError

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "st')
    assert read_metrics(tmp_path) == [{"epoch": 1}, {"epoch": 2}]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"ep\n{"epoch": 3}\n')
    with pytest.raises(RunError, match="not valid JSON lines"):
        read_metrics(tmp_path)
