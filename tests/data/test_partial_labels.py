"""Partly labeled files in every source: rows without a label (-1, NaN, an empty csv cell or a token, a blank text
label), how such a file is split, what a run holds out for selection, and the one-line refusals."""

import h5py
import numpy as np
import pytest
import zarr

from ppmodels.data import UNLABELED, hold_out_for_selection, load_dataset, open_data, partial_splits, prepare_data
from ppmodels.errors import DataError

N, K = 120, 3


@pytest.fixture
def partial():
    """x (120 x 4) and labels 0..2 with 12 rows of each class labeled, the rest -1."""
    rng = np.random.default_rng(0)
    y = np.arange(N) % K
    x = (rng.normal(size=(N, 4)) + y[:, None]).astype(np.float32)
    given = np.full(N, UNLABELED)
    for c in range(K):
        rows = np.flatnonzero(y == c)[:12]
        given[rows] = c
    return x, given


def write(kind: str, path, x, y) -> str:
    if kind == "npz":
        np.savez(path / "d.npz", x=x, y=y)
        return f"npz:{path}/d.npz"
    if kind == "npy":
        np.save(path / "x.npy", x)
        np.save(path / "y.npy", np.where(y < 0, np.nan, y))  # NaN for a row without a label
        return f"npy:{path}/x.npy?labels=y.npy"
    if kind == "h5":
        with h5py.File(path / "d.h5", "w") as f:
            f["x"], f["y"] = x, y
        return f"h5:{path}/d.h5"
    if kind == "zarr":
        root = zarr.open_group(str(path / "d.zarr"), mode="w")
        root.create_array("x", data=x)
        root.create_array("y", data=y)
        return f"zarr:{path}/d.zarr"
    names = np.array(["corn", "soy", "wheat"])
    cells = {"csv": [str(v) if v >= 0 else "" for v in y], "csv-token": [str(v) if v >= 0 else "?" for v in y],
             "csv-text": [names[v] if v >= 0 else " " for v in y]}[kind]
    lines = ["a,b,c,d,label"] + [",".join([*map(str, row), cell]) for row, cell in zip(x, cells)]
    (path / "d.csv").write_text("\n".join(lines) + "\n")
    return f"csv:{path}/d.csv?label=label" + ("&unlabeled=?" if kind == "csv-token" else "")


@pytest.mark.parametrize("kind", ["npz", "npy", "h5", "zarr", "csv", "csv-token", "csv-text"])
@pytest.mark.parametrize("lazy", ["1", "0"])
def test_partly_labeled_files_round_trip(tmp_path, partial, kind, lazy):
    x, y = partial
    spec = write(kind, tmp_path, x, y)
    if lazy == "0" and kind in ("npy", "h5", "zarr"):  # the sources that read from disk (npz and csv refuse ?lazy)
        spec += ("&" if "?" in spec else "?") + "lazy=0"
    data = open_data(spec)  # no --labels: every given label is used
    d = data.dataset
    assert d.partly_labeled and (d.y == y).all() and np.allclose(np.asarray(d.x[:]), x)
    assert d.class_names == (["corn", "soy", "wheat"] if kind == "csv-text" else None)
    # every labeled row trains; the unlabeled rows go to train, valid (a tenth) and test (a fifth)
    assert (d.y[d.splits["train"]] >= 0).sum() == 36 and set(np.flatnonzero(y >= 0)) <= set(d.splits["train"])
    assert (d.y[d.splits["test"]] == UNLABELED).all() and len(d.splits["test"]) == round(0.2 * (N - 36))
    assert (d.y[d.splits["valid"]] == UNLABELED).all() and len(d.splits["valid"]) == round(0.1 * (N - 36))
    assert d.metadata["test_labels"] == 0.0 and data.test.num_labeled == 0
    counts = data.label_counts()  # a fifth of 12 a class is 2: too few to choose by, so every label trains
    assert counts["labeled_per_class"] == [12, 12, 12] and counts["selection_per_class"] == [0, 0, 0]
    assert counts["unlabeled"] == N - 36 - len(d.splits["valid"]) - len(d.splits["test"])
    assert data.selection["protocol"] == "budget" and data.selection["labels"] == 0
    held = open_data(spec, valid_labels=6).label_counts()  # asked for: 6 of the budget choose, 2 a class
    assert held["labeled_per_class"] == [10, 10, 10] and held["selection_per_class"] == [2, 2, 2]  # all 12 each in the budget
    assert held["unlabeled"] == counts["unlabeled"] + 6  # the unlabeled rows and the 6 held out
    capped = open_data(spec, labels=6)  # --labels caps the given labels
    assert capped.labeled.num_labeled == 6


def test_partial_splits_train_on_every_label_by_default():
    y = np.array([0] * 10 + [1] * 3 + [2] + [UNLABELED] * 20)
    splits = partial_splits(y)
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(y)))  # a partition of the rows
    assert np.bincount(y[splits["train"]][y[splits["train"]] >= 0]).tolist() == [10, 3, 1]  # every label of every class
    assert (y[splits["valid"]] == UNLABELED).all() and len(splits["valid"]) == 2  # a tenth of the 20 unlabeled rows
    assert (y[splits["test"]] == UNLABELED).all() and len(splits["test"]) == 4  # a fifth of them, for the test ELBO
    for n, sizes in ((0, (0, 0)), (1, (0, 0)), (2, (1, 0)), (3, (1, 1)), (4, (1, 1))):  # few unlabeled rows: one stays in train
        few = partial_splits(np.array([0, 1] + [UNLABELED] * n))
        assert (len(few["valid"]), len(few["test"])) == sizes and len(few["train"]) == 2 + n - sum(sizes)


