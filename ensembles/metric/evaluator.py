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

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ensembles.metric.average_precision import average_precision, precision_recall
from ensembles.metric.groundtruth import ExpandedGroundTruth, ImageGroundTruth
from ensembles.metric.per_image import evaluate_image
from ensembles.process_pool import process_pool, start_method
from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.prediction_file import check_scores

# What a worker process needs: the expanded ground truth (inherited when forked, sent once when
# spawned), the hierarchy's classes and the options. Tasks then carry only an image's predictions.
_WORKER: dict[str, Any] = {}


def _init_worker(state: dict[str, Any] | None) -> None:
    if state is not None:
        _WORKER.update(state)


def _parsed(chunk: list[Any]) -> list[Detections]:
    """A chunk of predictions as Detections: unparsed submission rows are parsed together (their masks
    checked in one vectorized pass), anything else with ``detections()`` one by one."""
    from hierseg.prediction_file import SubmissionRow, parse_submission_rows

    if all(isinstance(x, SubmissionRow) for x in chunk):
        return parse_submission_rows(chunk)
    return [x if isinstance(x, Detections) else x.detections() for x in chunk]


def _evaluate_chunk(chunk: list[Any]) -> list[tuple[str, dict, Counter]]:
    """Some images in a worker: [(image_id, per-class results, unknown classes)]."""
    return [_evaluate_one(det, _WORKER) for det in _parsed(chunk)]


def _evaluate_one(det: Detections, state: dict[str, Any]) -> tuple[str, dict, Counter]:
    check_scores(det.scores, f"image {det.image_id}")
    known = state["classes"]
    unknown = Counter(c for c in det.classes if c not in known)
    gt = state["gt"][det.image_id]
    result = evaluate_image(gt, det, iou_threshold=state["iou_threshold"], group_of_weight=state["group_of_weight"])
    return det.image_id, result, unknown


class OidChallengeEvaluator:
    """Accumulates per-image results and computes per-class AP and mAP.

    The result does not depend on the order predictions are given in: per-image results are joined in
    ImageID order, as the official script does (it walks ``groupby("ImageID")``), so tied scores of
    different images rank the same whatever the file's row order.

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
        self._results: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}  # ImageID -> class -> (s, tp)
        self._predicted: set[str] = set()
        self.unknown_classes: Counter = Counter()  # MID not in the hierarchy -> predictions dropped
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

    def _chunks(self, predictions: Iterable[Any], size: int = 32) -> Iterator[list[Any]]:
        """The predictions of images with ground truth, in lists of ``size`` (one task each)."""
        chunk: list[Any] = []
        for item in predictions:
            if item.image_id in self._predicted:
                raise ValueError(f"predictions of image {item.image_id} given twice")
            self._predicted.add(item.image_id)
            if item.image_id not in self._gt:
                self.images_without_ground_truth += 1
                continue
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _collect(self, out: tuple[str, dict, Counter]) -> None:
        image_id, result, unknown = out
        self._results[image_id] = result
        self.unknown_classes.update(unknown)

    def add_predictions(self, predictions: Iterable[Any]) -> int:
        """Evaluates the predictions of images (each image once), streaming; returns how many were read.

        Args:
          predictions: per-image :class:`Detections`, or unparsed rows with ``image_id`` and
            ``detections()`` (:class:`hierseg.prediction_file.SubmissionRow`), which are then parsed
            by the worker processes.
        Raises:
          ValueError: for an image given twice, a score outside [0, 1] (naming the image) or a
            prediction file error (naming the file and line).
        """
        from tqdm import tqdm

        before = len(self._predicted)
        state = {
            "gt": self._gt,
            "classes": frozenset(self.hierarchy.classes),
            "iou_threshold": self.iou_threshold,
            "group_of_weight": self.group_of_weight,
        }
        bar = tqdm(desc="oid-eval", unit="img", disable=not self.show_progress)
        if self.num_workers <= 1:
            for chunk in self._chunks(predictions):
                for det in _parsed(chunk):
                    self._collect(_evaluate_one(det, state))
                bar.update(len(chunk))
        else:
            forked = start_method() == "fork"
            if forked:
                _WORKER.update(state)  # inherited by the forked workers, never pickled
            try:
                with process_pool(self.num_workers, _init_worker, (None if forked else state,)) as pool:
                    for outs in pool.imap_unordered(_evaluate_chunk, self._chunks(predictions)):
                        for out in outs:
                            self._collect(out)
                        bar.update(len(outs))
            finally:
                _WORKER.clear()
        bar.close()
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
           "unknown_classes": {MID: predictions} for predicted classes not in the hierarchy (dropped,
           as the official evaluator drops them), "num_unknown_class_predictions",
           "group_of_weight", "iou_threshold"}
        """
        per_class: dict[str, float] = {}
        num_det: dict[str, int] = {}
        scores_of: dict[str, list[np.ndarray]] = {}
        labels_of: dict[str, list[np.ndarray]] = {}
        for image_id in sorted(self._results):  # the official order, whatever the input order
            for c, (s, t) in self._results[image_id].items():
                scores_of.setdefault(c, []).append(s)
                labels_of.setdefault(c, []).append(t)
        order = {c: i for i, c in enumerate(self.hierarchy.classes)}
        for c in sorted(self._num_gt, key=lambda m: order.get(m, len(order))):
            n = self._num_gt[c]
            if n <= 0:
                continue
            scores = np.concatenate(scores_of[c]) if c in scores_of else np.zeros([0])
            labels = np.concatenate(labels_of[c]) if c in labels_of else np.zeros([0])
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
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
            "num_unknown_class_predictions": int(sum(self.unknown_classes.values())),
            "group_of_weight": self.group_of_weight,
            "iou_threshold": self.iou_threshold,
        }


