"""Data with one class at 90%: digits (the majority-class-collapse checks of the tests and ``benchmarks/semisupervised.py
--dataset digits90``) and the photometric table of :mod:`benchmarks.tabular` with stars at 90% of the rows and of the
labels (``--dataset tabular90``)."""

from __future__ import annotations

import numpy as np

from ppmodels.data import Dataset, from_arrays


def imbalanced_digits(majority: int = 0, minority_size: int = 20, seed: int = 0, likelihood: str = "binomial:16") -> Dataset:
    """The majority class's 178 images in all nine one-pixel shifts (1602 images) and 20 images of each other class
    (180): class ``majority`` holds 90%. Grey levels 0..16 scaled to [0, 1] (hinted ``binomial:16`` by default),
    stratified 70/10/20 splits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = (bunch.images / 16.0).astype(np.float32), bunch.target
    rng = np.random.default_rng(seed)
    big = x[y == majority]
    xs = [np.roll(big, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    ys = [np.full(len(big) * len(xs), majority)]
    for c in sorted(set(range(10)) - {majority}):
        xs.append(x[rng.choice(np.flatnonzero(y == c), minority_size, replace=False)])
        ys.append(np.full(minority_size, c))
    return from_arrays("digits90", np.concatenate(xs)[:, None], np.concatenate(ys), likelihood=likelihood)


def imbalanced_tabular(folder, num_labels: int = 100, seed: int = 0, rows: int = 5000, majority_share: float = 0.9):
    """The photometric table of :mod:`benchmarks.tabular` with ``star`` at ``majority_share`` of the rows and of the
    labels: of ``num_labels`` labels written into ``train.csv``, ``round(majority_share * num_labels)`` are stars and
    the rest are shared out over the other classes (at least 2 each, so that cross-validation can tune the baselines),
    as labels drawn from such data would come. Returns the dataset of :func:`benchmarks.tabular.tabular_dataset`."""
    from benchmarks.tabular import CLASSES, tabular_dataset, write_tabular

    others = len(CLASSES) - 1
    shares = (majority_share,) + ((1 - majority_share) / others,) * others
    rest = max(2 * others, num_labels - round(majority_share * num_labels))
    labels = {0: num_labels - rest, **{c: rest // others + (c <= rest % others) for c in range(1, others + 1)}}
    write_tabular(folder, rows, rows, labels, seed, shares)
    return tabular_dataset(folder, name="tabular90", seed=seed)
