import json

import numpy as np
from sklearn.svm import SVC

from benchmarks.hyperspectral import main, share_ratios
from ppmodels.analysis.metrics import balanced_accuracy
from ppmodels.runs import open_run_data


def test_share_ratios():
    y_true, y_pred = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    np.testing.assert_allclose(share_ratios(y_true, y_pred, 3), [2 / 3, 2.0, np.nan])


def test_the_benchmark_scores_m2_and_svc_on_the_same_pixels(tmp_path):
    result = main(["--out", str(tmp_path), "--size", "36", "--bands", "12", "--epochs", "1", "--labels-per-class", "1"])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["labeled_pixels"] == 16 and (tmp_path / "map.nc").is_file() and (tmp_path / "map.png").is_file()
    assert {"m2", "svc", "svc_tuned", "logistic_tuned", "label_spreading_tuned"} <= set(saved)
    data = open_run_data(tmp_path / "m2")
    labeled = data.labeled.labeled.numpy()
    held = np.setdiff1d(np.flatnonzero(data.dataset.y >= 0), data.dataset.splits["train"][labeled])
    assert saved["evaluated_pixels"] == len(held) == (data.dataset.y >= 0).sum() - 16
    svc = SVC(gamma="scale").fit(data.labeled.x.numpy()[labeled], data.labeled.y.numpy()[labeled]).predict(data.dataset.x[held])
    assert result["svc"]["balanced_accuracy"] == balanced_accuracy(data.dataset.y[held], svc)
