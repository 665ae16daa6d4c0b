"""Class imbalance: on digits where one class holds 90% of the examples, M1 with a plain classifier collapses onto
that class (accuracy 0.9, balanced accuracy near 0.1) and the warnings fire; class-balanced classifier weights, a
per-class cap and class-balanced labels each lift balanced accuracy.

The numbers behind the thresholds (measured here, seed 0, 20 epochs): collapsed 0.150 balanced accuracy;
``class_weight=balanced`` 0.520; ``--labels 90`` 0.451; ``--max-per-class 14`` 0.428.
"""

from __future__ import annotations

import json

import numpy as np
import pyro
import pytest
from typer.testing import CliRunner

from benchmarks.imbalanced import imbalanced_digits
from ppmodels.metrics import balanced_accuracy, classification_report
from ppmodels.data import Dataset, load_dataset, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import M1
from ppmodels_cli.main import app

MAJORITY = 0
OPTIONS = dict(z_dim=8, hidden=[64], classifier="logistic", C=1.0)  # a plain classifier, as a student would pick
EPOCHS = 20


@pytest.fixture(scope="module")
def digits90() -> Dataset:
    return imbalanced_digits(likelihood="bernoulli")  # the figures in this file's docstring were measured so


def fit_m1(data, **options) -> M1:
    pyro.set_rng_seed(0)
    model = M1(x_shape=[1, 8, 8], **{**OPTIONS, **options})
    return fit(model, data, TrainConfig(epochs=EPOCHS, batch_size=128, patience=None, seed=0))


def test_the_data_is_imbalanced(digits90):
    shares = np.bincount(digits90.y) / len(digits90.y)
    assert shares[MAJORITY] == pytest.approx(0.9, abs=0.002)
    assert np.bincount(digits90.y[digits90.splits["test"]]).tolist() == [321] + [4] * 9


@pytest.fixture(scope="module")
def collapsed(digits90):
    data = prepare_data(digits90)
    model = fit_m1(data)
    return data, model, balanced_accuracy(data.test.y, model.predict(data.test.x))


def test_a_collapsed_classifier_triggers_the_warnings(collapsed):
    data, model, _ = collapsed
    report = classification_report(data.test.y.numpy(), model.predict(data.test.x))
    assert report["accuracy"] >= 0.89 and report["balanced_accuracy"] < 0.25  # "90% accuracy" that means nothing
    assert any(w.startswith(f"predictions collapse onto class {MAJORITY}") for w in report["warnings"])


def test_balanced_class_weights_lift_balanced_accuracy(collapsed):
    data, model, before = collapsed
    model.config.class_weight = "balanced"
    model.after_fit(data)  # the same VAE features, the classifier refit with weights n / (K n_class)
    after = balanced_accuracy(data.test.y, model.predict(data.test.x))
    model.config.class_weight = "none"
    model.after_fit(data)
    assert after >= before + 0.2


def test_class_balanced_labels_lift_balanced_accuracy(digits90, collapsed):
    data = prepare_data(digits90, num_labels=90, valid_labels=0)  # 9 labels of each class; M1 keeps its epoch by the ELBO, so none held out (as ppmodels train)
    assert np.bincount(data.train.y[data.train.labeled]).tolist() == [9] * 10
    model = fit_m1(data)
    assert balanced_accuracy(data.test.y, model.predict(data.test.x)) >= collapsed[2] + 0.2


def test_max_per_class_caps_the_majority_and_lifts_balanced_accuracy(digits90, collapsed, tmp_path):
    np.savez(tmp_path / "digits90.npz", x=digits90.x, y=digits90.y)
    capped = load_dataset(f"npz:{tmp_path}/digits90.npz", max_per_class=14)
    counts = np.bincount(capped.y[capped.splits["train"]])
    assert counts.max() == 14 and counts[MAJORITY] == 14 and counts.sum() == 14 * 10
    assert {k: v.tolist() for k, v in capped.splits.items() if k != "train"} == {k: v.tolist() for k, v in digits90.splits.items() if k != "train"}
    data = prepare_data(capped)
    model = fit_m1(data)
    assert balanced_accuracy(data.test.y, model.predict(data.test.x)) >= collapsed[2] + 0.2


def test_train_reports_balanced_accuracy_and_warns_on_the_command_line(digits90, tmp_path):
    np.savez(tmp_path / "digits90.npz", x=digits90.x, y=digits90.y)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "m1", "--data", f"npz:{tmp_path}/digits90.npz", "--epochs", str(EPOCHS), "--batch-size", "128",
                                      "--z-dim", "8", "--hidden", "64", "--set", "classifier=logistic", "--set", "C=1.0",
                                      "--patience", "100", "--quiet", "--sample-every", "0", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "WARNING: predictions collapse onto class 0" in result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert f"test_balanced_accuracy: {summary['test_balanced_accuracy']:.4f}" in result.stdout
    assert summary["test_accuracy"] >= 0.89 and summary["test_balanced_accuracy"] < 0.25
    assert len(summary["test_per_class_recall"]) == 10 and summary["test_majority_rate"] == pytest.approx(321 / 357)
    assert any("collapse" in w for w in summary["test_warnings"])


def test_unknown_class_weight_is_refused():
    from ppmodels.errors import ConfigError

    with pytest.raises(ConfigError, match="option class_weight must be one of none, balanced, got 'auto'"):
        M1(x_shape=[4], class_weight="auto")


