"""The in-memory dataset: arrays, labels, a likelihood hint and standard splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError
from .lazy import LazyRows, take_rows

LIKELIHOODS = ("bernoulli", "gaussian", "binomial:N")  # binomial:N: values k/N, counts of N trials (digits: N = 16)
BINARIZE_MODES = ("none", "threshold", "dynamic")
UNLABELED = -1  # label value of training points whose label is hidden from the model


@dataclass
class Dataset:
    """Arrays ``x`` of shape ``(N, *x_shape)`` (``(N, D)`` or ``(N, C, H, W)`` for images), optional integer labels ``y``.

    :param name: a short name (``digits``, ``mnist``, the file name).
    :param x: float32 array, or :class:`~ppmodels.data.lazy.LazyRows` of an array on disk (read a block at a time).
    :param y: int64 labels in ``0..num_classes-1`` or ``None``.
    :param likelihood: the natural observation model: ``bernoulli`` for values in [0, 1], else ``gaussian``.
    :param splits: index arrays by split name (``train``, ``valid``, ``test``).
    :param class_names: names of the classes, when the source had them.
    :param spec: the data spec this was loaded from (recorded in a run's config).
    :param partly_labeled: ``y`` may hold ``UNLABELED`` (-1) for points that have no label (a scene's background
        pixels); they stay in the training split as unlabeled data.
    """

    name: str
    x: np.ndarray
    y: np.ndarray | None
    likelihood: str
    splits: dict[str, np.ndarray]
    class_names: list[str] | None = None
    spec: str = ""
    binarize: str = "none"
    metadata: dict = field(default_factory=dict)
    partly_labeled: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.x, LazyRows):
            self.x = np.ascontiguousarray(self.x, dtype=np.float32)
        if self.x.ndim > 4:
            raise DataError(f"data {self.name!r} has shape {self.x.shape}, {self.x.ndim} dimensions; give N x D features or N x C x H x W images (reshape it first)")
        if self.x.ndim < 2 or len(self.x) == 0:
            raise DataError(f"data {self.name!r} has shape {self.x.shape}; expected at least one example with one feature (N x D, or N x C x H x W for images)")
        bad = nonfinite_rows(self.x)
        if bad:
            raise DataError(f"data {self.name!r} has NaN or infinite values in {bad} rows; remove or impute them first")
        if self.y is not None:
            self.y = check_labels(self.y, len(self.x), self.name, allow_unlabeled=self.partly_labeled)
        if self.likelihood not in LIKELIHOODS[:2] and binomial_trials(self.likelihood) is None:
            raise DataError(f"unknown likelihood {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}")
        if self.binarize not in BINARIZE_MODES:
            raise DataError(f"unknown binarize mode {self.binarize!r}; use one of {', '.join(BINARIZE_MODES)}")
        if self.binarize != "none" and not in_unit_interval(self.x):
            low, high = value_range(self.x)
            raise DataError(f"binarize={self.binarize} needs values in [0, 1], but {self.name!r} spans [{low:g}, {high:g}]")
        if self.binarize != "none":  # binary pixels: a Bernoulli likelihood whatever the grey levels were
            self.likelihood = "bernoulli"
        if self.binarize == "threshold" and isinstance(self.x, LazyRows):
            self.x = self.x.with_transform(lambda t: (t > 0.5).float(), bounds=(0.0, 1.0))
        elif self.binarize == "threshold":
            self.x = (self.x > 0.5).astype(np.float32)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def num_classes(self) -> int | None:
        if self.y is None:
            return None
        return len(self.class_names) if self.class_names else int(self.y.max()) + 1

    def split(self, name: str) -> "Split":
        """The split ``name`` as torch tensors (all labels visible); on-disk rows stay on disk (a view by index)."""
        if name not in self.splits:
            raise DataError(f"data {self.name!r} has no split {name!r}; it has {', '.join(self.splits)}")
        idx = self.splits[name]
        y = None if self.y is None else torch.from_numpy(self.y[idx])
        x = self.x.subset(idx) if isinstance(self.x, LazyRows) else torch.from_numpy(self.x[idx])
        return Split(name, x, y, binarize=self.binarize)


def in_unit_interval(x: np.ndarray | torch.Tensor | LazyRows) -> bool:
    """Whether every value lies in [0, 1] (rows on disk: one streaming pass, or none when their bounds say so)."""
    if isinstance(x, LazyRows):
        return x.in_unit_interval()
    return bool((x >= 0).all() and (x <= 1).all())


def nonfinite_rows(x: np.ndarray | LazyRows) -> int:
    """How many rows hold a NaN or an infinite value."""
    if isinstance(x, LazyRows):
        return x.stats().nonfinite_rows
    if np.isfinite(x).all():
        return 0
    return int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())


def value_range(x: np.ndarray | LazyRows) -> tuple[float, float]:
    if isinstance(x, LazyRows):
        stats = x.stats()
        return stats.low, stats.high
    return float(x.min()), float(x.max())


def check_labels(y: np.ndarray, n: int, name: str, allow_unlabeled: bool = False) -> np.ndarray:
    """``y`` as int64 class labels, after checking there is one per example and each is a whole number >= 0
    (or ``UNLABELED`` when ``allow_unlabeled``)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"labels of {name!r} have shape {y.shape}; expected ({n},), one label per example")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"labels of {name!r} are not whole numbers; give integer class labels 0..K-1")
    elif y.dtype.kind not in "iub":
        raise DataError(f"labels of {name!r} have type {y.dtype}; give integer class labels 0..K-1")
    y = y.astype(np.int64)
    if (y < (UNLABELED if allow_unlabeled else 0)).any():
        hint = " (-1 marks a row without a label)" if allow_unlabeled else ""
        raise DataError(f"labels of {name!r} include {int(y.min())}, outside the classes 0..K-1{hint}; give class labels 0..K-1")
    given = y[y >= 0]
    if len(y) and not len(given):
        raise DataError(f"every one of the {len(y)} rows of {name!r} is unlabeled (-1, NaN or blank); label at least one example of each class, "
                        f"or leave the labels out to train without them")
    used, top = len(np.unique(given)), int(given.max()) if len(given) else 0
    if top + 1 > 2 * used:  # 1-based labels pass here (training refuses their empty class 0); codes like 0, 1000, 2000 would make thousands of empty classes
        raise DataError(f"labels of {name!r} use {used} distinct values but run up to {top}, so most classes would have no examples; "
                        f"relabel them 0..K-1 (e.g. np.unique(y, return_inverse=True)[1])")
    return y


