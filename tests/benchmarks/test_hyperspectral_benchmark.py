import json

import numpy as np
import pytest
from sklearn.svm import SVC

from benchmarks.hyperspectral import FRONT_END, main, markdown_table, share_ratios
from ppmodels.metrics import balanced_accuracy
from ppmodels.data import load_dataset
from ppmodels.runs import open_run_data


def test_share_ratios():
    y_true, y_pred = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    np.testing.assert_allclose(share_ratios(y_true, y_pred, 3), [2 / 3, 2.0, np.nan])


def test_the_benchmark_scores_m2_and_the_baselines_on_the_same_pixels_in_each_input(tmp_path):
    result = main(["--out", str(tmp_path), "--scenes", "voronoi,parcel", "--size", "36", "--bands", "12", "--epochs", "1",
                   "--labels-per-class", "1", "--max-spread", "500", "--select-by", "valid_elbo"])  # one label a class: no folds
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(c["scene"], c["seed"], c["labels_per_class"]) for c in saved["cells"]] == [("voronoi", 0, 1), ("parcel", 0, 1)]
    cell = saved["cells"][0]
    (run,) = (tmp_path / "voronoi_seed0").glob("m2_1per_class_1epochs_*")  # named by what M2 read
    assert cell["labeled_pixels"] == 16 and (run / "map.nc").is_file()
    assert {"m2", "svc", "svc_tuned", "logistic_tuned", "label_spreading_tuned", "svc_tuned:raw", "svc:patch5"} <= set(cell)
    assert saved["summary"]["parcel"]["1"]["m2"]["n"] == 1
    table = markdown_table(saved["summary"]).splitlines()
    assert table[0] == "| balanced accuracy | voronoi, 1 labels a class | parcel, 1 labels a class |"
    assert table[2] == f"| **M2** (brightness + 5x5 + 8 axes) | {cell['m2']['balanced_accuracy']:.3f} (1) | {saved['cells'][1]['m2']['balanced_accuracy']:.3f} (1) |"
    data = open_run_data(run)
    assert (data.dataset.metadata["cube"]["patch"], data.dataset.metadata["cube"]["normalize"], data.dataset.metadata["cube"]["components"]) == (5, "brightness", 8)
    labeled = data.labeled.labeled.numpy()
    held = np.setdiff1d(np.flatnonzero(data.dataset.y >= 0), data.dataset.splits["train"][labeled])
    assert cell["evaluated_pixels"] == len(held) == (data.dataset.y >= 0).sum() - 16
    rows = data.dataset.splits["train"][labeled]
    y = data.dataset.y[rows]
    # the same labeled pixels, in M2's input and in the raw pixels
    for name, spec in [("svc", f"cube:{tmp_path / 'voronoi_seed0' / 'scene.nc'}?{FRONT_END}"), ("svc:raw", f"cube:{tmp_path / 'voronoi_seed0' / 'scene.nc'}")]:
        x = load_dataset(spec).x
        svc = SVC(gamma="scale").fit(x[rows], y).predict(x[held])
        assert result["cells"][0][name]["balanced_accuracy"] == balanced_accuracy(data.dataset.y[held], svc)


def test_m2_can_keep_a_cross_validated_epoch_count(tmp_path):
    main(["--out", str(tmp_path), "--scenes", "parcel", "--size", "36", "--bands", "12", "--epochs", "2", "--labels-per-class", "2",
          "--max-spread", "500", "--select-by", "cv", "--no-map"])
    (cell,) = json.loads((tmp_path / "results.json").read_text())["cells"]
    chosen = cell["m2_selection"]
    (run,) = (tmp_path / "parcel_seed0").glob("m2_2per_class_2epochs_cv_*")
    counts = json.loads((run / "summary.json").read_text())["label_counts"]
    assert chosen["select_by"] == chosen["selected_by"] == "cv" and chosen["cv"]["labels"] == 32 == sum(counts["labeled_per_class"])
    assert chosen["cv"]["folds"] == min(5, min(c for c in counts["labeled_per_class"] if c))  # the small scene has fewer classes
    assert chosen["best_epoch"] == chosen["cv"]["chosen_epoch"] and (run / "cv.json").is_file()


def test_m2_options_reach_the_run_and_name_its_folder(tmp_path, capsys):
    main(["--out", str(tmp_path), "--scenes", "voronoi", "--size", "36", "--bands", "12", "--epochs", "1", "--labels-per-class", "1",
          "--max-spread", "500", "--no-map", "--select-by", "valid_elbo", "--m2-options", '{"class_prior": "learned"}'])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["m2_options"] == {"z_dim": 8, "hidden": [128], "class_prior": "learned"}
    (run,) = (tmp_path / "voronoi_seed0").glob("m2_1per_class_1epochs_*_class_priorlearned")  # not reused by a run of the recipe
    assert json.loads((run / "config.json").read_text())["model_config"]["class_prior"] == "learned"
    for bad in ("{class_prior", '["learned"]'):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path), "--m2-options", bad])
        assert "--m2-options" in capsys.readouterr().err
    # the recipe's cross-validation needs two labels a class: one is refused before anything trains
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "one"), "--labels-per-class", "1"])
    assert "needs at least 2 labels a class" in capsys.readouterr().err and not (tmp_path / "one").exists()


