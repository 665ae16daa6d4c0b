"""The data layer: every model and command gets its data here.

:func:`load_dataset` opens a spec (``digits``, ``mnist``, ``npz:PATH``, ...) as a :class:`Dataset`;
:func:`prepare_data` turns it into the train/valid/test :class:`Split` tensors a model trains on,
with labels hidden except for a class-balanced few when ``num_labels`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import torch

from ..errors import DataError
from . import cubes, scenes  # noqa: F401  (register the image-cube sources cube:, mat: and the public scenes)
from .cubes import class_numbers, open_cube, to_xarray, write_netcdf
from .dataset import BINARIZE_MODES, LIKELIHOODS, UNLABELED, Dataset, Split, binomial_trials, check_classes_used, in_unit_interval
from .lazy import LazyRows, block_shuffled_order, map_rows, row_moments, sample_rows, shuffled_batches, take_rows
from .sources import from_arrays, from_disk, known_kinds, open_source, parse_spec, register_source, source_options
from .splits import LEGACY_MIN_SELECTION_PER_CLASS, LEGACY_TEST_LABELS, MIN_SELECTION_PER_CLASS, SELECTION_SHARE, cap_per_class, draw_labeled, hide_labels, hold_out_for_selection, partial_splits, stratified_splits

__all__ = [
    "BINARIZE_MODES", "LEGACY_MIN_SELECTION_PER_CLASS", "LIKELIHOODS", "MIN_SELECTION_PER_CLASS", "PROTOCOLS", "SELECTION_SHARE", "UNLABELED", "Dataset", "LazyRows", "Split", "TrainData", "binomial_trials",
    "check_classes_used", "class_numbers", "open_cube", "to_xarray", "write_netcdf",
    "block_shuffled_order", "cap_per_class", "draw_labeled", "hold_out_for_selection", "partial_splits", "from_arrays", "from_disk", "hide_labels", "in_unit_interval",
    "known_kinds", "load_dataset", "map_rows", "parse_spec", "prepare_data", "open_data", "register_source", "row_moments",
    "sample_rows", "select_split", "shuffled_batches", "source_options", "stratified_splits", "take_rows",
]


def load_dataset(spec: str, data_dir: str | None = None, download: bool = False, binarize: str = "none",
                 max_per_class: int | None = None, seed: int = 0, *, legacy_split: bool = False) -> Dataset:
    """Open the data named by ``spec``.

    :param spec: ``digits``, ``mnist``, ``npz:PATH``, ``npy:PATH``, ``csv:PATH?label=COL``, ``h5:PATH``,
        ``zarr:PATH`` or a path (``npy``, ``h5`` and ``zarr`` stay on disk and are read a block at a time); image
        cubes ``cube:PATH`` (netCDF or zarr) and ``mat:PATH`` (MATLAB), a public scene (``indian_pines``).
    :param data_dir: where to look for files first (MNIST).
    :param download: allow downloading missing files (checksummed, cached).
    :param binarize: ``none``, ``threshold`` (x > 0.5) or ``dynamic`` (Bernoulli resampling each epoch).
    :param max_per_class: keep at most this many examples of each class in the training split.
    :param seed: seed of the per-class cap.
    :param legacy_split: split a partly labeled file as runs written before every given label trained did (a fifth
        of each class's labels to test, no unlabeled row; their config.json records no ``test_labels``).
    """
    dataset = open_source(spec, data_dir=data_dir, download=download)
    if legacy_split and "test_labels" in dataset.metadata:
        dataset.splits = partial_splits(dataset.y, test_labels=LEGACY_TEST_LABELS, test=0.0)
        dataset.metadata["test_labels"] = LEGACY_TEST_LABELS
    if binarize != "none":
        dataset.binarize = binarize
        dataset.__post_init__()
    if max_per_class is not None:
        if dataset.y is None:
            raise DataError("--max-per-class needs labeled data; the data has no labels")
        dataset.splits["train"] = cap_per_class(dataset.splits["train"], dataset.y, max_per_class, seed)
    return dataset


#: how the labels that choose the kept epoch are found: ``budget`` (only labels inside the label budget) or ``paper``
#: (the validation split's labels, as Kingma et al. 2014 did with MNIST's 10,000 labeled validation images)
PROTOCOLS = ("budget", "paper")


@dataclass
class TrainData:
    """What a model trains on: the training split (labels hidden except the chosen few) and held-out splits.

    :param labeled: the training split with every label of the budget visible, those held out for selection too:
        what the baselines fit on (``None``: ``train``).
    :param selection: how many labels choose the kept epoch and where they come from (recorded in summary.json).
    """

    dataset: Dataset
    train: Split
    valid: Split | None
    test: Split | None
    labeled: Split | None = None
    selection: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        return self.dataset.num_classes

    def label_counts(self) -> dict:
        """Training labels per class, selection labels per class (in ``valid``) and unlabeled training rows."""
        k = self.num_classes or 0
        counts = {"unlabeled": len(self.train) - self.train.num_labeled}
        for name, split in (("labeled_per_class", self.train), ("selection_per_class", self.valid)):
            y = np.zeros(0, dtype=np.int64) if split is None or split.y is None else split.y.numpy()
            counts[name] = np.bincount(y[y >= 0], minlength=k).tolist()
        return counts


def prepare_data(dataset: Dataset, num_labels: int | None = None, seed: int = 0, *, protocol: str = "budget",
                 valid_labels: int | None = None, valid_data: Dataset | None = None,
                 min_selection_per_class: int = MIN_SELECTION_PER_CLASS) -> TrainData:
    """Tensors for training: ``num_labels`` class-balanced labels visible (``None``: all), the rest hidden.

    When labels are few (``num_labels`` given, or a partly labeled file) the ``budget`` protocol keeps selection
    within them: ``valid_labels`` of the budget's labels (``None``: a fifth of each class's, rounded, when that gives
    every class at least ``min_selection_per_class``, else none; ``0``: none; with none the kept epoch is chosen by the validation ELBO) are held out of training, stratified, and become the labeled
    part of ``valid``; the validation split's own rows stay in ``valid`` with their labels hidden (their ELBO
    still counts). ``paper`` keeps the validation split's labels (outside the budget, as Kingma et al.). With every
    label given, the validation split is the user's own and keeps its labels. ``valid_data``: a validation file
    given by the user, used whole (every row, labels visible) and nothing is held out.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown selection protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if valid_labels is not None and (isinstance(valid_labels, bool) or not isinstance(valid_labels, (int, np.integer)) or valid_labels < 0):
        raise DataError(f"--valid-labels must be a whole number of at least 0, got {valid_labels!r}")
    labeled = hide_labels(dataset.split("train"), num_labels, dataset.num_classes, seed)
    test = dataset.split("test") if len(dataset.splits.get("test", ())) else None
    few = labeled.y is not None and (num_labels is not None or bool((labeled.y == UNLABELED).any()))
    if valid_data is not None:
        valid = _whole_file(valid_data, dataset)
        selection = {"protocol": "valid file", "labels": valid.num_labeled, "source": f"every row of the validation file {valid_data.spec}"}
        return TrainData(dataset, labeled, valid, test, labeled, selection)
    own_valid = dataset.split("valid") if len(dataset.splits.get("valid", ())) else None
    if protocol == "paper" or not few or valid_labels == 0:
        valid = own_valid
        if few and protocol == "budget":  # --valid-labels 0: no label chooses the epoch; the split's labels stay hidden
            valid = None if valid is None else Split("valid", valid.x, None if valid.y is None else torch.full_like(valid.y, UNLABELED), valid.binarize)
        used = 0 if valid is None else valid.num_labeled
        source = ("the validation split's labels, outside the label budget" if few else "the validation split's labels") if used else \
            "no labels: the validation ELBO of unlabeled rows"
        return TrainData(dataset, labeled, valid, test, labeled, {"protocol": protocol if few else "all labels", "labels": used, "source": source})
    held = hold_out_for_selection(labeled.y.numpy(), valid_labels, seed, min_selection_per_class)
    train_y = labeled.y.clone()
    train_y[torch.from_numpy(held)] = UNLABELED
    train = Split(labeled.name, labeled.x, train_y, labeled.binarize)
    rows = np.concatenate([dataset.splits.get("valid", np.zeros(0, np.int64)), dataset.splits["train"][held]])
    y = np.concatenate([np.full(len(rows) - len(held), UNLABELED), labeled.y.numpy()[held]])
    order = np.argsort(rows, kind="stable")
    valid = _rows(dataset, rows[order], y[order]) if len(rows) else None
    hidden = "the validation split's labels stay hidden" if own_valid is not None and own_valid.num_labeled else "the validation split has no labels"
    source = (f"held out (stratified) of the {labeled.num_labeled} labels of the budget, which leaves {train.num_labeled} to train on; "
              f"{hidden}") if len(held) else "no labels: the validation ELBO of unlabeled rows"
    return TrainData(dataset, train, valid, test, labeled, {"protocol": "budget", "labels": int(len(held)), "source": source})


