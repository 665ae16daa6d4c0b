"""Resume ends exactly where an uninterrupted run ends: weights, early-stopping state and metrics log.

The one place for the resume-equals-straight-run check, over every registered model, across the two stages of
M1+M2 and through an early-stopping run. A run is "killed" by :class:`CrashAt` at the end of an epoch, after its
metrics line and before its checkpoint (the worst moment), then resumed into a model built from other random
weights, as a fresh process would. ``tests/cli/test_resume_after_kill.py`` does the same with SIGKILL through the
CLI, in separate processes.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import ppmodels
from ppmodels.data import load_dataset, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.runs import MetricsLog, prepare_run_dir

# tiny networks for every model; M1+M2 gets two M1 epochs so that a crash can land inside either stage
TINY = {"hidden": [16], "z_dim": 2, "z1_dim": 4, "z2_dim": 2, "m1_hidden": [16], "m2_hidden": [8], "num_components": 3, "m1_epochs": 2, "a_dim": 2}
SHORT = dict(epochs=4, batch_size=256, patience=None, seed=4)
# a fast learning rate and short patience: the VAE stops early within a few epochs, so that kills cross that state
EARLY = dict(epochs=200, batch_size=128, lr=0.05, patience=3, seed=1)
# the stage's weight average (average_epochs) is part of what a resumed run must carry on with
AVERAGED = dict(SHORT, average_epochs=2)
CONFIGS = {"short": SHORT, "early": EARLY, "averaged": AVERAGED}
AFTER_BEST = "after_best"  # a crash in the patience window: the epoch after the straight run's best epoch

CASES = [(name, "short", 2) for name in sorted(ppmodels.list_models())] + [
    ("m1m2", "short", 3),  # resumes from the last M1 checkpoint into stage m2
    ("m1m2", "short", 4),  # resumes inside stage m2
    ("vae", "early", 2),
    ("vae", "early", AFTER_BEST),
    ("vae", "averaged", 2),
    ("m1m2", "averaged", 3),  # the M1 stage's average ends, M2's starts after the resume
]


class Crash(Exception):
    pass


class CrashAt:
    """Stands for a kill: raises at the end of ``epoch``, after its metrics line and before its checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        if record["epoch"] == self.epoch:
            raise Crash


@pytest.fixture(scope="module")
def data():
    return prepare_data(load_dataset("digits"), num_labels=50, seed=0)


def build(name: str, seed: int):
    cls = ppmodels.get_model_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    torch.manual_seed(seed)
    return cls(cls.config_from_data(load_dataset("digits"), **{k: v for k, v in TINY.items() if k in fields}))


def train(data, name: str, config: dict, run, crash_at: int | None = None, resume: bool = False):
    """A fresh model (other random weights when resuming) trained into ``run``; returns the fitted model."""
    model = build(name, seed=99 if resume else 0)
    callbacks = [MetricsLog(run)] + ([CrashAt(crash_at)] if crash_at else [])
    return fit(model, data, TrainConfig(**config), callbacks=callbacks, run_dir=run, resume=resume)


def records(run):
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"} for line in (run / "metrics.jsonl").read_text().splitlines()]


def fitted_state(model) -> dict[str, torch.Tensor]:
    return {**model.state_dict(), **{f"extra:{k}": v for k, v in model.extra_tensors().items()}}


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The uninterrupted run of each (model, config), trained once per module: its model and metrics records."""
    cache = {}

    def get(name: str, kind: str):
        if (name, kind) not in cache:
            run = prepare_run_dir(tmp_path_factory.mktemp(f"{name}_{kind}") / "straight")
            cache[name, kind] = train(data, name, CONFIGS[kind], run), records(run)
        return cache[name, kind]

    return get


# the ADGM is M2's resume path with one more latent (17 s here against M2's 11 s): M2 covers it in the default suite
SLOW_CASES = {("adgm", "short", 2)}


@pytest.mark.parametrize("name, kind, crash_at", [
    pytest.param(*case, id="{}-{}-crash{}".format(*case), marks=[pytest.mark.slow] if case in SLOW_CASES else []) for case in CASES])
def test_resume_ends_where_a_straight_run_ends(data, straight, tmp_path, name, kind, crash_at):
    reference, reference_records = straight(name, kind)
    config = CONFIGS[kind]
    if kind == "early":  # the straight run really stops early, so the kills below cross its early-stopping state
        state = reference.train_state_
        assert state.stopped_early and state.epoch - state.best_epoch == config["patience"] and state.epoch < config["epochs"]
    if crash_at == AFTER_BEST:
        crash_at = reference.train_state_.best_epoch + 1
    assert 1 <= crash_at <= len(reference_records)

    run = prepare_run_dir(tmp_path / "crashed")
    with pytest.raises(Crash):
        train(data, name, config, run, crash_at=crash_at)
    assert [r["epoch"] for r in records(run)] == list(range(1, crash_at + 1))  # one line past the checkpoint
    resumed = train(data, name, config, run, resume=True)

    assert records(run) == reference_records
    assert dataclasses.asdict(resumed.train_state_) | {"elapsed": 0} == dataclasses.asdict(reference.train_state_) | {"elapsed": 0}
    expected, got = fitted_state(reference), fitted_state(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    if name == "m1m2":
        assert resumed.stage_ == "m2" and resumed.active_dims == reference.active_dims


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(data, tmp_path):
    run = prepare_run_dir(tmp_path / "run")
    with pytest.raises(Crash):
        train(data, "vae", SHORT, run, crash_at=3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "step": 4')  # the kill landed mid-write
    (run / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"half a checkpoint")
    prepare_run_dir(run, resume=True)
    assert not (run / "checkpoints" / ".last.pt.abc.tmp").exists()
    train(data, "vae", SHORT, run, resume=True)
    assert [r["epoch"] for r in records(run)] == [1, 2, 3, 4]


def test_diagnose_reads_the_metrics_of_a_killed_run(tmp_path):
    from ppmodels.commands.diagnose import read_metrics
    from ppmodels.errors import RunError

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "st')
    assert read_metrics(tmp_path) == [{"epoch": 1}, {"epoch": 2}]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"ep\n{"epoch": 3}\n')
    with pytest.raises(RunError, match="not valid JSON lines"):
        read_metrics(tmp_path)
