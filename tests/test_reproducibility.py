"""The same seed gives the same numbers on the same machine; summary.json records the seed and library versions."""

from __future__ import annotations

import json

import torch

import ppmodels
from ppmodels.infer import TrainConfig

OPTIONS = {"hidden": [16], "z_dim": 2}
NUMBERS = ("train_elbo", "valid_elbo", "test_elbo", "epochs", "best_epoch", "test_accuracy", "test_balanced_accuracy")


def short_run(out, model="m1", seed=3):
    torch.manual_seed(1234 + len(str(out)))  # whatever ran before in the process must not matter
    _, summary = ppmodels.train(model, "digits", out, labels=50, train_config=TrainConfig(epochs=3, batch_size=128, seed=seed),
                                model_options=OPTIONS, progress=False, sample_every=0)
    return summary


def weights(run):
    return (run / "model.safetensors").read_bytes()


def metrics(run):
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"} for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_same_seed_same_numbers(tmp_path):
    first, second = short_run(tmp_path / "a"), short_run(tmp_path / "bb")
    assert {k: first[k] for k in NUMBERS} == {k: second[k] for k in NUMBERS}
    assert weights(tmp_path / "a") == weights(tmp_path / "bb")
    assert metrics(tmp_path / "a") == metrics(tmp_path / "bb")


def test_another_seed_other_numbers(tmp_path):
    first, other = short_run(tmp_path / "a"), short_run(tmp_path / "b", seed=4)
    assert first["train_elbo"] != other["train_elbo"] and weights(tmp_path / "a") != weights(tmp_path / "b")


def test_summary_records_the_seed_and_versions(tmp_path):
    summary = short_run(tmp_path / "run", seed=11)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["seed"] == saved["seed"] == 11
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["seed"] == 11
    versions = saved["versions"]
    assert versions["ppmodels"] == ppmodels.__version__ and versions["torch"] == torch.__version__
    assert {"python", "pyro", "numpy", "scikit-learn"} <= versions.keys()


def test_resumed_summary_keeps_the_seed(tmp_path, model="vae"):
    out = tmp_path / "run"
    ppmodels.train(model, "digits", out, train_config=TrainConfig(epochs=1, batch_size=256, seed=5), model_options=OPTIONS, progress=False)
    _, summary = ppmodels.train(model, "digits", out, resume=True, progress=False)
    assert summary["seed"] == 5
