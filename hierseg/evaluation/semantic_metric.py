"""Semantic segmentation metrics from a confusion matrix (host-side numpy): mIoU and hierarchical mIoU.

``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` from the confusion matrix ``M[true, pred]`` accumulated over
every labelled pixel of the evaluation set (pixels whose true label is the ignore label, or outside
``0..C-1``, are left out; predictions outside the range count as wrong). ``mIoU`` averages the IoU of
the classes that occur (in the ground truth or the predictions), as DeepLab's
``tf.metrics.mean_iou`` does; classes that never occur have no IoU.

Hierarchical mIoU (fused Layer0/Layer1 label paths): a pixel's path is one class id per level. Level
0 is a plain semantic map (0 = background). At deeper levels the true id is the ignore value where
the true path stops (so those pixels are left out there) and the predicted id is 0 where the
predicted path stops. Each level has its own confusion matrix, so a (Person, Man) pixel predicted
(Person, Woman) is correct at level 0 and wrong at level 1, and one predicted (Person) is a miss
of Man at level 1. The hierarchical mIoU is the mean IoU over level 0's classes (background
included) and the real classes of deeper levels (their id 0, "the path stops", is not a class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def confusion_matrix(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int, ignore_label: int
) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ``[C, C]`` counts ``M[true, pred]``, int64 ``[C]`` misses) over pixels with a true label in ``0..C-1``.

    Predictions outside ``0..C-1`` go to no column but to ``misses`` of the true class (a false negative).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    keep = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    t, p = labels[keep], predictions[keep]
    in_range = (p >= 0) & (p < num_classes)
    m = np.bincount(t[in_range] * num_classes + p[in_range], minlength=num_classes * num_classes)
    m = m.reshape(num_classes, num_classes)
    missed = np.bincount(t[~in_range], minlength=num_classes)  # counted in the row total only
    return m.astype(np.int64), missed.astype(np.int64)


@dataclass
class SemanticResult:
    """Per-class IoU (NaN where a class never occurs), pixel counts, mIoU and pixel accuracy."""

    iou: np.ndarray  # float64 [C]
    gt_pixels: np.ndarray  # int64 [C]: pixels of each true class
    pred_pixels: np.ndarray  # int64 [C]: pixels predicted as each class (over labelled pixels)
    miou: float
    pixel_accuracy: float

    def as_dict(self, names: Sequence[str], prefix: str = "semantic") -> dict:
        out = {f"{prefix}/mIoU": self.miou, f"{prefix}/pixel_accuracy": self.pixel_accuracy}
        for c, name in enumerate(names):
            if not np.isnan(self.iou[c]):
                out[f"{prefix}/IoU/{name}"] = float(self.iou[c])
        return out


class ConfusionMatrix:
    """Accumulates :func:`confusion_matrix` over batches; :meth:`result` gives the IoUs."""

    def __init__(self, num_classes: int, ignore_label: int):
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        self.missed = np.zeros(num_classes, np.int64)

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        m, missed = confusion_matrix(labels, predictions, self.num_classes, self.ignore_label)
        self.matrix += m
        self.missed += missed

    def result(self) -> SemanticResult:
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1) + self.missed
        pred = m.sum(axis=0)
        union = gt + pred - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        miou = float(np.nanmean(iou)) if np.any(union > 0) else 0.0
        total = gt.sum()
        acc = float(tp.sum() / total) if total > 0 else 0.0
        return SemanticResult(iou, gt.astype(np.int64), pred.astype(np.int64), miou, acc)


def iou_table(result: SemanticResult, names: Sequence[str]) -> str:
    """A text table: class, IoU (%), ground-truth and predicted pixels; the mIoU last."""
    width = max([len("class"), *(len(n) for n in names)])
    lines = [f"{'class':<{width}}  {'IoU %':>7}  {'gt pixels':>12}  {'pred pixels':>12}"]
    for c, name in enumerate(names):
        iou = "-" if np.isnan(result.iou[c]) else f"{100 * result.iou[c]:.2f}"
        lines.append(f"{name:<{width}}  {iou:>7}  {result.gt_pixels[c]:>12d}  {result.pred_pixels[c]:>12d}")
    lines.append(f"{'mIoU':<{width}}  {100 * result.miou:>7.2f}  {int(result.gt_pixels.sum()):>12d}")
    return "\n".join(lines)


class HierarchicalConfusion:
    """One :class:`ConfusionMatrix` per level of the label paths; see the module docstring."""

    def __init__(self, num_classes_per_level: Sequence[int], ignore_label: int):
        self.levels = [ConfusionMatrix(c, ignore_label) for c in num_classes_per_level]

    def update(self, true_paths: np.ndarray, pred_paths: np.ndarray) -> None:
        """``true_paths`` / ``pred_paths``: int ``[L, ...]`` class ids per level (ignore where a path stops)."""
        for level, cm in enumerate(self.levels):
            cm.update(true_paths[level], pred_paths[level])

    def result(self) -> dict:
        results = [cm.result() for cm in self.levels]
        per_level = [r.iou if level == 0 else r.iou[1:] for level, r in enumerate(results)]
        ious = np.concatenate(per_level)

        def mean(x):
            return float(np.nanmean(x)) if np.any(~np.isnan(x)) else 0.0

        return {
            "hierarchical_mIoU": mean(ious),
            "levels": [{"mIoU": mean(iou), "pixel_accuracy": r.pixel_accuracy} for iou, r in zip(per_level, results)],
        }
