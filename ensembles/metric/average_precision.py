"""Precision/recall over ranked detections and the VOC-2010 average precision.

As ``object_detection.utils.metrics`` (``compute_precision_recall``, ``compute_average_precision``):
detections of one class over all images are ranked by score (``argsort`` ascending, reversed), TP
labels may be fractional (group-of weights), recall is cumulative TP / number of ground truth, and AP
is the area under the monotone (right-maximum) precision envelope with recall padded by 0 and 1, with
no 11-point sampling.
"""

from __future__ import annotations

import numpy as np


def precision_recall(scores: np.ndarray, tp_labels: np.ndarray, num_gt: float) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each ranked detection.

    Args:
      scores: [N] float detection scores.
      tp_labels: [N] float or bool: 1 (or a group-of weight > 0) for a true positive, <= 0 for a false one.
      num_gt: the (weighted) number of ground-truth instances, > 0.
    Returns:
      (precision [N], recall [N]) float64, in rank order (highest score first).
    Raises:
      ValueError: for mismatched lengths, num_gt <= 0 or more true positives than ground truth.
    """
    scores = np.asarray(scores, np.float64).reshape([-1])
    labels = np.asarray(tp_labels, np.float64).reshape([-1])
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels")
    if num_gt <= 0:
        raise ValueError(f"num_gt must be positive, got {num_gt}")
    if labels[labels > 0].sum() > num_gt + 1e-9:
        raise ValueError(f"{labels.sum()} true positives exceed {num_gt} ground-truth instances")
    order = np.argsort(scores)[::-1]  # the official ranking, ties included
    tp = labels[order]
    fp = (tp <= 0).astype(np.float64)
    cum_tp, cum_fp = np.cumsum(tp), np.cumsum(fp)
    return cum_tp / np.maximum(cum_tp + cum_fp, np.finfo(np.float64).tiny), cum_tp / num_gt


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the monotone precision envelope (VOC 2010+); 0.0 when there are no detections.

    Raises:
      ValueError: for values outside [0, 1] or a decreasing recall.
    """
    precision = np.asarray(precision, np.float64).reshape([-1])
    recall = np.asarray(recall, np.float64).reshape([-1])
    if len(precision) != len(recall):
        raise ValueError(f"{len(precision)} precision values but {len(recall)} recall values")
    if precision.size == 0:
        return 0.0
    if precision.min() < 0 or precision.max() > 1 or recall.min() < 0 or recall.max() > 1 + 1e-12:
        raise ValueError("precision and recall must lie in [0, 1]")
    if (np.diff(recall) < 0).any():
        raise ValueError("recall must be non-decreasing")
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # envelope: best precision at this recall or beyond
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def average_precision_reference(precision: np.ndarray, recall: np.ndarray) -> float:
    """Slow reference of :func:`average_precision`: the official loop, verbatim in structure."""
    if len(precision) == 0:
        return 0.0
    r = [0.0, *map(float, recall), 1.0]
    p = [0.0, *map(float, precision), 0.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return float(sum((r[i] - r[i - 1]) * p[i] for i in range(1, len(r)) if r[i] != r[i - 1]))
