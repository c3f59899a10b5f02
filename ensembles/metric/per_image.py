"""True and false positives of one image, as the official per-image evaluation labels them.

Follows ``object_detection.utils.per_image_evaluation.PerImageEvaluation`` in mask mode with the
challenge settings (no NMS, at most 10000 detections per class, IoU 0.5), step by step:

1. Detections of classes not evaluatable in the image (not a verified label, positive or negative,
   after expansion, and without ground truth) are dropped. Detections with an empty mask are dropped
   (the official code removes detections whose box, the tight box of the mask, is empty).
2. Per class, detections are ranked by score (``argsort`` reversed, as the official sort).
3. No ground truth of the class in the image (e.g. a verified negative): every detection is a FP.
4. Otherwise, in this order (a detection already settled by an earlier step is skipped):

   a. masks of non-group-of instances: each detection looks at the instance it overlaps most
      (mask IoU); at IoU >= 0.5 it is a TP if that instance is still free, else it stays a FP
      (duplicates are false positives);
   b. masks of group-of instances: a detection whose best intersection over its own area (IoA) is
      >= 0.5 is removed from the list; each group-of instance hit adds one TP of weight
      ``group_of_weight`` at the highest score among its detections (none when the weight is 0);
   c. boxes without a mask, non-group-of: a detection whose tight box has IoU >= 0.5 with one is
      ignored (removed) when it is the first on that box, else it stays a FP;
   d. boxes without a mask, group-of: a detection with box IoA >= 0.5 is ignored.

Overlaps come from pycocotools on RLEs (integer pixel counts), then the official formulas in the
official arithmetic (``np_mask_ops``: areas and intersections are float32 sums, so the ratios are
float32): IoU = I / max(U, 1e-7), IoA = I / (|det| + 1e-7). In float32 the 1e-7 vanishes next to any
area of 2 pixels or more, so a detection covering exactly half of its pixels inside a group-of
region has IoA exactly 0.5 and is matched (in float64 it would be 0.4999999995 and miss).
"""

from __future__ import annotations

import numpy as np

from ensembles.metric.groundtruth import ExpandedGroundTruth
from hierseg.detections import Detections
from hierseg.rle import pairwise_intersections, rle_areas, rle_boxes

EPSILON = np.float32(1e-7)  # np_mask_ops.EPSILON, added to float32 areas
MAX_DETECTIONS_PER_CLASS = 10000  # the challenge's nms_max_output_boxes


def box_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[A, 4] and [B, 4] (ymin, xmin, ymax, xmax) -> [A, B] intersection areas."""
    h = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    w = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.maximum(h, 0.0) * np.maximum(w, 0.0)


def box_areas(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _tp_fp_single_class(
    scores: np.ndarray,
    iou_mask: np.ndarray,
    ioa_mask: np.ndarray,
    iou_box: np.ndarray,
    ioa_box: np.ndarray,
    iou_threshold: float,
    group_of_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 4a-4d for one class; every matrix is [num_detections (ranked), num_gt of its kind]."""
    n = len(scores)
    tp = np.zeros(n, bool)
    on_box = np.zeros(n, bool)  # settled by a box without a mask: ignored
    in_group = np.zeros(n, bool)  # removed by a group-of region

    def match_iou(iou: np.ndarray, is_box: bool) -> None:
        if iou.shape[1] == 0:
            return
        best = np.argmax(iou, axis=1)
        taken = np.zeros(iou.shape[1], bool)
        for i in range(n):
            g = best[i]
            if not tp[i] and not in_group[i] and iou[i, g] >= iou_threshold and not taken[g]:
                tp[i] = taken[g] = True
                on_box[i] = is_box

    def match_ioa(ioa: np.ndarray, is_box: bool) -> tuple[np.ndarray, np.ndarray]:
        if ioa.shape[1] == 0:
            return np.zeros([0]), np.zeros([0])
        best = np.argmax(ioa, axis=1)
        top = np.zeros(ioa.shape[1])
        for i in range(n):
            g = best[i]
            if not tp[i] and not in_group[i] and ioa[i, g] >= iou_threshold:
                in_group[i] = True
                on_box[i] = is_box
                top[g] = max(top[g], scores[i])
        weights = np.full(ioa.shape[1], float(group_of_weight))
        hit = (top > 0) & (weights > 0)
        return top[hit], weights[hit]

    match_iou(iou_mask, is_box=False)
    group_scores, group_labels = match_ioa(ioa_mask, is_box=False)
    match_iou(iou_box, is_box=True)
    match_ioa(ioa_box, is_box=True)  # box-only group-of regions only remove detections
    valid = ~in_group & ~on_box
    return (np.concatenate([scores[valid], group_scores]), np.concatenate([tp[valid].astype(np.float64), group_labels]))


