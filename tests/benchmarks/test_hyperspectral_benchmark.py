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
                   "--labels-per-class", "1", "--max-spread", "500"])
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
          "--max-spread", "500", "--no-map", "--m2-options", '{"class_prior": "learned"}'])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["m2_options"] == {"z_dim": 8, "hidden": [128], "class_prior": "learned"}
    (run,) = (tmp_path / "voronoi_seed0").glob("m2_1per_class_1epochs_*_class_priorlearned")  # not reused by a run of the recipe
    assert json.loads((run / "config.json").read_text())["model_config"]["class_prior"] == "learned"
    for bad in ("{class_prior", '["learned"]'):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path), "--m2-options", bad])
        assert "--m2-options" in capsys.readouterr().err
