"""`OidChallengeEvaluator`: the Open Images Challenge 2019 instance segmentation mAP over a dataset.

Usage (ground truth first, as in the official evaluator)::

    ev = OidChallengeEvaluator(hierarchy, group_of_weight=1.0, num_workers=2)
    for gt in ground_truth.values():
        ev.add_ground_truth(gt)           # ImageGroundTruth, expanded here
    ev.add_predictions(detections_iter)   # per-image Detections, streamed, images in parallel
    metrics = ev.evaluate()               # {"mAP": ..., "per_class": {MID: AP}, ...}

Images with predictions but no ground truth are ignored (all their classes are unevaluatable), as
are classes without ground truth anywhere: mAP is the mean AP over classes whose (weighted) ground
truth count is positive. ``group_of_weight`` 1.0 is what the official script uses; 0.0 turns group-of
regions into pure ignore regions.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ensembles.metric.average_precision import average_precision, precision_recall
from ensembles.metric.groundtruth import ExpandedGroundTruth, ImageGroundTruth
from ensembles.metric.per_image import evaluate_image
from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy


@contextlib.contextmanager
def process_pool(num_workers: int, initializer=None, initargs: tuple = ()) -> Iterator[Any]:
    """A multiprocessing pool: forked when TensorFlow is not loaded in this process (cheap), else
    spawned (fork after TensorFlow started its threads can deadlock)."""
    method = "spawn"
    if "tensorflow" not in sys.modules and "fork" in multiprocessing.get_all_start_methods():
        method = "fork"
    pool = multiprocessing.get_context(method).Pool(num_workers, initializer, initargs)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


_WORKER_ARGS: dict = {}


def _init_worker(iou_threshold: float, group_of_weight: float) -> None:
    _WORKER_ARGS.update(iou_threshold=iou_threshold, group_of_weight=group_of_weight)


def _evaluate_pair(pair: tuple[ExpandedGroundTruth, Detections]) -> dict:
    return evaluate_image(*pair, **_WORKER_ARGS)


class OidChallengeEvaluator:
    """Accumulates per-image results and computes per-class AP and mAP.

    Args:
      hierarchy: the class hierarchy (ground truth is expanded along it; names label the classes).
      group_of_weight: TP weight of a hit group-of region and its weight in the ground-truth count.
      iou_threshold: mask IoU (and IoA for group-of regions) needed for a match.
      num_workers: processes evaluating images (1 = in this process).
      show_progress: a tqdm bar while predictions are evaluated.
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        *,
        group_of_weight: float = 1.0,
        iou_threshold: float = 0.5,
        num_workers: int = 1,
        show_progress: bool = False,
    ):
        if group_of_weight < 0:
            raise ValueError(f"group_of_weight must be >= 0, got {group_of_weight}")
        self.hierarchy = hierarchy
        self.group_of_weight = float(group_of_weight)
        self.iou_threshold = float(iou_threshold)
        self.num_workers = int(num_workers)
        self.show_progress = show_progress
        self._gt: dict[str, ExpandedGroundTruth] = {}
        self._num_gt: dict[str, float] = {}
        self._scores: dict[str, list[np.ndarray]] = {}
        self._labels: dict[str, list[np.ndarray]] = {}
        self._predicted: set[str] = set()
        self.images_without_ground_truth = 0

    # ----------------------------------------------------------------------------------- adding
    def add_ground_truth(self, gt: ImageGroundTruth) -> None:
        """Adds one image's ground truth (expanded along the hierarchy here).

        Raises:
          ValueError: for an image added twice, or after its predictions.
        """
        if gt.image_id in self._gt:
            raise ValueError(f"ground truth of image {gt.image_id} added twice")
        if gt.image_id in self._predicted:
            raise ValueError(f"ground truth of image {gt.image_id} added after its predictions")
        expanded = gt.expand(self.hierarchy)
        self._gt[gt.image_id] = expanded
        for c, n in expanded.num_gt(self.group_of_weight).items():
            self._num_gt[c] = self._num_gt.get(c, 0.0) + n

    def _pairs(self, detections: Iterable[Detections]) -> Iterator[tuple[ExpandedGroundTruth, Detections]]:
        for det in detections:
            if det.image_id in self._predicted:
                raise ValueError(f"predictions of image {det.image_id} given twice")
            self._predicted.add(det.image_id)
            gt = self._gt.get(det.image_id)
            if gt is None:
                self.images_without_ground_truth += 1
                continue
            yield gt, det

    def _collect(self, result: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        for c, (s, t) in result.items():
            self._scores.setdefault(c, []).append(s)
            self._labels.setdefault(c, []).append(t)

    def add_predictions(self, detections: Iterable[Detections]) -> int:
        """Evaluates the predictions of images (each image once), streaming; returns how many were read."""
        from tqdm import tqdm

        before = len(self._predicted)
        pairs = tqdm(self._pairs(detections), desc="oid-eval", unit="img", disable=not self.show_progress)
        if self.num_workers <= 1:
            for gt, det in pairs:
                self._collect(
                    evaluate_image(gt, det, iou_threshold=self.iou_threshold, group_of_weight=self.group_of_weight)
                )
        else:
            init_args = (self.iou_threshold, self.group_of_weight)
            with process_pool(self.num_workers, _init_worker, init_args) as pool:
                for result in pool.imap(_evaluate_pair, pairs, chunksize=32):
                    self._collect(result)
        return len(self._predicted) - before

    # ------------------------------------------------------------------------------- evaluating
    def evaluate(self) -> dict:
        """The metrics so far.

        Returns:
          {"mAP": float (NaN when no class has ground truth),
           "per_class": {MID: AP} for classes with ground truth, in hierarchy order,
           "per_class_by_name": {display name: AP},
           "num_gt": {MID: weighted ground-truth count}, "num_detections": {MID: entries evaluated},
           "num_images_with_ground_truth", "num_images_predicted", "num_images_without_ground_truth",
           "group_of_weight", "iou_threshold"}
        """
        per_class: dict[str, float] = {}
        num_det: dict[str, int] = {}
        order = {c: i for i, c in enumerate(self.hierarchy.classes)}
        for c in sorted(self._num_gt, key=lambda m: order.get(m, len(order))):
            n = self._num_gt[c]
            if n <= 0:
                continue
            scores = np.concatenate(self._scores[c]) if c in self._scores else np.zeros([0])
            labels = np.concatenate(self._labels[c]) if c in self._labels else np.zeros([0])
            precision, recall = precision_recall(scores, labels, n)
            per_class[c] = average_precision(precision, recall)
            num_det[c] = int(len(scores))
        m_ap = float(np.mean(list(per_class.values()))) if per_class else float("nan")
        return {
            "mAP": m_ap,
            "per_class": per_class,
            "per_class_by_name": {self.hierarchy.names.get(c, c): ap for c, ap in per_class.items()},
            "num_gt": {c: self._num_gt[c] for c in per_class},
            "num_detections": num_det,
            "num_images_with_ground_truth": len(self._gt),
            "num_images_predicted": len(self._predicted),
            "num_images_without_ground_truth": self.images_without_ground_truth,
            "group_of_weight": self.group_of_weight,
            "iou_threshold": self.iou_threshold,
        }


def evaluate_submission(
    oid_dir: str,
    split: str,
    submission: str,
    *,
    hierarchy: Hierarchy | None = None,
    group_of_weight: float = 1.0,
    num_workers: int = 1,
    on_error: str = "raise",
    show_progress: bool = False,
) -> dict:
    """The challenge metric of a prediction file (submission CSV, per-instance CSV, JSON lines or
    parquet) against a split of the dataset folder. Returns :meth:`OidChallengeEvaluator.evaluate`'s
    dict plus ``"ground_truth"`` (the loader's report)."""
    from ensembles.metric.groundtruth import load_ground_truth
    from ensembles.prediction_io import read_predictions
    from hierseg.oid.layout import OidPaths

    if hierarchy is None:
        hierarchy = OidPaths.from_dir(oid_dir).load_hierarchy()
    gts, report = load_ground_truth(
        oid_dir, split, hierarchy, on_error=on_error, num_workers=num_workers, show_progress=show_progress
    )
    evaluator = OidChallengeEvaluator(
        hierarchy, group_of_weight=group_of_weight, num_workers=num_workers, show_progress=show_progress
    )
    for gt in gts.values():
        evaluator.add_ground_truth(gt)
    evaluator.add_predictions(read_predictions(submission))
    metrics = evaluator.evaluate()
    metrics["ground_truth"] = report
    return metrics


def write_metrics(metrics: dict, path: str) -> None:
    """Writes the metrics as JSON, atomically; NaN becomes null (JSON has no NaN)."""
    import math

    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    atomic_write.write_json(path, clean(metrics), indent=1)
