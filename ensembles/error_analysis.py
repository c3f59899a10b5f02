"""Hierarchical error analysis of a submission under the challenge metric (TIDE-style, for a hierarchy).

Every detection is first labeled exactly as the metric labels it — by calling
:func:`ensembles.metric.per_image.evaluate_image` itself (see :func:`metric_status`) — as a true
positive, a false positive, or ignored (class not evaluated in the image, empty mask, inside a group-of
region or on a box without a mask). Each false positive then gets one cause, tried in this order, from
its overlap with the image's *annotated* instances (before expansion; mask IoU, IoA for a group-of
region, box IoU for a box without a mask):

``duplicate``      overlap >= 0.5 with an instance of its own class (or one it expands to): the instance
                   was already taken by a higher-scoring detection;
``too_fine``       overlap >= 0.5 with an instance of an ancestor class only (Man where Person was labeled);
``sibling``        ... of a related class: a common ancestor, neither above the other (Man for Woman);
``other_class``    ... of a class outside the detection's tree (no common ancestor);
``localization``   best overlap with its own class in [0.1, 0.5);
``class_and_loc``  best overlap with any other instance in [0.1, 0.5);
``background``     overlap < 0.1 with everything.

(A *coarser* detection, Person on an instance labeled Man, matches the Person instance that the metric's
expansion adds, so it is never a false positive; it shows among the misses below.)

Each expanded ground-truth instance the metric counts that no true positive took is a miss, with the best
detection found on it (overlap >= 0.5), in this order: ``missed_sibling``, ``missed_too_fine`` (a
descendant class), ``missed_too_coarse`` (an ancestor class only), ``missed_other_class``;
``missed_localization`` (its own class at 0.1–0.5); else ``missed_no_detection``.

The mAP gained per kind (as TIDE reports) is the metric rerun with that error fixed: false positives of
the kind removed; a miss with a related detection fixed by adding that detection relabeled to the missed
class at its score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ensembles.metric.evaluator import OidChallengeEvaluator
from ensembles.metric.groundtruth import ExpandedGroundTruth, ImageGroundTruth
from ensembles.metric.per_image import box_areas, box_intersections, evaluate_image
from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.rle import pairwise_intersections, rle_areas

FP_KINDS = ("duplicate", "too_fine", "sibling", "other_class", "localization", "class_and_loc", "background")
MISS_KINDS = (
    "missed_too_coarse",
    "missed_too_fine",
    "missed_sibling",
    "missed_other_class",
    "missed_localization",
    "missed_no_detection",
)
FIXABLE_MISSES = ("missed_too_coarse", "missed_too_fine", "missed_sibling", "missed_other_class")
MATCH, NEAR = 0.5, 0.1  # the metric's IoU threshold; TIDE's background threshold


@dataclass
class ImageErrors:
    """One image's labels.

    Attributes:
      status: per detection, "tp", "fp" or "ignored" (the metric's verdict).
      fp_kind: per detection, its FP cause (one of FP_KINDS) or "".
      misses: (expanded class, miss kind, index of the fixing detection or -1) per missed instance.
    """

    image_id: str
    status: list[str]
    fp_kind: list[str]
    misses: list[tuple[str, str, int]] = field(default_factory=list)


def relation(hierarchy: Hierarchy, det_class: str, gt_class: str) -> str:
    """How a detection's class stands to an annotated class: "same" (equal, or an ancestor, which the
    expansion makes a match), "too_fine" (a descendant), "sibling" (a common ancestor) or "other_class"."""
    if det_class == gt_class or det_class in hierarchy.ancestors(gt_class):
        return "same"
    if det_class in hierarchy.descendants(gt_class):
        return "too_fine"
    if (hierarchy.ancestors(det_class) | {det_class}) & (hierarchy.ancestors(gt_class) | {gt_class}):
        return "sibling"
    return "other_class"


def metric_status(gt: ExpandedGroundTruth, det: Detections, **metric_args) -> list[str]:
    """The metric's verdict per detection: "tp", "fp" or "ignored", from ``evaluate_image`` itself.

    ``evaluate_image`` returns per class the scores and TP labels of the detections it kept, so each
    detection is given a distinct score that keeps the ranking (rank in descending score order); the
    returned scores then name the detections. Tied scores rank in a fixed order here, where the metric's
    unstable sort may pick another.
    """
    n = len(det)
    order = np.argsort(-det.scores, kind="stable")
    ranked = np.empty(n, np.float32)  # Detections keeps float32 scores: distinct for n < 2**24
    ranked[order] = (n - np.arange(n)) / (n + 1.0)
    probe = Detections(det.image_id, det.height, det.width, list(det.classes), ranked, det.boxes, det.rles)
    by_score = {float(s): k for k, s in enumerate(ranked)}
    status = ["ignored"] * n
    for scores, labels in evaluate_image(gt, probe, **metric_args).values():
        for s, t in zip(scores, labels):
            status[by_score[float(s)]] = "tp" if t > 0 else "fp"
    return status


def _overlaps(gt: ImageGroundTruth, det: Detections) -> np.ndarray:
    """[num detections, num annotated instances] overlap: mask IoU, mask IoA for a group-of instance,
    box IoU (IoA for group-of) for an instance without a mask."""
    out = np.zeros([len(det), len(gt)])
    if not len(det) or not len(gt):
        return out
    has_mask = np.asarray([r is not None for r in gt.rles], bool)
    if has_mask.any():
        masked = np.flatnonzero(has_mask)
        inter = pairwise_intersections(det.rles, [gt.rles[j] for j in masked]).astype(np.float64)
        a_det = rle_areas(det.rles).astype(np.float64)[:, None]
        a_gt = rle_areas([gt.rles[j] for j in masked]).astype(np.float64)[None, :]
        iou = inter / np.maximum(a_det + a_gt - inter, 1e-7)
        ioa = inter / (a_det + 1e-7)
        out[:, masked] = np.where(gt.is_group_of[masked][None, :], ioa, iou)
    boxed = np.flatnonzero(~has_mask)
    if len(boxed):
        inter = box_intersections(det.boxes, gt.boxes[boxed])
        a_det = box_areas(det.boxes)[:, None]
        union = a_det + box_areas(gt.boxes[boxed])[None, :] - inter
        out[:, boxed] = np.where(gt.is_group_of[boxed][None, :], inter / np.maximum(a_det, 1e-12), inter / union)
    return out


def _fp_kind(hierarchy: Hierarchy, cls: str, overlap: np.ndarray, gt_classes: list[str]) -> str:
    rel = [relation(hierarchy, cls, g) for g in gt_classes]
    best = {r: max([o for o, x in zip(overlap, rel) if x == r], default=0.0) for r in set(rel)}
    if best.get("same", 0.0) >= MATCH:
        return "duplicate"
    for r in ("too_fine", "sibling", "other_class"):
        if best.get(r, 0.0) >= MATCH:
            return r
    if best.get("same", 0.0) >= NEAR:
        return "localization"
    return "class_and_loc" if max(best.values(), default=0.0) >= NEAR else "background"


_MISS_RANK = {"missed_sibling": 4, "missed_too_fine": 3, "missed_too_coarse": 2, "missed_other_class": 1}


def _miss_kind(hierarchy: Hierarchy, cls: str, overlap: np.ndarray, det: Detections) -> tuple[str, int]:
    """The kind of a missed instance of (expanded) class ``cls`` and the detection that would fix it
    (the most telling relation wins: a sibling, then a finer, a coarser, an unrelated detection; a
    hierarchical submission repeats each detection at its ancestors, so a coarser one is nearly always
    there)."""
    best_kind, best_k = "missed_no_detection", -1
    for k in np.argsort(-overlap, kind="stable"):
        c, o = det.classes[k], overlap[k]
        if o < NEAR:
            break
        if c == cls:
            if o < MATCH and best_kind == "missed_no_detection":
                best_kind = "missed_localization"
            continue
        if o < MATCH:
            continue
        if c in hierarchy.ancestors(cls):
            kind = "missed_too_coarse"
        elif c in hierarchy.descendants(cls):
            kind = "missed_too_fine"
        else:
            kind = "missed_sibling" if relation(hierarchy, c, cls) == "sibling" else "missed_other_class"
        if _MISS_RANK[kind] > _MISS_RANK.get(best_kind, 0):  # ties: the larger overlap, seen first
            best_kind, best_k = kind, int(k)
    return best_kind, best_k


def analyze_image(
    gt: ImageGroundTruth, det: Detections, hierarchy: Hierarchy, *, group_of_weight: float = 1.0
) -> ImageErrors:
    """Labels one image's detections and misses (see the module docstring)."""
    expanded = gt.expand(hierarchy)
    status = metric_status(expanded, det, group_of_weight=group_of_weight)
    overlap = _overlaps(gt, det)  # [D, G]
    fp_kind = [
        _fp_kind(hierarchy, det.classes[k], overlap[k], gt.classes) if s == "fp" else "" for k, s in enumerate(status)
    ]
    # Which annotated instance (expanded to class c) each TP took: the metric's rule, best overlap.
    origin = [j for j, mid in enumerate(gt.classes) for _ in hierarchy.expand_positive(mid)]
    taken: set[tuple[int, str]] = set()
    for k, s in enumerate(status):
        if s != "tp":
            continue
        c = det.classes[k]
        of_class = [
            j for j in range(len(gt)) if gt.rles[j] is not None and c in hierarchy.expand_positive(gt.classes[j])
        ]
        single = [j for j in of_class if not gt.is_group_of[j]]
        best = max(single, key=lambda j: overlap[k, j], default=None)
        if best is None or overlap[k, best] < MATCH:  # else a group-of region gave the TP
            best = max((j for j in of_class if gt.is_group_of[j]), key=lambda j: overlap[k, j], default=None)
        if best is not None:
            taken.add((best, c))
    misses = []
    for c, j, r in zip(expanded.classes, origin, expanded.rles):
        if r is None or (j, c) in taken or (gt.is_group_of[j] and group_of_weight <= 0):
            continue
        if gt.is_group_of[j] and any(
            det.classes[k] == c and overlap[k, j] >= MATCH and status[k] != "fp" for k in range(len(det))
        ):
            continue  # a group-of region is found by any detection inside it
        kind, k = _miss_kind(hierarchy, c, overlap[:, j], det)
        misses.append((c, kind, k))
    return ImageErrors(gt.image_id, status, fp_kind, misses)


