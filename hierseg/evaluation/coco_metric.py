"""COCO box and mask mAP of one layer's detections on the prepared validation JSON (pycocotools).

The ground truth is ``validation_coco.json`` written by ``hierseg prepare``: images carry a numeric
``id``, ``file_name`` ``<ImageID>.jpg`` (the ImageID is its stem, or an explicit ``source_id`` field of
other writers) and their original ``height``/``width``; categories have
ids ``1..K`` and the ``mid`` of the layer's label map. Detections are :class:`hierseg.detections.Detections`
(classes are MIDs, masks are RLEs at the original resolution) or per-image dicts of the same fields.

Every ground-truth image is evaluated, so an image without detections counts as all misses;
detections of images or classes the JSON does not know are skipped and counted in the result.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.evaluation.tables import coco_per_class
from hierseg.label_map import LabelMap
from hierseg.mask_resize import resize_rle

# Names of COCOeval.stats, in order (pycocotools summarize()).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "ARmax1", "ARmax10", "ARmax100", "ARs", "ARm", "ARl")
IOU_TYPES = {"box": "bbox", "mask": "segm"}


def _as_detections(d: Detections | Mapping[str, Any]) -> Detections:
    if isinstance(d, Detections):
        return d
    fields = {k: d[k] for k in ("image_id", "height", "width", "classes", "scores", "boxes", "rles") if k in d}
    if "image_id" not in fields and "source_id" in d:
        fields["image_id"] = d["source_id"]
    fields["classes"] = list(fields.get("classes", []))
    return Detections(**fields)


def load_ground_truth(coco_json_path: str, label_map: LabelMap) -> COCO:
    """Reads the COCO JSON (local or gs://) and checks its categories against the label map."""
    import tensorflow as tf

    with tf.io.gfile.GFile(coco_json_path, "r") as f:
        dataset = json.load(f)
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"{coco_json_path}: not a COCO JSON (no '{key}')")
    for cat in dataset["categories"]:
        mid = cat.get("mid")
        if mid is not None and (mid not in label_map.mids or label_map.id_of(mid) != cat["id"]):
            raise ValueError(f"{coco_json_path}: category id {cat['id']} ({mid}) disagrees with the label map")
    for img in dataset["images"]:
        if "source_id" not in img:  # other COCO writers: the ImageID is the file name's stem
            if "file_name" not in img:
                raise ValueError(f"{coco_json_path}: image id {img.get('id')} has neither source_id nor file_name")
            img["source_id"] = img["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    dataset.setdefault("info", {})
    gt = COCO()
    gt.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def to_coco_results(
    detections: Iterable[Detections | Mapping[str, Any]],
    gt: COCO,
    label_map: LabelMap,
) -> tuple[list[dict], list[dict], dict[str, int]]:
    """Detections -> (box results, mask results, counts) in the COCO results format.

    Boxes become ``[x, y, w, h]`` pixels of the ground-truth image size; classes (MIDs, or ids
    ``1..K`` as ints) become category ids; masks of another resolution are resized to the image.
    """
    by_source = {img["source_id"]: img for img in gt.dataset["images"]}
    boxes_out: list[dict] = []
    masks_out: list[dict] = []
    counts = {"num_detections": 0, "skipped_unknown_image": 0, "skipped_unknown_class": 0, "resized_masks": 0}
    for item in detections:
        det = _as_detections(item)
        img = by_source.get(det.image_id)
        if img is None:
            counts["skipped_unknown_image"] += len(det)
            continue
        h, w = int(img["height"]), int(img["width"])
        for cls, score, box, rle in zip(det.classes, det.scores, det.boxes, det.rles):
            if isinstance(cls, (int, np.integer)):
                cat = int(cls) if 1 <= int(cls) <= label_map.num_classes else None
            else:
                cat = label_map.id_of(cls) if cls in label_map.mids else None
            if cat is None:
                counts["skipped_unknown_class"] += 1
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in box)
            boxes_out.append(
                {
                    "image_id": img["id"],
                    "category_id": cat,
                    "score": float(score),
                    "bbox": [xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h],
                }
            )
            if list(rle["size"]) != [h, w]:
                rle = resize_rle(rle, h, w)  # PIL's NEAREST, as the ground truth everywhere else
                counts["resized_masks"] += 1
            counts_str = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
            masks_out.append(
                {
                    "image_id": img["id"],
                    "category_id": cat,
                    "score": float(score),
                    "segmentation": {"size": [h, w], "counts": counts_str},
                }
            )
            counts["num_detections"] += 1
    return boxes_out, masks_out, counts


