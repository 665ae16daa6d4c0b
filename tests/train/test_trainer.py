import json
import math

import pytest
import torch

from ppmodels import nets
from ppmodels.data import prepare_data
from ppmodels.errors import ConfigError, TrainingError
from ppmodels.models import M2, VAE
from ppmodels.runs import prepare_run_dir
from ppmodels.runs import BestCheckpoint, MetricsLog
from ppmodels.infer import TrainConfig, Trainer
from ppmodels.infer.trainer import CLASSIFIER_EPOCH_STEPS


def small_vae():
    return VAE(x_shape=[1, 8, 8], z_dim=2, hidden=[16])


class Recorder:
    def __init__(self):
        self.events = []

    def on_train_start(self, trainer):
        self.events.append("start")

    def on_epoch_end(self, trainer, record):
        self.events.append(record)

    def on_train_end(self, trainer):
        self.events.append("end")


def test_callbacks_and_records(digits):
    rec = Recorder()
    Trainer(TrainConfig(epochs=3, batch_size=256, patience=None), [rec]).fit(small_vae(), prepare_data(digits))
    assert rec.events[0] == "start" and rec.events[-1] == "end"
    records = rec.events[1:-1]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["train_elbo"]) and math.isfinite(r["valid_elbo"]) for r in records)


def test_early_stopping_restores_best_weights(digits):
    data = prepare_data(digits)
    model = small_vae()
    trainer = Trainer(TrainConfig(epochs=200, batch_size=256, lr=0.05, patience=2))
    trainer.fit(model, data)
    assert trainer.state.stopped_early and trainer.state.epoch < 200
    assert trainer.state.epoch - trainer.state.best_epoch == 2
    assert all(torch.equal(trainer.best_weights[k], v) for k, v in model.state_dict().items())


def test_metrics_log_and_checkpoints_are_written(digits, tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    Trainer(TrainConfig(epochs=2, batch_size=256, patience=None), [MetricsLog(run), BestCheckpoint(run)]).fit(small_vae(), prepare_data(digits), run_dir=run)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2]
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()


def test_nonfinite_loss_stops_with_a_clear_message(digits, tmp_path):
    data = prepare_data(digits)
    model = small_vae()
    run = prepare_run_dir(tmp_path / "run")
    Trainer(TrainConfig(epochs=1, batch_size=256, patience=None)).fit(model, data, run_dir=run)
    good = (run / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        model.decoder.net.net[0].weight.fill_(float("nan"))
    # one line from the guard; Pyro's own NaN warnings are silenced (filterwarnings=error would fail on them)
    with pytest.raises(TrainingError, match=r"non-finite at epoch 1, step 1 .*model site 'x'.*last good checkpoint"):
        Trainer(TrainConfig(epochs=2, batch_size=256, patience=None)).fit(model, data, run_dir=run)
    assert (run / "checkpoints" / "last.pt").read_bytes() == good


def test_skip_nonfinite_counts_skipped_batches(digits):
    data = prepare_data(digits)
    model = small_vae()
    calls = {"n": 0}
    original = model.loss

    def flaky(batch):
        calls["n"] += 1
        loss = original(batch)
        return loss * float("nan") if calls["n"] == 2 else loss

    model.loss = flaky
    trainer = Trainer(TrainConfig(epochs=1, batch_size=256, patience=None, skip_nonfinite=True))
    trainer.fit(model, data)
    assert trainer.state.skipped_batches == 1


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("lr", -1.0), ("patience", 0), ("min_epoch_steps", -1),
                                          ("precision", "fp16")])
def test_bad_train_config(field, value):
    with pytest.raises(ConfigError):
        TrainConfig(**{field: value})


def steps_per_epoch(model, data, **config):
    rec = Recorder()
    Trainer(TrainConfig(epochs=2, batch_size=400, patience=None, **config), [rec]).fit(model, data)
    steps = [r["step"] for r in rec.events[1:-1]]
    return [steps[0], steps[1] - steps[0]]


def test_an_epoch_chains_passes_until_min_epoch_steps(digits):
    """digits' 1257 training images in batches of 400 are 4 steps a pass: a VAE takes one pass an epoch unless asked
    for more; a model that trains a classifier takes at least CLASSIFIER_EPOCH_STEPS (whole passes: 100 -> 100)."""
    data = prepare_data(digits, num_labels=50, seed=0)
    assert steps_per_epoch(small_vae(), data) == [4, 4]
    assert steps_per_epoch(small_vae(), data, min_epoch_steps=10) == [12, 12]  # three whole passes
    assert steps_per_epoch(small_vae(), data, min_epoch_steps=0) == [4, 4]
    m2 = M2(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0)
    passes = math.ceil(CLASSIFIER_EPOCH_STEPS / 4)  # 1207 unlabeled images in batches of 400: 4 steps a pass
    assert steps_per_epoch(m2, data) == [4 * passes, 4 * passes]
    assert steps_per_epoch(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[8], seed=0), data, min_epoch_steps=0) == [4, 4]


def test_bf16_training_computes_only_the_steps_in_bfloat16(digits):
    """``precision="bf16"``: the loss of every training step runs with the networks in bfloat16, validation (the ELBO
    and the accuracy that selects the weights) in float32; the weights stay float32 and M2 learns as in float32."""
    data = prepare_data(digits, num_labels=50, seed=0, valid_labels=10)  # 10 labels choose: the accuracy is computed
    seen = {"loss": set(), "elbo_per_datum": set(), "predict_proba": set()}
    records = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = M2(x_shape=[1, 8, 8], z_dim=4, hidden=[32], likelihood="binomial:16")
        for method in seen:
            def watched(*args, _method=getattr(model, method), _name=method, **kwargs):
                seen[_name].add(nets.compute_dtype())
                return _method(*args, **kwargs)
            setattr(model, method, watched)
        rec = Recorder()
        Trainer(TrainConfig(epochs=3, patience=None, precision=name), [rec]).fit(model, data)
        records[name] = rec.events[-2]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {"loss": {None, torch.bfloat16}, "elbo_per_datum": {None}, "predict_proba": {None}}
    bf16, fp32 = records["bf16"], records["fp32"]
    assert bf16["valid_elbo"] != fp32["valid_elbo"]  # the steps did run in another precision
    assert abs(bf16["valid_elbo"] - fp32["valid_elbo"]) < 0.05 * abs(fp32["valid_elbo"])
    assert abs(bf16["valid_accuracy"] - fp32["valid_accuracy"]) < 0.1
