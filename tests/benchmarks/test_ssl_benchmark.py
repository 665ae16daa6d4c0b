import importlib.util
import json
import re
from pathlib import Path

import pytest
from sklearn.svm import SVC

from ppmodels.data import load_dataset, prepare_data

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "semisupervised.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("ssl_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_ssl_benchmark_runs_and_writes_its_rows(tmp_path):
    bench = load_benchmark()
    out = tmp_path / "r.json"
    rows = bench.main(["--dataset", "digits", "--labels", "20", "--seeds", "0,1", "--models", "m2,m1m2,svc", "--epochs", "2",
                       "--eval-every", "1", "--set-json", '{"m2": {"hidden": [16], "z_dim": 2}, "m1m2": {"m1_epochs": 1, "m1_hidden": [16], "m2_hidden": [16]}}',
                       "--out", str(out)])
    saved = json.loads(out.read_text())
    assert len(rows) == 10 and saved["rows"] == json.loads(json.dumps(rows))
    assert set(saved["summary"]) == {"m2 [budget]", "m2 [paper]", "m1m2 [budget]", "m1m2 [paper]", "svc"} and saved["summary"]["m2 [budget]"]["seeds"] == 2
    # both protocols side by side: the budget's selection reads 4 of the 20 labels (2 a class, a fifth each, rounded: 0;
    # so none are held out and the ELBO chooses), the paper's the validation split's 180
    for row in (r for r in saved["rows"] if r["protocol"]):
        assert row["selection"]["protocol"] == row["protocol"]
        assert row["selection"]["labels"] == (180 if row["protocol"] == "paper" else 0)
    for row in saved["rows"]:
        assert {"dataset", "model", "num_labels", "seed", "test_error_pct", "balanced_accuracy", "wall_time_s", "peak_memory_mb"} <= set(row)
    # the peer's error is the one an RBF SVC gets on the same 20 labeled images of each seed (the run's whole budget)
    digits = load_dataset("digits")
    for row in (r for r in saved["rows"] if r["model"] == "svc"):
        data = prepare_data(digits, 20, seed=row["seed"])
        labeled = data.labeled.labeled.numpy()
        assert labeled.sum() == 20
        svc = SVC(gamma="scale").fit(data.labeled.x.reshape(len(data.labeled), -1).numpy()[labeled], data.labeled.y.numpy()[labeled])
        accuracy = svc.score(data.test.x.reshape(len(data.test), -1).numpy(), data.test.y.numpy())
        assert row["test_error_pct"] == pytest.approx(100 * (1 - accuracy), abs=1e-3)
    m1m2 = [r for r in saved["rows"] if r["model"] == "m1m2" and r["protocol"] == "paper"]
    assert all(r["epochs"] == 2 and [p["epoch"] for p in r["curve"]] == [2] for r in m1m2)  # the curve starts with stage m2
    # its one M2 epoch is the one kept, so the curve's last point is the row's figure
    assert all(r["curve"][-1]["test_error_pct"] == r["test_error_pct"] for r in m1m2)


