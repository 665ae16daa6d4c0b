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

from ..data import UNLABELED, Split
from .metrics import balanced_accuracy

BASELINES = ("svc", "label_spreading")
#: label spreading builds a kNN graph over the training data; beyond this many examples it uses every labeled one
#: and a seeded sample of the unlabeled ones (MNIST's 50 000 take ~1 minute and ~2 GB otherwise)
MAX_SPREAD = 20_000


def flat(x) -> np.ndarray:
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return x.reshape(len(x), -1)


def baseline_scores(train: Split, test: Split, seed: int = 0) -> dict[str, dict[str, float]]:
    """Accuracy and balanced accuracy on ``test`` of each baseline fitted on ``train`` (hidden labels are -1)."""
    y = train.y.numpy()
    labeled = y != UNLABELED
    if labeled.sum() < 2 or len(np.unique(y[labeled])) < 2:
        return {}
    x, x_test, y_test = flat(train.x), flat(test.x), test.y.numpy()
    keep = np.arange(len(y))
    if len(y) > MAX_SPREAD:
        rng = np.random.default_rng(seed)
        unlabeled = np.flatnonzero(~labeled)
        keep = np.sort(np.concatenate([np.flatnonzero(labeled), rng.choice(unlabeled, MAX_SPREAD - labeled.sum(), replace=False)]))
    predictions = {"svc": SVC(gamma="scale").fit(x[labeled], y[labeled]).predict(x_test)}
    with np.errstate(invalid="ignore", divide="ignore"):  # a graph component without a label divides 0 by 0
        spreading = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(x[keep], y[keep])
        predictions["label_spreading"] = spreading.predict(x_test)
    return {name: {"accuracy": float((p == y_test).mean()), "balanced_accuracy": balanced_accuracy(y_test, p)}
            for name, p in predictions.items()}
