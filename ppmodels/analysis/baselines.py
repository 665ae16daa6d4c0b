"""What a user would pick instead of a deep semi-supervised model: scikit-learn classifiers on the same labels.

``svc``              an RBF support vector machine on the labeled training examples alone (the raw features);
``label_spreading``  labels spread over a 10-nearest-neighbour graph of every training example, labeled or not
                     (Zhou et al. 2004), the transductive baseline that uses the unlabeled data as the deep model does.

Both see exactly the labeled examples the model saw (the run's label draw); accuracy is measured on the same split.
If a deep model does not beat these, it did not help.
"""

from __future__ import annotations

import numpy as np
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import SVC

from ..data import UNLABELED, Split, map_rows
from .metrics import balanced_accuracy

BASELINES = ("svc", "label_spreading")
#: label spreading builds a kNN graph over the training data; beyond this many examples it uses every labeled one
#: and a seeded sample of the unlabeled ones (MNIST's 50 000 take ~1 minute and ~2 GB otherwise)
MAX_SPREAD = 20_000


def flat(x) -> np.ndarray:
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return x.reshape(len(x), -1)


def baseline_predictions(train: Split, x_test, names: tuple[str, ...] = BASELINES, max_spread: int | None = MAX_SPREAD,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Predictions on ``x_test`` of each baseline in ``names`` fitted on ``train`` (hidden labels are -1). Label
    spreading uses every labeled example and, beyond ``max_spread`` examples (``None``: no cap), a seeded sample of the
    unlabeled ones."""
    y = train.y.numpy()
    labeled = y != UNLABELED
    keep = np.arange(len(y)) if "label_spreading" in names else np.flatnonzero(labeled)  # the rows a baseline uses
    if "label_spreading" in names and max_spread is not None and len(y) > max_spread:
        rng = np.random.default_rng(seed)
        unlabeled = np.flatnonzero(~labeled)
        keep = np.sort(np.concatenate([np.flatnonzero(labeled), rng.choice(unlabeled, max_spread - labeled.sum(), replace=False)]))
    rows = train.x[keep] if len(keep) < len(y) else train.x[:]  # on disk (LazyRows), only these rows are read
    x, y, labeled = flat(rows), y[keep], labeled[keep]
    predictions = {}
    if "svc" in names:
        svc = SVC(gamma="scale").fit(x[labeled], y[labeled])
        predictions["svc"] = map_rows(lambda xb: svc.predict(flat(xb)), x_test)
    if "label_spreading" in names:
        with np.errstate(invalid="ignore", divide="ignore"):  # a graph component without a label divides 0 by 0
            spreading = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(x, y)
            predictions["label_spreading"] = map_rows(lambda xb: spreading.predict(flat(xb)), x_test)
    return predictions


def baseline_scores(train: Split, test: Split, seed: int = 0) -> dict[str, dict[str, float]]:
    """Accuracy and balanced accuracy on ``test`` of each baseline fitted on ``train`` (hidden labels are -1)."""
    y = train.y.numpy()
    labeled = y != UNLABELED
    if labeled.sum() < 2 or len(np.unique(y[labeled])) < 2:
        return {}
    y_test = test.y.numpy()
    return {name: {"accuracy": float((p == y_test).mean()), "balanced_accuracy": balanced_accuracy(y_test, p)}
            for name, p in baseline_predictions(train, test.x, seed=seed).items()}
