"""Evaluation metrics that need more than one line: unsupervised clustering accuracy and the OOD AUROC."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


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