def test_test_labels_share_goes_to_test_stratified_and_never_a_class_last_label():
    y = np.array([0] * 10 + [1] * 3 + [2] + [UNLABELED] * 20)
    splits = partial_splits(y, test_labels=0.2)
    test, train = y[splits["test"]], y[splits["train"]]
    assert np.bincount(test[test >= 0], minlength=3).tolist() == [2, 1, 0]  # round(0.2 n_c); class 2 keeps its one label
    assert np.bincount(train[train >= 0], minlength=3).tolist() == [8, 2, 1]
    assert (test == UNLABELED).sum() == 4  # the unlabeled test rows stay
    most = y[partial_splits(y, test_labels=0.95)["train"]]
    assert np.bincount(most[most >= 0], minlength=3).tolist() == [1, 1, 1]  # a class's last label trains
    legacy = partial_splits(y, test_labels=0.2, test=0.0)  # how runs written before every label trained were split
    assert (y[legacy["test"]] >= 0).all() and len(legacy["test"]) == 3 and (legacy["valid"] == splits["valid"]).all()


@pytest.mark.parametrize("kind", ["npz", "csv", "h5"])
def test_test_labels_spec_option(tmp_path, partial, kind):
    x, y = partial
    spec = write(kind, tmp_path, x, y)
    spec += ("&" if "?" in spec else "?") + "test_labels=0.25"
    data = open_data(spec)
    d = data.dataset
    test = d.y[d.splits["test"]]
    assert np.bincount(test[test >= 0]).tolist() == [3, 3, 3] and d.metadata["test_labels"] == 0.25  # round(0.25 x 12)
    assert data.labeled.num_labeled == 27 and data.test.num_labeled == 9
    for bad in ("1", "-0.1", "nan", "a fifth"):
        with pytest.raises(DataError, match=f"\\?test_labels={bad} should be the share .* at least 0 and below 1"):
            load_dataset(spec.replace("0.25", bad))
    np.savez(tmp_path / "full.npz", x=x, y=np.arange(N) % K)
    with pytest.raises(DataError, match="applies to a partly labeled file, but 'full' labels every row"):
        load_dataset(f"npz:{tmp_path}/full.npz?test_labels=0.2")


def test_selection_hold_out_is_stratified_and_never_takes_a_class_last_label():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2 + [UNLABELED] * 5)
    assert len(hold_out_for_selection(y)) == 0  # a fifth, rounded, is [2, 1, 0]: fewer than 3 a class, so none
    ten = np.array([0] * 10 + [1] * 10 + [2] * 10)
    assert len(hold_out_for_selection(ten)) == 0  # [2, 2, 2]: two a class judge too coarsely to be worth their training
    enough = np.array([0] * 13 + [1] * 15 + [2] * 23 + [UNLABELED] * 5)
    assert np.bincount(enough[hold_out_for_selection(enough)], minlength=3).tolist() == [3, 3, 5]  # a fifth, rounded
    assert np.bincount(y[hold_out_for_selection(y, 7)], minlength=3).tolist() == [4, 2, 1]
    assert len(hold_out_for_selection(y, 0)) == 0
    with pytest.raises(DataError, match="at most 14"):
        hold_out_for_selection(y, 15)


def test_bad_partial_label_files_get_one_clear_line(tmp_path, partial):
    x, y = partial
    np.savez(tmp_path / "none.npz", x=x, y=np.full(N, -1))
    with pytest.raises(DataError, match="every one of the 120 rows .* is unlabeled"):
        load_dataset(f"npz:{tmp_path}/none.npz")
    np.savez(tmp_path / "minus2.npz", x=x, y=np.where(y < 0, -2, y))
    with pytest.raises(DataError, match="include -2, outside the classes"):
        load_dataset(f"npz:{tmp_path}/minus2.npz")
    np.savez(tmp_path / "gap.npz", x=x, y=np.where(y == 1, UNLABELED, y))  # class 1 never labeled
    with pytest.raises(DataError, match="no example has class 1"):
        open_data(f"npz:{tmp_path}/gap.npz")
    spec = write("csv-text", tmp_path, x, y)
    with pytest.raises(DataError, match="'wheat', not among the classes corn, soy"):
        load_dataset(spec + "&classes=corn,soy")
    with pytest.raises(DataError, match="class\\(es\\) 'rye' .* no labeled example"):
        open_data(spec + "&classes=corn,soy,wheat,rye")
    np.savez(tmp_path / "big.npz", x=x, y=y)
    with pytest.raises(DataError, match="include 2, outside the 2 classes"):
        load_dataset(f"npz:{tmp_path}/big.npz?classes=2")


def test_fully_labeled_file_without_labels_option_keeps_its_validation_split(digits):
    data = prepare_data(digits)
    assert data.selection == {"protocol": "all labels", "labels": len(digits.splits["valid"]), "source": "the validation split's labels"}