def evaluate_image(
    gt: ExpandedGroundTruth, det: Detections, *, iou_threshold: float = 0.5, group_of_weight: float = 1.0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scores and TP labels of one image's detections, per class.

    Args:
      gt: the image's expanded ground truth.
      det: the image's detections (not expanded; masks as RLEs at the image size).
    Returns:
      {MID: (scores [K] float64, tp labels [K] float64: 1 TP, 0 FP, group_of_weight for a group-of TP)}
      for every evaluated class with at least one entry.
    Raises:
      ValueError: if the detections' size differs from the ground truth's while masks must be compared.
    """
    keep = [k for k, c in enumerate(det.classes) if c in gt.evaluatable]
    if not keep:
        return {}
    areas = rle_areas([det.rles[k] for k in keep])
    # Empty masks are dropped (the official drops detections whose box, the mask's tight box, is empty).
    keep, det_areas = [k for k, a in zip(keep, areas) if a > 0], areas[areas > 0].astype(np.float32)
    if not keep:
        return {}
    rles = [det.rles[k] for k in keep]
    scores = det.scores[keep].astype(np.float64)
    gt_has_mask = gt.has_mask.tolist()
    gt_rles = gt.instances.rles  # used only where gt_has_mask
    sizes = {(int(r["size"][0]), int(r["size"][1])) for r in rles}
    if any(gt_has_mask) and sizes | {(det.height, det.width)} != {(gt.height, gt.width)}:
        raise ValueError(
            f"image {gt.image_id}: predicted masks are {det.height}x{det.width}, the ground truth "
            f"{gt.height}x{gt.width} (height x width); masks must be at the original resolution"
        )
    gt_areas = np.asarray(gt.areas, np.float32)
    by_class: dict[str, list[int]] = {}
    for i, k in enumerate(keep):
        by_class.setdefault(det.classes[k], []).append(i)
    gt_by_class: dict[str, list[int]] = {}
    for j, c in enumerate(gt.classes):
        gt_by_class.setdefault(c, []).append(j)
    boxes = rle_boxes(rles) if not all(gt_has_mask) else None  # only boxes without masks need them

    # Mask overlaps per class: pairs of different classes are never needed.
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for c, idx in by_class.items():
        d = np.asarray(idx)
        d = d[np.argsort(scores[d])[::-1]][:MAX_DETECTIONS_PER_CLASS]  # the official ranking
        s = scores[d]
        g = gt_by_class.get(c)
        if not g:
            out[c] = (s, np.zeros(len(d)))
            continue
        gm = np.asarray([j for j in g if gt_has_mask[j]], np.int64)
        gb = np.asarray([j for j in g if not gt_has_mask[j]], np.int64)
        inter = pairwise_intersections(
            [rles[i] for i in d], [gt_rles[j] for j in gm], areas_a=det_areas[d], check_sizes=False
        ).astype(np.float32)
        a_det = det_areas[d][:, None]
        iou_m = inter / np.maximum(a_det + gt_areas[gm][None, :] - inter, EPSILON)  # float32, as official
        ioa_m = inter / (a_det + EPSILON)
        grp_m, grp_b = gt.is_group_of[gm], gt.is_group_of[gb]
        iou_b, ioa_b = _box_overlaps(boxes[d], gt.boxes[gb]) if len(gb) else (np.zeros([len(d), 0]),) * 2
        out[c] = _tp_fp_single_class(
            s, iou_m[:, ~grp_m], ioa_m[:, grp_m], iou_b[:, ~grp_b], ioa_b[:, grp_b], iou_threshold, group_of_weight
        )
    return {c: v for c, v in out.items() if len(v[0])}


def _box_overlaps(det_boxes: np.ndarray, gt_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box IoU and IoA (over the detection's box) of [n, 4] and [m, 4] boxes: two [n, m] float64."""
    inter = box_intersections(det_boxes, gt_boxes)
    a_det = box_areas(det_boxes)[:, None]
    union = a_det + box_areas(gt_boxes)[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float64).tiny), inter / a_det