def _results(tmp_path, name, seeds, epochs=12, scene="voronoi", select_by="valid_elbo"):
    """A results file as a call with these seeds would write it (made up balanced accuracies)."""
    config = {"out": "/tmp/x", "json": None, "scenes": scene, "seeds": ",".join(map(str, seeds)), "labels_per_class": "5", "size": 145,
              "bands": 200, "epochs": epochs, "select_by": select_by, "cv_folds": None, "average_epochs": 0, "m2_options": {"z_dim": 8},
              "front_end": FRONT_END, "illumination": 0.25, "max_spread": 8000}
    cells = [{"scene": scene, "seed": s, "labels_per_class": 5, "m2": {"balanced_accuracy": 0.8 + s / 100}, "svc": {"balanced_accuracy": 0.5}}
             for s in seeds]
    path = tmp_path / name
    path.write_text(json.dumps({"config": config, "cells": cells}))
    return path


def test_merge_joins_the_cells_of_separate_calls_and_recomputes_the_summary(tmp_path, capsys):
    first, second = _results(tmp_path, "a.json", [2]), _results(tmp_path, "b.json", [0, 1])
    out = tmp_path / "merged.json"
    main(["--merge", str(out), str(first), str(second)])
    merged = json.loads(out.read_text())
    assert [c["seed"] for c in merged["cells"]] == [0, 1, 2] and merged["config"]["seeds"] == "0,1,2"
    m2 = merged["summary"]["voronoi"]["5"]["m2"]
    assert m2["n"] == 3 and m2["mean"] == pytest.approx(0.81) and m2["sd"] == pytest.approx(0.01)
    assert [entry["seeds"] for entry in merged["merged_from"]] == ["2", "0,1"]
    # a merged file merges again, keeping what each call ran
    again = tmp_path / "again.json"
    main(["--merge", str(again), str(out), str(_results(tmp_path, "c.json", [0], scene="parcel"))])
    assert [entry["seeds"] for entry in json.loads(again.read_text())["merged_from"]] == ["2", "0,1", "0"]


@pytest.mark.parametrize("case, message", [("epochs", "differ in epochs"), ("same cell", "both have voronoi seed 0"),
                                           ("missing", "cannot read results file"), ("itself", "would overwrite its input")])
def test_merge_refuses_calls_that_are_not_one_experiment(tmp_path, capsys, case, message):
    first = _results(tmp_path, "a.json", [0])
    second = {"epochs": lambda: _results(tmp_path, "b.json", [1], epochs=50), "same cell": lambda: _results(tmp_path, "b.json", [0, 1]),
              "missing": lambda: tmp_path / "none.json", "itself": lambda: first}[case]()
    out = first if case == "itself" else tmp_path / "merged.json"
    with pytest.raises(SystemExit):
        main(["--merge", str(out), str(first), str(second)])
    assert message in capsys.readouterr().err and not (tmp_path / "merged.json").exists()


def test_the_curve_scores_every_epoch_on_the_pixels_the_cell_is_scored_on(tmp_path):
    main(["--out", str(tmp_path), "--scenes", "voronoi", "--size", "36", "--bands", "12", "--epochs", "3", "--labels-per-class", "1",
          "--max-spread", "500", "--no-map", "--select-by", "last_epoch", "--curve"])
    (cell,) = json.loads((tmp_path / "results.json").read_text())["cells"]
    curve = cell["m2_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3] and all(p["valid_elbo"] is not None for p in curve)
    # the run keeps its last epoch, so the curve's last point is the cell's M2 row
    assert curve[-1]["balanced_accuracy"] == round(cell["m2"]["balanced_accuracy"], 4)
    assert curve[-1]["max_share_ratio"] == round(cell["m2"]["max_share_ratio"], 2)


def test_an_unknown_scene_is_refused_before_anything_trains(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "run"), "--scenes", "voronoi,parcle"])
    assert "unknown scene 'parcle'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_table_names_the_rule_and_refuses_to_mix_rules(tmp_path, capsys):
    cv = _results(tmp_path, "cv.json", [0, 1], select_by="cv")
    main(["--table", str(cv)])
    assert "| **M2** (brightness + 5x5 + 8 axes, cross-validated epochs) | 0.805 +- 0.007 (2) |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--table", str(cv), str(_results(tmp_path, "elbo.json", [2]))])
    assert "choose M2's epoch differently (cv, valid_elbo)" in capsys.readouterr().err