def _fixed(detections: list[Detections], errors: Mapping[str, ImageErrors], kind: str) -> Iterable[Detections]:
    """The detections with one error kind fixed (see the module docstring)."""
    for det in detections:
        e = errors.get(det.image_id)
        if e is None:
            yield det
        elif kind in FP_KINDS:
            yield det.select([k for k, f in enumerate(e.fp_kind) if f != kind])
        else:
            extra = [(c, k) for c, m, k in e.misses if m == kind and k >= 0]
            if not extra:
                yield det
                continue
            idx = [k for _, k in extra]
            yield Detections(
                det.image_id,
                det.height,
                det.width,
                list(det.classes) + [c for c, _ in extra],
                np.concatenate([det.scores, det.scores[idx]]),
                np.concatenate([det.boxes, det.boxes[idx]]),
                list(det.rles) + [det.rles[k] for k in idx],
            )


def rerun_map(
    gts: Mapping[str, ImageGroundTruth], detections: Iterable[Detections], hierarchy: Hierarchy, **kwargs
) -> dict:
    """The challenge metric of ``detections`` (the full :meth:`OidChallengeEvaluator.evaluate` dict)."""
    ev = OidChallengeEvaluator(hierarchy, **kwargs)
    for gt in gts.values():
        ev.add_ground_truth(gt)
    ev.add_predictions(detections)
    return ev.evaluate()