def test_rows_finished_before_a_crash_are_on_disk(tmp_path, monkeypatch):
    """Hours of MNIST runs are not lost to a failure in a later one: the JSON is rewritten after every row."""
    bench = load_benchmark()

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(bench, "run_deep", crash)
    out = tmp_path / "r.json"
    with pytest.raises(RuntimeError, match="killed"):
        bench.main(["--dataset", "digits", "--labels", "20", "--seeds", "0", "--models", "svc,label_spreading,m2", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert [r["model"] for r in saved["rows"]] == ["svc", "label_spreading"] and set(saved["summary"]) == {"svc", "label_spreading"}
    assert saved["versions"]["torch"]


def test_select_by_cv_passes_through_and_its_kept_epoch_is_the_refits_last(tmp_path):
    bench = load_benchmark()
    rows = bench.main(["--dataset", "digits", "--labels", "20", "--seeds", "0", "--models", "m2", "--protocols", "budget", "--epochs", "3",
                       "--eval-every", "1", "--select-by", "cv", "--cv-folds", "2", "--set-json", '{"m2": {"hidden": [16], "z_dim": 2}}',
                       "--out", str(tmp_path / "r.json")])
    (row,) = rows
    cv = row["cv"]
    assert row["selected_by"] == "cv" and row["epochs"] == row["best_epoch"] == cv["chosen_epoch"] and cv["folds"] == 2 and cv["labels"] == 20
    assert row["selection"]["labels"] == 0  # nothing held out of the data: every label trains, the folds choose
    assert [p["epoch"] for p in row["curve"]] == list(range(1, cv["chosen_epoch"] + 1))  # the curve is the refit's
    assert row["curve"][-1]["test_error_pct"] == row["test_error_pct"]


def test_stopping_rules_reads_the_short_budget_off_an_elbo_curve(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("stopping_rules", SCRIPT.with_name("stopping_rules.py"))
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    curve = [{"epoch": e, "valid_elbo": elbo, "test_error_pct": err} for e, elbo, err in ((1, -9, 30.0), (2, -5, 20.0), (3, -6, 10.0), (4, -4, 25.0))]
    (tmp_path / "long.json").write_text(json.dumps({"rows": [{"seed": 0, "curve": curve, "test_error_pct": 25.0, "best_epoch": 4},
                                                             {"seed": 1, "curve": curve, "test_error_pct": 15.0, "best_epoch": 4}]}))
    monkeypatch.setattr(rules, "RESULTS", tmp_path)
    result = rules.main(["--short", "3", "--long", "4", "--rule", "elbo=long.json", "--out", str(tmp_path / "t.json")])["elbo"]
    assert result["short"]["test_error_pct"] == [20.0, 20.0] and result["short"]["kept_epoch"] == [2, 2]  # the best ELBO of epochs 1-3
    assert result["longer_never_worse"] == [False, True]
    # a cross-validated run: the short budget keeps the first best of the mean fold curve's first epochs, read off the refit
    refit = [{"epoch": e, "test_error_pct": err} for e, err in ((1, 30.0), (2, 20.0), (3, 12.0), (4, 11.0))]
    (tmp_path / "cv.json").write_text(json.dumps({"rows": [{"seed": 0, "curve": refit, "test_error_pct": 11.0, "best_epoch": 4,
                                                            "cv": {"mean_curve": [0.5, 0.7, 0.7, 0.9]}}]}))
    result = rules.main(["--short", "3", "--long", "4", "--rule", "cv=cv.json"])["cv"]
    assert result["short"]["kept_epoch"] == [2] and result["short"]["test_error_pct"] == [20.0] and result["longer_never_worse"] == [True]


def _results_file(tmp_path, name, seeds, model="m1m2", options=None, threads=1):
    """A results file as a call with these seeds would write it (made-up errors)."""
    rows = [{"dataset": "mnist", "model": model, "protocol": "budget", "num_labels": 100, "seed": s, "binarize": "none",
             "test_error_pct": 6.0 + s / 10, "balanced_accuracy": 0.94 - s / 1000, "wall_time_s": 100.0 + s,
             "options": options or {"z1_dim": 50}, "train": {"epochs": 1000}} for s in seeds]
    path = tmp_path / name
    path.write_text(json.dumps({"command": f"python benchmarks/semisupervised.py --seeds {','.join(map(str, seeds))}", "rows": rows,
                                "summary": {}, "threads": threads, "versions": {"torch": "2.13.0+cpu"}}))
    return path


def test_merge_joins_calls_run_side_by_side_and_recomputes_the_summary(tmp_path):
    bench = load_benchmark()
    out = tmp_path / "merged.json"
    bench.main(["--merge", str(out), str(_results_file(tmp_path, "a.json", [0])), str(_results_file(tmp_path, "b.json", [1, 2]))])
    merged = json.loads(out.read_text())
    assert [r["seed"] for r in merged["rows"]] == [0, 1, 2] and len(merged["commands"]) == 2
    summary = merged["summary"]["m1m2 [budget]"]
    assert summary["seeds"] == 3 and summary["test_error_pct_mean"] == pytest.approx(6.1) and summary["test_error_pct_sd"] == pytest.approx(0.1)
    # merged again with a baseline's file, the commands of all three calls are kept
    again = tmp_path / "again.json"
    bench.main(["--merge", str(again), str(out), str(_results_file(tmp_path, "c.json", [0], model="svc"))])
    assert len(json.loads(again.read_text())["commands"]) == 3


@pytest.mark.parametrize("case, message", [("same seed", "both have m1m2 [budget] seed 0"), ("options", "other options or settings"),
                                           ("threads", "differ in threads"), ("missing", "cannot read results file")])
def test_merge_refuses_files_that_are_not_one_experiment(tmp_path, case, message):
    bench = load_benchmark()
    first = _results_file(tmp_path, "a.json", [0])
    second = {"same seed": lambda: _results_file(tmp_path, "b.json", [0, 1]), "options": lambda: _results_file(tmp_path, "b.json", [1], options={"z1_dim": 10}),
              "threads": lambda: _results_file(tmp_path, "b.json", [1], threads=2), "missing": lambda: tmp_path / "none.json"}[case]()
    with pytest.raises(SystemExit, match=re.escape(message)):
        bench.main(["--merge", str(tmp_path / "merged.json"), str(first), str(second)])
    assert not (tmp_path / "merged.json").exists()


def test_stopping_rules_reads_every_rule_off_a_spectra_curve(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("stopping_rules", SCRIPT.with_name("stopping_rules.py"))
    rules = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rules)
    monkeypatch.setattr(rules, "RESULTS", tmp_path)
    # accuracy peaks at epoch 2 and drifts down while the ELBO keeps rising
    curve = [{"epoch": e, "balanced_accuracy": acc, "valid_elbo": -10.0 + e} for e, acc in enumerate((0.6, 0.9, 0.8, 0.7), start=1)]
    cell = {"scene": "voronoi", "labels_per_class": 5, "seed": 0}
    (tmp_path / "curves.json").write_text(json.dumps({"cells": [{**cell, "m2_curve": curve}]}))
    cv = {"mean_curve": [0.5, 0.8, 0.8, 0.6]}  # the folds agree: epoch 2 (ties: the earlier)
    (tmp_path / "cv.json").write_text(json.dumps({"cells": [{**cell, "m2": {"balanced_accuracy": 0.9}, "m2_selection": {"best_epoch": 2, "cv": cv}}]}))
    groups = rules.main(["--short", "3", "--long", "4", "--spectra", "curves.json", "--cv", "cv.json", "--out", str(tmp_path / "t.json")])
    result = groups["voronoi, 5 labels a class"]
    assert result["validation ELBO"]["short"]["kept_epoch"] == [3] and result["validation ELBO"]["long"]["balanced_accuracy"] == [0.7]
    assert result["validation ELBO"]["longer_never_worse"] == [False]
    assert result["5-fold cross-validation"]["short"]["kept_epoch"] == result["5-fold cross-validation"]["long"]["kept_epoch"] == [2]
    assert result["5-fold cross-validation"]["longer_never_worse"] == [True]
    assert json.loads((tmp_path / "t.json").read_text())["groups"] == json.loads(json.dumps(groups))
    # a cv cell whose kept model is not the curve's point is another run: refused
    (tmp_path / "cv.json").write_text(json.dumps({"cells": [{**cell, "m2": {"balanced_accuracy": 0.5}, "m2_selection": {"best_epoch": 2, "cv": cv}}]}))
    with pytest.raises(SystemExit, match="the runs differ"):
        rules.main(["--short", "3", "--long", "4", "--spectra", "curves.json", "--cv", "cv.json"])
    with pytest.raises(SystemExit, match="fewer than --long 5"):
        rules.main(["--short", "3", "--long", "5", "--spectra", "curves.json"])