def _rows(dataset: Dataset, idx: np.ndarray, y: np.ndarray) -> Split:
    x = dataset.x.subset(idx) if isinstance(dataset.x, LazyRows) else torch.from_numpy(dataset.x[idx])
    return Split("valid", x, torch.from_numpy(y.astype(np.int64)), binarize=dataset.binarize)


def _whole_file(valid: Dataset, dataset: Dataset) -> Split:
    """Every row of a user's validation file, checked against the training data (shape and classes)."""
    if valid.x_shape != dataset.x_shape:
        raise DataError(f"the validation file {valid.spec} has examples of shape {valid.x_shape}, the training data {dataset.x_shape}; give one of the same kind")
    if valid.y is None or not (valid.y >= 0).any():
        raise DataError(f"the validation file {valid.spec} has no labels; give a labeled file (or leave out --valid-data)")
    if valid.class_names != dataset.class_names and (valid.class_names or dataset.class_names):
        known = set(dataset.class_names or [])
        unknown = [c for c in (valid.class_names or []) if c not in known]
        if unknown or not valid.class_names or not dataset.class_names:
            raise DataError(f"the validation file {valid.spec} has classes {unknown or valid.class_names} that the training data does not; use the same class names")
        index = {c: i for i, c in enumerate(dataset.class_names)}  # the training data's class numbers
        remap = np.array([index[c] for c in valid.class_names])
        y = np.where(valid.y >= 0, remap[np.maximum(valid.y, 0)], UNLABELED)
    else:
        y = valid.y
        if dataset.num_classes is not None and y.max() >= dataset.num_classes:
            raise DataError(f"the validation file {valid.spec} has label {int(y.max())}, outside the training data's classes 0..{dataset.num_classes - 1}")
    return _rows(valid, np.arange(len(valid.x)), y)


