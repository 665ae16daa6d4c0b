import json

import pytest
from typer.testing import CliRunner

from ppmodels_cli.main import app
from ppmodels.runs import save_model

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("model, options", [
    ("m2", ["--hidden", "32", "--z-dim", "4", "--epochs", "3"]),
    ("m1m2", ["--epochs", "4", "--set", "z1_dim=6", "--set", "z2_dim=3", "--set", "m1_hidden=[32]", "--set", "m2_hidden=[16]"]),
])
def test_train_then_evaluate_on_digits(tmp_path, model, options):
    run = tmp_path / model
    result = invoke("train", model, "--data", "digits", "--labels", 50, "--out", run, "--batch-size", 200, "--quiet", *options)
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    if model == "m1m2":
        assert [r["stage"] for r in records] == ["m1", "m1", "m2", "m2"]
    result = invoke("evaluate", run, "--iw-samples", 3)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "evaluation.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "per_class_accuracy", "confusion_matrix", "elbo", "iw_log_likelihood", "num_examples", "split"):
        assert key in saved, key
    assert saved["split"] == "test" and saved["num_examples"] == 360
    assert f"accuracy: {saved['accuracy']:.4f}" in result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(saved["accuracy"])
    result = invoke("evaluate", run, "--split", "valid", "--iw-samples", 0, "--out", tmp_path / "valid.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "valid.json").read_text())["split"] == "valid"


def test_evaluate_warns_loudly_on_a_collapsed_classifier(tmp_path):
    import torch

    from ppmodels import load

    run = tmp_path / "m2"
    assert invoke("train", "m2", "--labels", 10, "--out", run, "--epochs", 1, "--hidden", "8", "--z-dim", 2, "--quiet").exit_code == 0
    model = load(run)
    with torch.no_grad():  # q(y|x) now says class 3 for every image
        model.classifier.net.net[-1].weight.zero_()
        model.classifier.net.net[-1].bias.copy_(torch.arange(10) == 3)
    save_model(model, run)
    result = invoke("evaluate", run, "--iw-samples", 0)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "evaluation.json").read_text())
    assert any("collapse onto class 3" in w for w in saved["warnings"]) and any("majority class" in w for w in saved["warnings"])
    assert [f"WARNING: {w}" for w in saved["warnings"]] == [l for l in result.stderr.splitlines() if l.startswith("WARNING")]


@pytest.mark.parametrize("args, message", [
    (["--split", "train"], "unknown split"),
    (["--data", "imagenet"], "unknown data spec"),
])
def test_evaluate_bad_input(tmp_path, args, message):
    assert invoke("train", "m2", "--labels", 10, "--out", tmp_path / "r", "--epochs", 1, "--hidden", "8", "--z-dim", 2, "--quiet").exit_code == 0
    result = invoke("evaluate", tmp_path / "r", *args)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_evaluate_missing_run(tmp_path):
    result = invoke("evaluate", tmp_path / "nope")
    assert result.exit_code == 2 and "does not exist" in result.stderr
