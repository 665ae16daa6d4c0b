"""Classification scores that stay honest on imbalanced labels: balanced accuracy, per-class recall, collapse warnings.

Plain accuracy rewards a classifier that predicts the majority class everywhere: with 90% of the labels in one class
it scores 0.9 while knowing nothing (the failure of a hyperspectral M1/M2 student project). Balanced accuracy, the
mean of the per-class recalls, scores that classifier 1/K. These are plain functions of label arrays, for
``ppmodels evaluate``, the training summary and user code alike.

Example::

    report = classification_report(y_test, model.predict(x_test))
    report["balanced_accuracy"], report["per_class_recall"]
    for line in report["warnings"]:
        print("WARNING:", line)
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    support = np.bincount(y_true, minlength=k)
    hits = np.bincount(y_true[y_true == y_pred], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / np.maximum(support, 1), np.nan)


def balanced_accuracy(y_true, y_pred) -> float:
    """The mean recall over the classes present in ``y_true``: 1/K for a classifier that predicts one class everywhere."""
    return float(np.nanmean(per_class_recall(y_true, y_pred)))


def majority_rate(y_true) -> tuple[int, float]:
    """The most frequent class and its share: the accuracy of always predicting it."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64).ravel())
    return int(counts.argmax()), float(counts.max() / counts.sum())


def collapse_warnings(y_true, y_pred) -> list[str]:
    """One sentence per sign that the classifier learned the label frequencies rather than the classes.

    - predictions collapsed: every example is predicted as one class (when there are two or more);
    - predictions collapsing: one class is predicted for more than half of the examples of the *other* classes
      (the 90%-one-class failure: accuracy 0.9, balanced accuracy near 1/K, yet not every prediction the same);
    - accuracy not better than the majority-class rate, that of always predicting the most frequent class.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    warnings, remedy = [], "try class_weight=balanced, --max-per-class, or class-balanced labels"
    several = len(np.unique(y_true)) > 1
    top = int(np.bincount(y_pred).argmax())
    others = y_true != top
    if several and (y_pred == top).all():
        warnings.append(f"predictions collapsed: all {len(y_pred)} examples are predicted as class {top}; {remedy}")
    elif others.any() and (y_pred[others] == top).mean() > 0.5:
        warnings.append(f"predictions collapsing onto class {top}: it is predicted for {(y_pred == top).mean():.0%} of the examples, "
                        f"including {(y_pred[others] == top).mean():.0%} of those of other classes; {remedy}")
    accuracy, (majority, rate) = float((y_true == y_pred).mean()), majority_rate(y_true)
    if several and accuracy <= rate:
        warnings.append(f"accuracy {accuracy:.4f} is not better than the majority-class rate {rate:.4f} (always predicting class "
                        f"{majority}); judge the model by balanced accuracy ({balanced_accuracy(y_true, y_pred):.4f}) instead")
    return warnings


def classification_report(y_true, y_pred, num_classes: int | None = None) -> dict[str, Any]:
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
        "warnings": collapse_warnings(y_true, y_pred),
    }
