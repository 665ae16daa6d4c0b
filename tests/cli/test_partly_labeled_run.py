"""A run on a partly labeled file trains on every given label, so its test split holds none: training, evaluate and
diagnose say so in one line and how to score the run, and print no accuracy; runs written before (their config.json
records no ``test_labels``) are split as they were."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ppmodels import diagnose
from ppmodels_cli.main import app

runner = CliRunner()
N, K = 150, 3


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def files(tmp_path):
    """``part.csv``: 10 labels a class, the other rows' label cells empty; ``truth.csv``: the same rows, every label."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % K
    x = rng.normal(size=(N, 4)) + 3 * y[:, None]
    given = [str(c) if i < 10 * K else "" for i, c in enumerate(y)]
    for name, cells in (("part.csv", given), ("truth.csv", y.astype(str))):
        rows = [",".join(f"{v:.4f}" for v in row) + f",{cell}" for row, cell in zip(x, cells)]
        (tmp_path / name).write_text("\n".join(["a,b,c,d,label", *rows]) + "\n")
    return f"csv:{tmp_path / 'part.csv'}?label=label", f"csv:{tmp_path / 'truth.csv'}?label=label"


def train(spec, run, *extra):
    result = invoke("train", "m2", "--data", spec, "--out", run, "--epochs", 1, "--hidden", "8", "--z-dim", 2, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    return result


def test_every_label_trains_and_no_accuracy_is_made_up(tmp_path, files):
    part, truth = files
    run = tmp_path / "m2"
    result = train(part, run)
    how = f"`ppmodels evaluate {run} --data LABELED_FILE --split all`"
    summary = json.loads((run / "summary.json").read_text())
    assert "test_accuracy" not in result.output and "test_accuracy" not in summary and "test_elbo" in summary
    assert summary["budget_labels"] == 30 and summary["label_counts"]["labeled_per_class"] == [10, 10, 10]  # too few to hold any out: the ELBO chooses
    assert "every label of the file trained" in summary["test_note"] and how in summary["test_note"]
    assert summary["test_note"] in result.output.splitlines()
    assert json.loads((run / "config.json").read_text())["data"]["test_labels"] == 0.0

    result = invoke("evaluate", run, "--iw-samples", 0)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "evaluation.json").read_text())
    assert not {"accuracy", "balanced_accuracy", "num_labeled", "baselines"} & set(saved) and "accuracy" not in result.output.replace("no accuracy", "")
    assert how in saved["note"] and saved["note"] in result.output.splitlines()

    result = invoke("evaluate", run, "--data", truth, "--split", "all", "--iw-samples", 0, "--no-baselines", "--out", tmp_path / "truth.json")
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "truth.json").read_text())
    assert scored["num_labeled"] == N and 0 <= scored["accuracy"] <= 1 and "note" not in scored

    checked = diagnose(run, num_data=10, particles=21, report=False, quality=False)
    assert "calibration" not in checked and how in checked["verdicts"]["calibration"]


def test_test_labels_option_gives_a_labeled_test_split(tmp_path, files):
    part, _ = files
    run = tmp_path / "m2"
    result = train(part + "&test_labels=0.2", run)
    summary = json.loads((run / "summary.json").read_text())
    assert "test_note" not in summary and summary["budget_labels"] == 24 and "test_accuracy: " in result.output
    assert json.loads((run / "config.json").read_text())["data"]["test_labels"] == 0.2
    saved = invoke("evaluate", run, "--iw-samples", 0, "--no-baselines")
    assert saved.exit_code == 0 and json.loads((run / "evaluation.json").read_text())["num_labeled"] == 6  # 2 of each class's 10


def test_runs_written_before_keep_their_split(tmp_path, files):
    """A run whose config.json records no ``test_labels`` gave 2 of each class's 10 labels to test: evaluate scores
    them, and a --resume trains on the other 8 as the run did."""
    part, _ = files
    run = tmp_path / "m2"
    train(part, run)
    config = json.loads((run / "config.json").read_text())
    del config["data"]["test_labels"]
    config["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(config))
    result = invoke("evaluate", run, "--iw-samples", 0, "--no-baselines")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "evaluation.json").read_text())["num_labeled"] == 6
    result = invoke("train", "m2", "--out", run, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["budget_labels"] == 24 and summary["epochs"] == 2
    assert "test_accuracy" in summary