def analyze(
    gts: Mapping[str, ImageGroundTruth],
    detections: Iterable[Detections],
    hierarchy: Hierarchy,
    *,
    group_of_weight: float = 1.0,
    num_workers: int = 1,
) -> dict:
    """The whole analysis.

    Returns:
      {"mAP": float, "per_class_ap": {MID: AP}, "num_gt": {MID: count},
       "counts": {kind: n} over FP_KINDS + MISS_KINDS + ("tp", "fp", "ignored"),
       "per_class": {MID: {kind: n, "tp": n, "fp": n}} (FPs by the detection's class, misses by the
       missed class), "map_gain": {kind: mAP with the kind fixed - mAP} for FP_KINDS + FIXABLE_MISSES}
    """
    dets = [d for d in detections if d.image_id in gts]
    metric_args = {"group_of_weight": group_of_weight, "num_workers": num_workers}
    base = rerun_map(gts, dets, hierarchy, **metric_args)
    errors = {d.image_id: analyze_image(gts[d.image_id], d, hierarchy, group_of_weight=group_of_weight) for d in dets}
    counts = dict.fromkeys((*FP_KINDS, *MISS_KINDS, "tp", "fp", "ignored"), 0)
    per_class: dict[str, dict[str, int]] = {}

    def add(mid: str, key: str) -> None:
        counts[key] += 1
        row = per_class.setdefault(mid, dict.fromkeys(counts, 0))
        row[key] += 1

    predicted = {d.image_id: d for d in dets}
    for image_id, e in errors.items():
        det = predicted[image_id]
        for k, (s, f) in enumerate(zip(e.status, e.fp_kind)):
            add(det.classes[k], s)
            if f:
                add(det.classes[k], f)
        for c, m, _ in e.misses:
            add(c, m)
    for image_id, gt in gts.items():  # images without predictions: every counted instance is missed
        if image_id not in predicted:
            x = gt.expand(hierarchy)
            for c, r, g in zip(x.classes, x.rles, x.is_group_of):
                if r is not None and not (g and group_of_weight <= 0):
                    add(c, "missed_no_detection")
    gains = {}
    for kind in (*FP_KINDS, *FIXABLE_MISSES):
        if counts[kind]:
            gains[kind] = rerun_map(gts, _fixed(dets, errors, kind), hierarchy, **metric_args)["mAP"] - base["mAP"]
        else:
            gains[kind] = 0.0
    return {
        "mAP": base["mAP"],
        "per_class_ap": base["per_class"],
        "num_gt": base["num_gt"],
        "counts": counts,
        "per_class": per_class,
        "map_gain": gains,
    }