def check_classes_used(dataset: "Dataset") -> None:
    """Refuse training labels that leave a class of ``0..K-1`` without examples: 1-based labels (1..10 would make an
    11-class model whose class 0 is empty) or labels with gaps. Evaluation data may lack classes; training data may not."""
    if dataset.y is None:
        return
    counts = np.bincount(dataset.y[dataset.y >= 0], minlength=dataset.num_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty) and dataset.class_names:  # named classes (a text column, ?classes=): one has no labeled row
        names = ", ".join(repr(dataset.class_names[c]) for c in empty[:5])
        raise DataError(f"class(es) {names} of {dataset.name!r} have no labeled example, so the model could not learn them; "
                        f"label at least one row of each class, or leave the class out")
    labeled = int(counts.sum())
    if labeled == len(dataset.y) and len(counts) > 1 and len(counts) > labeled / 2:  # fully labeled, e.g. row ids given as labels
        raise DataError(f"labels of {dataset.name!r} put {labeled} examples in {len(counts)} classes, {int((counts == 1).sum())} of them with "
                        f"a single example, so there is nothing to learn a class from (are they row ids?); give class labels 0..K-1 "
                        f"with several examples of each class")
    if len(empty):
        used = np.flatnonzero(counts)
        shown = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        hint = "y - 1" if used[0] == 1 and len(empty) == 1 else "np.unique(y, return_inverse=True)[1]"
        raise DataError(f"labels of {dataset.name!r} run {used[0]}..{used[-1]} but no example has class {shown}, so the model would have "
                        f"empty classes; relabel them 0..K-1 (e.g. {hint})")


@dataclass
class Split:
    """One split as torch tensors, what models and the trainer consume.

    ``y`` holds ``UNLABELED`` (-1) where a training label is hidden from the model (semi-supervised training).
    """

    name: str
    x: torch.Tensor | LazyRows
    y: torch.Tensor | None = None
    binarize: str = "none"

    def __len__(self) -> int:
        return len(self.x)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def labeled(self) -> torch.Tensor:
        """Boolean mask of the examples whose label the model may see."""
        if self.y is None:
            return torch.zeros(len(self.x), dtype=torch.bool)
        return self.y >= 0

    @property
    def num_labeled(self) -> int:
        return int(self.labeled.sum())

    def subset(self, idx) -> "Split":
        """The examples ``idx`` (indices or a boolean mask); rows on disk stay there (a view)."""
        idx = torch.as_tensor(idx)
        idx = idx.nonzero().flatten() if idx.dtype == torch.bool else idx.long()
        return Split(self.name, take_rows(self.x, idx), None if self.y is None else self.y[idx], self.binarize)

    def epoch_x(self, generator: torch.Generator | None = None) -> torch.Tensor | LazyRows:
        """The inputs for one training epoch: resampled binary pixels under dynamic binarization, else ``x``.
        Rows on disk are resampled as they are read."""
        if self.binarize == "dynamic" and isinstance(self.x, LazyRows):
            return self.x.with_transform(lambda t: torch.bernoulli(t, generator=generator), bounds=(0.0, 1.0))
        if self.binarize == "dynamic":
            return torch.bernoulli(self.x, generator=generator)
        return self.x


def binomial_trials(likelihood: str) -> int | None:
    """N of ``binomial:N`` (x = k/N with k ~ Binomial(N, p), e.g. digits pixels, counts of 16 bits); else ``None``."""
    family, _, trials = likelihood.partition(":")
    return int(trials) if family == "binomial" and trials.isdigit() and int(trials) >= 1 else None