def _run_cocoeval(gt: COCO, results: list[dict], iou_type: str) -> tuple[list[float], dict[int, dict[str, float]]]:
    """(COCOeval.stats, per-class {category id: {"AP", "AP50"}})."""
    if not results:  # loadRes cannot take an empty list: nothing detected is AP 0 wherever there is GT
        with_gt = {a["category_id"] for a in gt.dataset["annotations"]}
        per_class = {c: dict.fromkeys(("AP", "AP50"), 0.0 if c in with_gt else -1.0) for c in gt.getCatIds()}
        return [0.0 if gt.dataset["annotations"] else -1.0] * len(STAT_NAMES), per_class
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.params.imgIds = sorted(gt.getImgIds())  # every GT image, detected or not
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats], coco_per_class(ev)


def _class_entries(gt: COCO, label_map: LabelMap) -> dict[str, dict[str, Any]]:
    """{MID: {"name", "num_gt" (non-crowd instances)}} for every class of the label map."""
    counts = {c: 0 for c in range(1, label_map.num_classes + 1)}
    for a in gt.dataset["annotations"]:
        if not a.get("iscrowd", 0) and a["category_id"] in counts:
            counts[a["category_id"]] += 1
    return {label_map.mid_of(c): {"name": label_map.names[c - 1], "num_gt": n} for c, n in counts.items()}


def evaluate_coco(
    detections: Iterable[Detections | Mapping[str, Any]],
    coco_json_path: str,
    label_map: LabelMap,
    iou_types: Iterable[str] = ("box", "mask"),
) -> dict[str, float]:
    """COCO metrics of one layer's detections.

    Args:
      detections: one :class:`Detections` (or dict with its fields; ``source_id`` may stand for
        ``image_id``) per image; ``image_id`` is matched to the JSON images' ``source_id``.
      coco_json_path: the prepared ``validation_coco.json`` (local or gs://).
      label_map: the layer's label map (MID -> category id).
      iou_types: any of "box", "mask".

    Returns:
      ``{"box/AP": ..., "box/AP50": ..., ..., "mask/ARl": ..., "num_images": ..., "num_detections": ...,
      "skipped_unknown_image": ..., "skipped_unknown_class": ..., "resized_masks": ...,
      "per_class": {MID: {"name", "num_gt", "box/AP", "box/AP50", "mask/AP", "mask/AP50"}}}``; AP values in
      ``[0, 1]``, -1 where COCO has nothing to measure (e.g. no small objects).
    """
    iou_types = list(iou_types)
    for t in iou_types:
        if t not in IOU_TYPES:
            raise ValueError(f"unknown iou type '{t}' (use {sorted(IOU_TYPES)})")
    gt = load_ground_truth(coco_json_path, label_map)
    box_results, mask_results, counts = to_coco_results(detections, gt, label_map)
    metrics: dict[str, Any] = {}
    per_class = _class_entries(gt, label_map)
    for t in iou_types:
        stats, by_cat = _run_cocoeval(gt, box_results if t == "box" else mask_results, IOU_TYPES[t])
        metrics.update({f"{t}/{name}": value for name, value in zip(STAT_NAMES, stats)})
        for cat, values in by_cat.items():
            per_class[label_map.mid_of(cat)].update({f"{t}/{k}": v for k, v in values.items()})
    metrics["per_class"] = per_class
    metrics["num_images"] = len(gt.dataset["images"])
    metrics.update(counts)
    return metrics


def write_metrics_json(metrics: Mapping[str, Any], path: str) -> None:
    """Writes metrics as pretty JSON, atomically (temp file renamed into place; local or gs://)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (np.floating, float)):
            v = float(v)
            return v if math.isfinite(v) else None
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [plain(x) for x in v]
        return v

    text = json.dumps(plain(metrics), indent=2, sort_keys=True)
    atomic_write.write_text(path, text + "\n")
