import numpy as np

from benchmarks.field_edges import edge_report, near_other_field
from benchmarks.hyperspectral import main


def test_near_other_field_matches_a_window_scan():
    gt = np.random.default_rng(0).integers(0, 3, size=(9, 7))
    gt[2:7, 1:6] = 5  # a field with an inside
    for width in (1, 2):
        expected = np.zeros(gt.shape, dtype=bool)
        for i in range(gt.shape[0]):
            for j in range(gt.shape[1]):
                window = gt[max(i - width, 0):i + width + 1, max(j - width, 0):j + width + 1]
                expected[i, j] = bool(np.any(window != gt[i, j]))
        np.testing.assert_array_equal(near_other_field(gt, width), expected)
    assert not near_other_field(np.zeros((4, 4), dtype=int)).any()  # one field: no edge, the border included


def test_edge_report_counts_the_most_over_predicted_class(tmp_path):
    main(["--out", str(tmp_path), "--scenes", "voronoi", "--size", "36", "--bands", "12", "--epochs", "1", "--labels-per-class", "1",
          "--max-spread", "500", "--no-map", "--select-by", "valid_elbo"])  # one label a class: no folds
    (run,) = (tmp_path / "voronoi_seed0").glob("m2_1per_class_1epochs_*")
    report = edge_report(run)
    from ppmodels.runs import load, open_run_data

    data = open_run_data(run)
    y = data.dataset.y
    held = np.setdiff1d(np.flatnonzero(y >= 0), data.dataset.splits["train"][data.labeled.labeled.numpy()])
    pred = load(run).predict(data.dataset.x[held])
    c = report["class"]
    assert report["predicted"] == int(np.sum(pred == c)) and report["evaluated_of_class"] == int(np.sum(y[held] == c))
    assert sum(report["taken_from"]) == int(np.sum((pred == c) & (y[held] != c))) and report["taken_from"][c] == 0
    for share in report["edge_share"].values():
        assert share is None or 0 <= share <= 1
