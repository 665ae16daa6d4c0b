"""Scores of predictions: balanced accuracy, per-class recall and collapse warnings (honest on imbalanced labels),
unsupervised clustering accuracy and the out-of-distribution AUROC.

Plain accuracy rewards a classifier that predicts the majority class everywhere: with 90% of the labels in one class
it scores 0.9 while knowing nothing (the failure of a hyperspectral M1/M2 student project). Balanced accuracy, the
mean of the per-class recalls, scores that classifier 1/K. These are plain functions of label arrays, for
``ppmodels evaluate``, the training summary and user code alike.

Example::

    y_test, predicted = [0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 0, 0]    # or model.predict(x_test)
    report = classification_report(y_test, predicted)
    report["balanced_accuracy"], report["per_class_recall"]
    for line in report["warnings"]:
        print("WARNING:", line)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import DataError


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape or not len(y_true):
        raise DataError(f"need as many predictions as labels, at least one; got {len(y_pred)} predictions for {len(y_true)} labels")
    y_true, y_pred = y_true.astype(np.int64), y_pred.astype(np.int64)
    if min(y_true.min(), y_pred.min()) < 0:
        raise DataError("labels and predictions must be class numbers 0..K-1; drop the hidden (-1) labels first")
    return y_true, y_pred


def per_class_recall(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Recall of each class ``0..K-1``: the fraction of its examples predicted as it (NaN for a class with no examples)."""
    y_true, y_pred = _labels(y_true, y_pred)
    k = max(num_classes or 0, int(y_true.max()) + 1, int(y_pred.max()) + 1)
    return recall_from_counts(np.bincount(y_true[y_true == y_pred], minlength=k), np.bincount(y_true, minlength=k))


def recall_from_counts(hits, support) -> np.ndarray:
    """Per-class recall from each class's right predictions ``hits`` and examples ``support`` (NaN for a class with
    none): the one formula, also for the trainer, whose counts are summed over processes before it is applied."""
    hits, support = np.asarray(hits, dtype=np.float64), np.asarray(support, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / np.maximum(support, 1), np.nan)


def balanced_accuracy(y_true, y_pred) -> float:
    """The mean recall over the classes present in ``y_true``: 1/K for a classifier that predicts one class everywhere."""
    return float(np.nanmean(per_class_recall(y_true, y_pred)))


def balanced_from_counts(hits, support) -> float:
    """:func:`balanced_accuracy` from per-class counts (see :func:`recall_from_counts`)."""
    return float(np.nanmean(recall_from_counts(hits, support)))


def majority_rate(y_true) -> tuple[int, float]:
    """The most frequent class and its share: the accuracy of always predicting it."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64).ravel())
    return int(counts.argmax()), float(counts.max() / counts.sum())


#: what to try against a collapsed classifier, when the model has no remedy of its own (``PPModel.imbalance_remedy``)
REMEDY = "--max-per-class or class-balanced labels (--labels)"
#: what to try when a class holding most of the examples is mostly called other classes (the opposite of a collapse),
#: when the model has no remedy of its own (``PPModel.dispersal_remedy``)
DISPERSAL_REMEDY = "labels in the data's own class shares (class-balanced labels, as --labels draws them, present the classes as equally common)"
#: a class holding more than this share of the examples must keep this much of its recall, or :func:`collapse_warnings` says so
MAJORITY_SHARE, MAJORITY_RECALL = 0.5, 0.8


def collapse_warnings(y_true, y_pred, remedy: str | None = None, dispersal_remedy: str | None = None) -> list[str]:
    """One sentence per sign that the classifier learned the label frequencies rather than the classes.

    - accuracy no better than always predicting the majority class (when there are two or more classes);
    - predictions collapse onto one class: it is predicted for more than half of the examples of the other classes,
      with ``remedy`` (the options of the model that counter it) as the fix;
    - the opposite: a class with more than half of the examples is predicted for less than 80% of its own, the rest
      called rarer classes (M2 with a uniform p(y) on data where one class is 90%), with ``dispersal_remedy``.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    warnings = []
    accuracy, balanced = float((y_true == y_pred).mean()), balanced_accuracy(y_true, y_pred)
    majority, rate = majority_rate(y_true)
    if len(np.unique(y_true)) > 1 and accuracy <= rate:
        warnings.append(f"accuracy {accuracy:.3f} is no better than always predicting the majority class {majority} "
                        f"({rate:.3f} of the examples); judge the model by balanced accuracy ({balanced:.3f}) instead")
    top = int(np.bincount(y_pred).argmax())
    others = y_true != top
    if others.any() and (y_pred[others] == top).mean() > 0.5:
        warnings.append(f"predictions collapse onto class {top}: it is predicted for {(y_pred == top).mean():.0%} of the examples, "
                        f"including {(y_pred[others] == top).mean():.0%} of those of other classes; try {remedy or REMEDY}")
    kept = float(per_class_recall(y_true, y_pred)[majority])
    if rate > MAJORITY_SHARE and kept < MAJORITY_RECALL:
        warnings.append(f"the majority class {majority} ({rate:.0%} of the examples) is predicted for only {kept:.0%} of its own "
                        f"examples, the rest called rarer classes; try {dispersal_remedy or DISPERSAL_REMEDY}")
    return warnings