def open_data(spec: str, data_dir: str | None = None, download: bool = False, labels: int | None = None, binarize: str = "none",
              max_per_class: int | None = None, seed: int = 0, *, protocol: str = "budget", valid_labels: int | None = None,
              valid_data: str | None = None, legacy_split: bool = False, min_selection_per_class: int = MIN_SELECTION_PER_CLASS) -> TrainData:
    """Load a dataset to train on (every class 0..K-1 must have examples) and hide all but ``labels`` class-balanced
    training labels (``None`` keeps them all); selection as :func:`prepare_data` (``valid_data``: a spec, opened
    binarized as the training data; ``legacy_split``: as :func:`load_dataset`)."""
    dataset = load_dataset(spec, data_dir=data_dir, download=download, binarize=binarize, max_per_class=max_per_class, seed=seed,
                           legacy_split=legacy_split)
    check_classes_used(dataset)
    valid = None if valid_data is None else load_dataset(valid_data, data_dir=data_dir, download=download, binarize=binarize)
    return prepare_data(dataset, labels, seed=seed, protocol=protocol, valid_labels=valid_labels, valid_data=valid,
                        min_selection_per_class=min_selection_per_class)


def select_split(dataset: Dataset, split: str) -> tuple[torch.Tensor | LazyRows, torch.Tensor | None]:
    """``x`` and ``y`` of one split, or of the whole dataset for ``split='all'`` (rows on disk stay there)."""
    if split == "all":
        x = dataset.x if isinstance(dataset.x, LazyRows) else torch.from_numpy(dataset.x)
        return x, None if dataset.y is None else torch.from_numpy(dataset.y)
    part = dataset.split(split)
    return part.x, part.y
