import json

import numpy as np
import pyro
import pytest

from ppmodels import evaluate
from ppmodels.data import load_dataset, prepare_data
from ppmodels.errors import ConfigError
from ppmodels.metrics import classification_metrics
from ppmodels.models import M2
from ppmodels.infer import TrainConfig
from ppmodels.infer import fit
from ppmodels.runs import save_model


def test_metrics_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 0, 1, 0, 2, 2])
    m = classification_metrics(y_true, y_pred, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["per_class_accuracy"] == [0.75, 0.5, 1.0, None]  # class 3 never occurs
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert m["confusion_matrix"][0] == [3, 1, 0, 0] and m["confusion_matrix"][1] == [1, 1, 0, 0]
    assert m["majority_rate"] == 0.5 and m["warnings"] == []


def test_collapse_and_majority_warnings():
    y_true = np.array([0] * 6 + [1] * 2 + [2] * 2)
    collapsed = classification_metrics(y_true, np.zeros(10, dtype=int), 3)
    assert any("collapse onto class 0" in w for w in collapsed["warnings"])
    assert any("no better than always predicting the majority class" in w for w in collapsed["warnings"])
    leaning = classification_metrics(np.array([0, 1, 2, 3] * 5), np.array([1] * 14 + [0, 1, 2, 3, 0, 2]), 4)
    assert any("collapse onto class 1" in w for w in leaning["warnings"])


def test_evaluate_a_model_and_a_run(digits, tmp_path):
    data = prepare_data(digits, num_labels=50, seed=0, protocol="paper")  # data.valid: the digits' validation split
    m2 = fit(M2(M2.config_from_data(digits, z_dim=4, hidden=[32])), data, TrainConfig(epochs=3, batch_size=200, patience=None))
    result = evaluate(m2, "digits", split="valid", iw_samples=5)
    assert result["split"] == "valid" and result["num_examples"] == len(data.valid)
    predicted = m2.predict(data.valid.x)
    assert result["accuracy"] == pytest.approx((predicted == data.valid.y.numpy()).mean())
    assert np.array(result["confusion_matrix"]).sum() == len(data.valid)
    pyro.set_rng_seed(0)  # evaluate's seed: the same draws give the same numbers
    elbo = m2.elbo_per_datum(data.valid)
    assert result["elbo"] == pytest.approx(elbo, rel=1e-6)
    assert result["iw_log_likelihood"] == pytest.approx(float(m2.iw_log_likelihood(data.valid.x, 5).mean()), rel=1e-6)
    # y summed out exactly and 5 particles: a tighter bound than the ELBO (measured 4 to 8 nats over four seeds)
    assert result["iw_log_likelihood"] > result["elbo"] + 1.0, result
    save_model(m2, tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text(json.dumps({**json.loads((tmp_path / "run" / "config.json").read_text()), "data": {"spec": "digits"}}))
    again = evaluate(tmp_path / "run", split="valid", iw_samples=0)
    assert again["accuracy"] == result["accuracy"] and "iw_log_likelihood" not in again
    assert json.loads((tmp_path / "run" / "evaluation.json").read_text())["accuracy"] == again["accuracy"]
    with pytest.raises(ConfigError, match="unknown split"):
        evaluate(m2, "digits", split="train")


def test_other_data_is_binarized_as_the_run_was(digits, tmp_path):
    """A run fitted to thresholded pixels, evaluated on another spec, scores that data thresholded too: the ELBO
    matches the model's own ELBO of the binarized copy, not of the grey levels (evaluate and diagnose share
    :func:`open_applied_data`)."""
    from ppmodels.models import VAE
    from ppmodels.runs import open_applied_data

    binary = prepare_data(load_dataset("digits", binarize="threshold"), num_labels=None, seed=0)
    vae = fit(VAE(VAE.config_from_data(binary.dataset, z_dim=2, hidden=[16])), binary, TrainConfig(epochs=2, batch_size=200, patience=None))
    save_model(vae, tmp_path / "run")
    config_path = tmp_path / "run" / "config.json"
    config = {**json.loads(config_path.read_text()), "data": {"spec": "digits", "binarize": "threshold"}}
    config_path.write_text(json.dumps(config))
    np.savez(tmp_path / "grey.npz", x=np.asarray(digits.x), y=np.asarray(digits.y))
    other = f"npz:{tmp_path}/grey.npz"

    own, is_own = open_applied_data(tmp_path / "run", None)
    assert is_own and own.binarize == "threshold"
    applied, is_own = open_applied_data(tmp_path / "run", other)
    assert not is_own and applied.binarize == "threshold"
    test = applied.split("test")
    assert set(np.unique(np.asarray(test.x))) <= {0.0, 1.0}  # the grey levels of the file arrive thresholded
    assert not set(np.unique(np.asarray(load_dataset(other).split("test").x))) <= {0.0, 1.0}

    result = evaluate(tmp_path / "run", other, iw_samples=0)
    pyro.set_rng_seed(0)
    assert result["elbo"] == pytest.approx(vae.elbo_per_datum(test), rel=1e-6)
    assert "baselines" not in result  # baselines are trained on the run's own labels only


def test_every_row_of_a_separate_file_is_scored_against_baselines_on_the_run_budget(digits, tmp_path):
    """``--split all`` scores every row of another file (its unlabeled rows in the ELBO only); the baselines are
    fitted on the run's whole label budget, the labels it held out for selection too."""
    from sklearn.svm import SVC

    from ppmodels.commands.train import train

    train("m2", "digits", tmp_path / "run", labels=130, progress=False, sample_every=0,
          train_config=TrainConfig(epochs=1, batch_size=300, min_epoch_steps=0), model_options={"hidden": [8], "z_dim": 2})
    rows = digits.splits["test"]
    y = digits.y[rows].copy()
    y[::3] = -1  # a partly labeled test file
    np.savez(tmp_path / "other.npz", x=digits.x[rows], y=y)
    result = evaluate(tmp_path / "run", f"npz:{tmp_path}/other.npz", split="all", iw_samples=0)
    assert result["num_examples"] == len(rows) and result["num_labeled"] == int((y >= 0).sum())
    budget = prepare_data(digits, num_labels=130, seed=0)  # 13 a class: 3 a class held out for selection
    assert budget.train.num_labeled == 100 and budget.labeled.num_labeled == 130
    lab = budget.labeled.labeled.numpy()
    x = budget.labeled.x.reshape(len(lab), -1).numpy()
    svc = SVC().fit(x[lab], budget.labeled.y.numpy()[lab]).predict(digits.x[rows][y >= 0].reshape(-1, 64))
    assert result["baselines"]["svc"]["accuracy"] == pytest.approx((svc == y[y >= 0]).mean(), abs=1e-12)
    assert {"svc_tuned", "logistic_tuned", "label_spreading_tuned"} <= set(result["baselines"])
