import gzip

import numpy as np
import pytest
import torch

from ppmodels.data import UNLABELED, cap_per_class, draw_labeled, load_dataset, parse_spec, prepare_data
from ppmodels.data import mnist as mnist_source
from ppmodels.errors import DataError, DataNotFoundError
from tests.helpers import assert_close_scaled


def test_digits_is_builtin_scaled_and_split(digits):
    assert digits.x.shape == (1797, 1, 8, 8)
    assert digits.x.min() == 0 and digits.x.max() == 1
    assert digits.likelihood == "binomial:16" and digits.num_classes == 10  # pixels are counts of 16
    parts = [digits.splits[k] for k in ("train", "valid", "test")]
    assert sum(map(len, parts)) == 1797
    assert len(np.intersect1d(parts[0], parts[2])) == 0
    # stratified: every class appears in the test split in roughly its overall proportion
    counts = np.bincount(digits.y[digits.splits["test"]], minlength=10)
    assert counts.min() >= 30


def test_digits_split_is_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert all((a.splits[k] == b.splits[k]).all() for k in a.splits)


def test_labels_are_class_balanced_and_seeded(digits):
    y = digits.y[digits.splits["train"]]
    idx = draw_labeled(y, 50, 10, seed=3)
    assert np.bincount(y[idx], minlength=10).tolist() == [5] * 10
    assert (idx == draw_labeled(y, 50, 10, seed=3)).all()
    assert not (idx == draw_labeled(y, 50, 10, seed=4)).all()
    uneven = draw_labeled(y, 23, 10, seed=0)
    assert sorted(np.bincount(y[uneven], minlength=10).tolist()) == [2] * 7 + [3] * 3


def test_prepare_data_hides_all_but_the_chosen_labels(digits):
    data = prepare_data(digits, num_labels=20, seed=0)
    assert data.labeled.num_labeled == 20  # the budget: 16 to train on, 4 (a fifth of each class's 2, rounded: 0) ...
    assert data.train.num_labeled + data.valid.num_labeled == 20 and data.selection["labels"] == data.valid.num_labeled
    assert (data.train.y[~data.train.labeled] == UNLABELED).all()
    assert data.test.y.min() >= 0  # held-out labels stay visible for evaluation
    paper = prepare_data(digits, num_labels=20, seed=0, protocol="paper")
    assert paper.train.num_labeled == 20 and paper.valid.num_labeled == len(digits.splits["valid"])


@pytest.mark.parametrize("num_labels, message", [(5, "fewer than one per class"), (10_000, "more than")])
def test_bad_label_counts_are_refused(digits, num_labels, message):
    with pytest.raises(DataError, match=message):
        prepare_data(digits, num_labels=num_labels)


def test_cap_per_class():
    y = np.array([0] * 90 + [1] * 10)
    kept = cap_per_class(np.arange(100), y, cap=20)
    assert np.bincount(y[kept]).tolist() == [20, 10]


def test_binarize_modes():
    fixed = load_dataset("digits", binarize="threshold")
    assert set(np.unique(fixed.x)) <= {0.0, 1.0}
    dynamic = load_dataset("digits", binarize="dynamic")
    split = dynamic.split("train")
    a, b = split.epoch_x(torch.Generator().manual_seed(0)), split.epoch_x(torch.Generator().manual_seed(1))
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)
    # the resampled pixels are unbiased: their mean matches the grey values
    assert abs(float(a.mean()) - float(split.x.mean())) < 0.01


def test_npz_csv_npy_h5_sources(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.save(tmp_path / "a.npy", x)
    header = "f0,f1,f2,f3,label"
    np.savetxt(tmp_path / "a.csv", np.column_stack([x, y]), delimiter=",", header=header, comments="")
    import h5py

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"], f["y"] = x, y
    for spec in (f"npz:{tmp_path}/a.npz", f"{tmp_path}/a.npz", f"csv:{tmp_path}/a.csv?label=label", f"h5:{tmp_path}/a.h5"):
        d = load_dataset(spec)
        assert_close_scaled(np.sort(d.x, axis=0), np.sort(x, axis=0), rel=1e-6, what=spec)
        assert d.likelihood == "gaussian" and d.num_classes == 3
    assert load_dataset(f"npy:{tmp_path}/a.npy").y is None


def test_csv_text_labels_become_classes(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("a,b,kind\n0.1,0.2,star\n0.3,0.1,galaxy\n0.2,0.2,star\n0.5,0.9,qso\n0.4,0.4,galaxy\n0.1,0.9,qso\n")
    d = load_dataset(f"csv:{path}?label=kind")
    assert d.class_names == ["galaxy", "qso", "star"] and d.y.tolist() == [2, 0, 2, 1, 0, 1]


@pytest.mark.parametrize("content, message", [
    ("a,b\n1,x\n2,3\n", "text in numeric column"),
    ("a,b\n", "no rows"),
    ("", "empty"),
])
def test_bad_csv(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(f"csv:{path}")


def test_nan_and_bad_labels_are_refused(tmp_path):
    x = np.ones((10, 3))
    x[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    with pytest.raises(DataError, match="NaN"):
        load_dataset(f"npz:{tmp_path}/nan.npz")
    np.savez(tmp_path / "lab.npz", x=np.ones((4, 3)), y=np.array([0.5, 1, 1, 0]))
    with pytest.raises(DataError, match="whole numbers"):
        load_dataset(f"npz:{tmp_path}/lab.npz")


def test_unknown_spec_and_missing_file():
    with pytest.raises(DataError, match="unknown data spec"):
        parse_spec("imagenet")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset("npz:/no/such/file.npz")


def test_mnist_missing_files_name_the_files_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("PPMODELS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", data_dir=str(tmp_path / "given"))
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "given" in message and "env" in message and "--download" in message


def test_idx_reader_rejects_truncated_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write((0x0801).to_bytes(4, "big") + (100).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DataError, match="truncated"):
        mnist_source.read_idx(path)


def test_mnist_standard_split(mnist_dir):
    d = load_dataset("mnist", data_dir=mnist_dir)
    assert d.x.shape == (70_000, 1, 28, 28)
    assert [len(d.splits[k]) for k in ("train", "valid", "test")] == [50_000, 10_000, 10_000]
    assert np.bincount(d.y[d.splits["test"]]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