def prediction_stream(path: str) -> Iterator[Any]:
    """The predictions of a file for :meth:`OidChallengeEvaluator.add_predictions`: a submission CSV's
    rows unparsed (the workers decode them), any other format as Detections."""
    from ensembles.prediction_io import read_predictions
    from hierseg.prediction_file import SUBMISSION_HEADER, csv_rows, submission_rows

    if path.lower().endswith(".csv"):
        first = next(csv_rows(path), None)
        if first is not None and tuple(first[1]) == SUBMISSION_HEADER:
            return submission_rows(path)
    return read_predictions(path)


def evaluate_submission(
    oid_dir: str,
    split: str,
    submission: str,
    *,
    hierarchy: Hierarchy | None = None,
    group_of_weight: float = 1.0,
    num_workers: int = 1,
    on_error: str = "raise",
    image_sizes_csv: str | None = None,
    cache_dir: str | None = None,
    show_progress: bool = False,
) -> dict:
    """The challenge metric of a prediction file (submission CSV, per-instance CSV, JSON lines or
    parquet) against a split of the dataset folder.

    Args:
      image_sizes_csv: ``ImageID,Width,Height`` of the split's images (else read from the image headers).
      cache_dir: the ground-truth cache folder (:mod:`ensembles.metric.groundtruth_cache`); None: no cache.
    Returns:
      :meth:`OidChallengeEvaluator.evaluate`'s dict plus ``"ground_truth"`` (the loader's report).
    """
    from ensembles.metric.groundtruth_files import load_ground_truth
    from hierseg.oid.layout import OidPaths

    if hierarchy is None:
        hierarchy = OidPaths.from_dir(oid_dir).load_hierarchy()
    gts, report = load_ground_truth(
        oid_dir,
        split,
        hierarchy,
        image_sizes_csv=image_sizes_csv,
        on_error=on_error,
        num_workers=num_workers,
        cache_dir=cache_dir,
        show_progress=show_progress,
    )
    evaluator = OidChallengeEvaluator(
        hierarchy, group_of_weight=group_of_weight, num_workers=num_workers, show_progress=show_progress
    )
    for gt in gts.values():
        evaluator.add_ground_truth(gt)
    evaluator.add_predictions(prediction_stream(submission))
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
