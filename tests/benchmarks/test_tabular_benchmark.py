import csv
import json

import numpy as np

from benchmarks.imbalanced import imbalanced_tabular
from benchmarks.tabular import CLASSES, COLUMNS, intrinsic, observe, tabular_dataset, write_tabular
from ppmodels.data import UNLABELED, prepare_data
from tests.benchmarks.test_ssl_benchmark import load_benchmark


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_table_is_a_partly_labeled_csv_with_held_out_truth(tmp_path):
    train, truth = write_tabular(tmp_path, n_train=600, n_truth=400, labels_per_class=10, seed=3)
    rows = read(train)
    assert list(rows[0]) == [*COLUMNS, "class"] and len(rows) == 600
    given = [r["class"] for r in rows if r["class"]]
    assert sorted(set(given)) == sorted(CLASSES) and all(given.count(c) == 10 for c in CLASSES)
    assert len(read(truth)) == 400 and all(r["class"] in CLASSES for r in read(truth))
    data = tabular_dataset(tmp_path, seed=3)  # read back through the data layer's csv source
    assert data.class_names == list(CLASSES) and data.likelihood == "gaussian" and data.x.shape == (1000, 6)
    assert len(data.splits["train"]) + len(data.splits["valid"]) == 600 and len(data.splits["test"]) == 400
    assert (data.y[data.splits["valid"]] == UNLABELED).all() and (data.y[data.splits["test"]] >= 0).all()
    prepared = prepare_data(data, seed=0)  # every label of the file trains (a fifth of 10 a class, 2, is too few to choose by)
    counts = prepared.label_counts()
    assert counts["labeled_per_class"] == [10] * 5 and counts["selection_per_class"] == [0] * 5


def test_errors_grow_with_magnitude():
    """Heteroscedastic: faint objects' measured colours scatter more about their true ones than bright objects'."""
    rng = np.random.default_rng(0)
    truth = intrinsic("star", 20000, rng)
    error = observe(truth, rng)[:, 1:5] - truth[:, 1:5]
    faint, bright = truth[:, 0] > 21, truth[:, 0] < 17
    assert (error[faint].std(0) > 3 * error[bright].std(0)).all()


def test_ninety_percent_of_rows_and_labels_are_stars(tmp_path):
    data = imbalanced_tabular(tmp_path, num_labels=100, seed=0, rows=2000)
    train = np.concatenate([data.splits["train"], data.splits["valid"]])
    y = data.y[train]
    labels = np.bincount(y[y >= 0], minlength=5)
    assert labels.tolist() == [90, 3, 3, 2, 2]
    shares = np.bincount(data.y[data.splits["test"]], minlength=5) / len(data.splits["test"])
    assert abs(shares[0] - 0.9) < 0.03


def test_benchmark_runs_on_the_table_with_mean_and_spread(tmp_path):
    bench = load_benchmark()
    out = tmp_path / "r.json"
    rows = bench.main(["--dataset", "tabular", "--labels", "4", "--seeds", "0,1", "--models", "m2,svc_tuned", "--protocols", "budget",
                       "--epochs", "1", "--set-json", '{"m2": {"hidden": [8], "z_dim": 2}}', "--out", str(out)])
    saved = json.loads(out.read_text())
    assert len(rows) == 4 and {r["seed"] for r in rows} == {0, 1}
    for name in ("m2 [budget]", "svc_tuned"):
        assert {"balanced_accuracy_mean", "balanced_accuracy_sd", "test_error_pct_sd"} <= set(saved["summary"][name])
    m2 = [r for r in rows if r["model"] == "m2"]
    assert all(r["selection"]["labels"] == 0 for r in m2)  # a fifth of 4 a class, rounded, is 1: too few, none held out
    assert all(r["options"] == {"hidden": [8], "z_dim": 2} for r in m2)
