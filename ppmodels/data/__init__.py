"""The data layer: every model and command gets its data here.

:func:`load_dataset` opens a spec (``digits``, ``mnist``, ``npz:PATH``, ...) as a :class:`Dataset`;
:func:`prepare_data` turns it into the train/valid/test :class:`Split` tensors a model trains on,
with labels hidden except for a class-balanced few when ``num_labels`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DataError
from . import cubes, scenes  # noqa: F401  (register the image-cube sources cube:, mat: and the public scenes)
from .cubes import class_numbers, open_cube, to_xarray, write_netcdf
from .dataset import BINARIZE_MODES, LIKELIHOODS, UNLABELED, Dataset, Split, binomial_trials, check_classes_used, in_unit_interval
from .lazy import LazyRows, block_shuffled_order, map_rows, row_moments, sample_rows, shuffled_batches, take_rows
from .sources import from_arrays, from_disk, known_kinds, open_source, parse_spec, register_source
from .splits import cap_per_class, draw_labeled, hide_labels, stratified_splits

__all__ = [
    "BINARIZE_MODES", "LIKELIHOODS", "UNLABELED", "Dataset", "LazyRows", "Split", "TrainData", "binomial_trials",
    "check_classes_used", "class_numbers", "open_cube", "to_xarray", "write_netcdf",
    "block_shuffled_order", "cap_per_class", "draw_labeled", "from_arrays", "from_disk", "hide_labels", "in_unit_interval",
    "known_kinds", "load_dataset", "map_rows", "parse_spec", "prepare_data", "open_data", "register_source", "row_moments",
    "sample_rows", "select_split", "shuffled_batches", "stratified_splits", "take_rows",
]


def load_dataset(spec: str, data_dir: str | None = None, download: bool = False, binarize: str = "none",
                 max_per_class: int | None = None, seed: int = 0) -> Dataset:
    """Open the data named by ``spec``.

    :param spec: ``digits``, ``mnist``, ``npz:PATH``, ``npy:PATH``, ``csv:PATH?label=COL``, ``h5:PATH``,
        ``zarr:PATH`` or a path (``npy``, ``h5`` and ``zarr`` stay on disk and are read a block at a time); image
        cubes ``cube:PATH`` (netCDF or zarr) and ``mat:PATH`` (MATLAB), a public scene (``indian_pines``).
    :param data_dir: where to look for files first (MNIST).
    :param download: allow downloading missing files (checksummed, cached).
    :param binarize: ``none``, ``threshold`` (x > 0.5) or ``dynamic`` (Bernoulli resampling each epoch).
    :param max_per_class: keep at most this many examples of each class in the training split.
    :param seed: seed of the per-class cap.
    """
    dataset = open_source(spec, data_dir=data_dir, download=download)
    if binarize != "none":
        dataset.binarize = binarize
        dataset.__post_init__()
    if max_per_class is not None:
        if dataset.y is None:
            raise DataError("--max-per-class needs labeled data; the data has no labels")
        dataset.splits["train"] = cap_per_class(dataset.splits["train"], dataset.y, max_per_class, seed)
    return dataset


@dataclass
class TrainData:
    """What a model trains on: the training split (labels hidden except the chosen few) and held-out splits."""

    dataset: Dataset
    train: Split
    valid: Split | None
    test: Split | None

    @property
    def num_classes(self) -> int | None:
        return self.dataset.num_classes


def prepare_data(dataset: Dataset, num_labels: int | None = None, seed: int = 0) -> TrainData:
    """Tensors for training: ``num_labels`` class-balanced labels visible (``None``: all), the rest hidden."""
    train = hide_labels(dataset.split("train"), num_labels, dataset.num_classes, seed)
    held_out = {name: dataset.split(name) if name in dataset.splits and len(dataset.splits[name]) else None for name in ("valid", "test")}
    return TrainData(dataset, train, held_out["valid"], held_out["test"])


def open_data(spec: str, data_dir: str | None = None, download: bool = False, labels: int | None = None, binarize: str = "none",
              max_per_class: int | None = None, seed: int = 0) -> TrainData:
    """Load a dataset to train on (every class 0..K-1 must have examples) and hide all but ``labels`` class-balanced
    training labels (``None`` keeps them all)."""
    dataset = load_dataset(spec, data_dir=data_dir, download=download, binarize=binarize, max_per_class=max_per_class, seed=seed)
    check_classes_used(dataset)
    return prepare_data(dataset, labels, seed=seed)


def select_split(dataset: Dataset, split: str) -> tuple[torch.Tensor | LazyRows, torch.Tensor | None]:
    """``x`` and ``y`` of one split, or of the whole dataset for ``split='all'`` (rows on disk stay there)."""
    if split == "all":
        x = dataset.x if isinstance(dataset.x, LazyRows) else torch.from_numpy(dataset.x)
        return x, None if dataset.y is None else torch.from_numpy(dataset.y)
    part = dataset.split(split)
    return part.x, part.y
