"""Selection within the label budget: with few labels, the kept epoch and early stopping are chosen by labels held out
of the budget, and no label outside it (the validation split's, the hidden training labels) is ever read."""

import copy
import json

import numpy as np
import pytest
import torch

from ppmodels.commands.train import train
from ppmodels.data import UNLABELED, load_dataset, prepare_data
from ppmodels.infer import TrainConfig, fit
from ppmodels.models import M2


class Records:
    def __init__(self):
        self.records = []

    def on_epoch_end(self, trainer, record):
        self.records.append({k: v for k, v in record.items() if k != "elapsed"})


def poisoned(dataset):
    """A copy whose labels outside a 50-label budget that a user would not have are wrong: the validation split's and
    the test split's (the draw of the 50 reads the training split's, as a stand-in for the user's labelling)."""
    bad = copy.copy(dataset)
    bad.y = dataset.y.copy()
    for split in ("valid", "test"):
        bad.y[dataset.splits[split]] = (dataset.y[dataset.splits[split]] + 1) % 10
    return bad


def run(data):
    records = Records()
    model = fit(M2(x_shape=[1, 8, 8], z_dim=2, hidden=[16], seed=0), data, TrainConfig(epochs=3, batch_size=200, patience=None, min_epoch_steps=0, seed=0),
                callbacks=[records])
    return records.records, model.state_dict(), model.train_state_


def test_validation_labels_outside_the_budget_are_never_read(digits):
    clean = prepare_data(digits, num_labels=50, seed=0, valid_labels=10)
    bad = prepare_data(poisoned(digits), num_labels=50, seed=0, valid_labels=10)
    assert bad.selection["protocol"] == "budget" and bad.selection["labels"] == 10
    assert torch.equal(clean.train.y, bad.train.y) and torch.equal(clean.valid.y, bad.valid.y)
    a, b = run(clean), run(bad)
    assert a[0] == b[0] and a[2].best_epoch == b[2].best_epoch and a[2].selected_by == "valid_accuracy"
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    # the check has teeth: under the paper protocol, which reads the validation split's labels, the poison shows
    paper_clean, paper_bad = (prepare_data(d, num_labels=50, seed=0, protocol="paper") for d in (digits, poisoned(digits)))
    assert [r["valid_accuracy"] for r in run(paper_clean)[0]] != [r["valid_accuracy"] for r in run(paper_bad)[0]]


def test_selection_labels_come_from_the_budget_and_leave_training(digits):
    data = prepare_data(digits, num_labels=50, seed=0, valid_labels=10)
    train_rows = digits.splits["train"]
    labeled_rows = train_rows[data.labeled.labeled.numpy()]
    training_rows = train_rows[data.train.labeled.numpy()]
    valid_x = data.valid.x.reshape(len(data.valid), -1).numpy()
    selection_x = valid_x[data.valid.y.numpy() >= 0]
    # every selection example is one of the budget's labeled examples, with its label, and is not trained on as labeled
    found = [np.flatnonzero((digits.x[labeled_rows].reshape(50, -1) == row).all(1)) for row in selection_x]
    assert all(len(f) >= 1 for f in found) and len(selection_x) == 10
    assert len(np.intersect1d(training_rows, labeled_rows[[f[0] for f in found]])) == 0
    assert data.train.num_labeled == 40 and data.label_counts()["selection_per_class"] == [1] * 10
    # the validation split's rows stay for the validation ELBO, their labels hidden
    assert (data.valid.y.numpy() == UNLABELED).sum() == len(digits.splits["valid"])


def test_default_hold_out_needs_three_selection_labels_a_class(digits):
    """A fifth of each class's labels choose the epoch when that is at least 3 a class (13 labels a class and up);
    with fewer none is held out and the validation ELBO chooses (one or two labels a class cost more than they
    chose, docs/ssl.md)."""
    for budget, per_class in ((50, 5), (100, 10), (120, 12)):  # round(0.2 x 12) = 2
        few = prepare_data(digits, num_labels=budget, seed=0)
        assert few.selection["labels"] == 0 and few.train.num_labeled == budget and not (few.valid.y >= 0).any(), per_class
    enough = prepare_data(digits, num_labels=130, seed=0)  # 13 a class: round(2.6) = 3
    assert enough.selection["labels"] == 30 and enough.label_counts()["selection_per_class"] == [3] * 10


def test_runs_saved_under_the_old_rule_reopen_with_the_labels_they_held_out(tmp_path, digits):
    """The default rose from 2 to 3 selection labels a class: a run records the rule it trained under, and one saved
    before (no record) is reopened (evaluate, predict, resume) holding out what it held out then."""
    from ppmodels.runs.data import open_run_data

    run = tmp_path / "run"
    train("m2", "digits", run, labels=80, progress=False, sample_every=0, train_config=TrainConfig(epochs=1, batch_size=300, min_epoch_steps=0),
          model_options={"hidden": [8], "z_dim": 2})
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["min_selection_per_class"] == 3 and open_run_data(run).selection["labels"] == 0  # 8 a class: all train
    del config["data"]["min_selection_per_class"]
    (run / "config.json").write_text(json.dumps(config))
    old = open_run_data(run)
    assert old.selection["labels"] == 20 and old.label_counts()["selection_per_class"] == [2] * 10 and old.train.num_labeled == 60


def test_summary_records_the_selection_and_label_counts(tmp_path, digits):
    _, summary = train("m2", "digits", tmp_path / "run", labels=130, progress=False, sample_every=0,
                       train_config=TrainConfig(epochs=1, batch_size=300, min_epoch_steps=0), model_options={"hidden": [8], "z_dim": 2})
    assert summary["budget_labels"] == 130 and summary["num_labels"] == 130 - 30  # round(0.2 x 13) = 3 a class held out
    assert summary["selection"]["protocol"] == "budget" and summary["selection"]["labels"] == 30
    assert summary["label_counts"]["labeled_per_class"] == [10] * 10
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["protocol"] == "budget" and config["data"]["valid_labels"] is None
    _, vae = train("vae", "digits", tmp_path / "vae", labels=30, progress=False, sample_every=0,
                   train_config=TrainConfig(epochs=1, batch_size=300), model_options={"hidden": [8], "z_dim": 2})
    assert vae["num_labels"] == 30 and vae["selection"]["labels"] == 0  # an ELBO-selected model holds nothing out


def test_a_validation_file_is_used_whole(tmp_path, digits):
    valid_rows = digits.splits["valid"]
    np.savez(tmp_path / "valid.npz", x=digits.x[valid_rows], y=digits.y[valid_rows])
    data = prepare_data(digits, num_labels=50, seed=0, valid_data=load_dataset(f"npz:{tmp_path}/valid.npz"))
    assert data.train.num_labeled == 50 and data.valid.num_labeled == len(valid_rows)
    assert data.selection["protocol"] == "valid file" and data.selection["labels"] == len(valid_rows)
    np.savez(tmp_path / "other.npz", x=np.zeros((20, 5), np.float32), y=np.arange(20) % 2)
    with pytest.raises(Exception, match="shape"):
        prepare_data(digits, num_labels=50, valid_data=load_dataset(f"npz:{tmp_path}/other.npz"))