def classification_report(y_true, y_pred, num_classes: int | None = None, remedy: str | None = None,
                          dispersal_remedy: str | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall, the majority-class rate and :func:`collapse_warnings`, JSON-ready."""
    y_true, y_pred = _labels(y_true, y_pred)
    recall = per_class_recall(y_true, y_pred, num_classes)
    majority, rate = majority_rate(y_true)
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "per_class_recall": [None if np.isnan(r) else float(r) for r in recall],
        "majority_class": majority,
        "majority_rate": rate,
        "warnings": collapse_warnings(y_true, y_pred, remedy, dispersal_remedy),
    }

def clustering_accuracy(labels, clusters) -> float:
    """Accuracy of cluster ids against labels under the best one-to-one matching (Hungarian algorithm).

    With more clusters than classes, the unmatched clusters count as errors (no many-to-one majority vote).

    Example::

        clustering_accuracy([0, 0, 1, 1], [5, 5, 2, 2])     # 1.0
    """
    labels, clusters = np.asarray(labels).ravel(), np.asarray(clusters).ravel()
    if labels.shape != clusters.shape or labels.size == 0:
        raise ValueError(f"need as many cluster ids as labels (got {clusters.size} and {labels.size})")
    _, label_idx = np.unique(labels, return_inverse=True)
    _, cluster_idx = np.unique(clusters, return_inverse=True)
    counts = np.zeros((cluster_idx.max() + 1, label_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_idx, label_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / labels.size)


def auroc(inlier_scores, outlier_scores) -> float:
    """Area under the ROC curve of telling inliers (higher scores) from outliers: 1 separates them perfectly."""
    from sklearn.metrics import roc_auc_score

    inlier_scores, outlier_scores = np.asarray(inlier_scores), np.asarray(outlier_scores)
    truth = np.r_[np.ones(len(inlier_scores)), np.zeros(len(outlier_scores))]
    return float(roc_auc_score(truth, np.r_[inlier_scores, outlier_scores]))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, remedy: str | None = None,
                           dispersal_remedy: str | None = None) -> dict[str, Any]:
    """:func:`classification_report` (accuracy, balanced accuracy, majority-class rate, collapse
    warnings) with its per-class recall as ``per_class_accuracy`` (``None`` for a class absent from ``y_true``) and
    the confusion matrix (rows: true class, columns: predicted)."""
    report = classification_report(y_true, y_pred, num_classes, remedy, dispersal_remedy)
    k = len(report["per_class_recall"])
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return {"accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"], "per_class_accuracy": report["per_class_recall"],
            "confusion_matrix": confusion.tolist(), "majority_rate": report["majority_rate"], "warnings": report["warnings"]}


def no_labels_note(run: str, split: str, spec: str, every_label_trained: bool) -> str:
    """The one line that stands where a classifier's accuracy would when the rows scored carry no label: the test
    split of a partly labeled file, whose given labels all trained (or chose the kept epoch), or unlabeled data."""
    rows = f"the rows of {spec} carry" if split == "all" else f"the {split} split of {spec} carries"
    why = "every label of the file trained the run or chose its kept epoch" if every_label_trained else "no label is given there"
    return (f"no accuracy: {rows} no label ({why}); score the run on labeled data with "
            f"`ppmodels evaluate {run} --data LABELED_FILE --split all` (or train with ?test_labels=0.2 in the data spec to test on a share of the labels)")
