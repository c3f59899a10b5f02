"""Ground truth to draw beside predictions (``predict --visualize``, the demo grid) and in
``hierseg browse``: an Open Images folder's annotations as :class:`hierseg.serving.render.Instance`
lists, per image."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from hierseg.serving.render import Instance


def instances_of(gt, name: Callable[[str], str]) -> list[Instance]:
    """One image's :class:`ensembles.metric.groundtruth.ImageGroundTruth` (as annotated, not expanded)
    -> instances: masks, group-of regions (hatched) and boxes without a mask (dashed), masks first."""
    from hierseg.oid.mask_codec import decode_rle

    out = []
    for c, box, rle, group in zip(gt.classes, gt.boxes, gt.rles, gt.is_group_of):
        style = "box_only" if rle is None else ("group_of" if group else "mask")
        text = name(c) + (" (group)" if group else "") + (" (box)" if rle is None else "")
        out.append(Instance(c, tuple(float(v) for v in box), text, None if rle is None else decode_rle(rle) > 0, style))
    order = np.argsort([("mask", "group_of", "box_only").index(i.style) for i in out], kind="stable")
    return [out[i] for i in order]


def oid_split_of(images_dir: str) -> tuple[str, str] | None:
    """``(oid_dir, split)`` when ``images_dir`` is the image folder of an annotated split of an Open
    Images folder (``OID/validation`` with ``OID/challenge-2019-validation-segmentation-masks.csv``)."""
    from hierseg.oid.layout import OidPaths

    oid_dir, split = os.path.split(os.path.normpath(images_dir))
    try:
        paths = OidPaths.from_dir(oid_dir)
        return (oid_dir, split) if os.path.exists(paths.masks_csv(split)) else None
    except (ValueError, KeyError, FileNotFoundError):
        return None


def load_ground_truth_instances(oid_dir: str, split: str, hierarchy) -> dict[str, list[Instance]]:
    """{ImageID: instances} of every annotated image of the split."""
    from ensembles.metric.groundtruth import load_ground_truth

    gts, _ = load_ground_truth(oid_dir, split, hierarchy)
    return {i: instances_of(g, hierarchy.name) for i, g in gts.items()}


@lru_cache(maxsize=4)
def _ground_truth_of_dir(images_dir: str) -> dict:
    """{ImageID: ImageGroundTruth} of the annotated split ``images_dir`` is, else {} (loaded once)."""
    found = oid_split_of(images_dir)
    if found is None:
        return {}
    from ensembles.metric.groundtruth import load_ground_truth
    from hierseg.oid.layout import OidPaths

    oid_dir, split = found
    return load_ground_truth(oid_dir, split, OidPaths.from_dir(oid_dir).load_hierarchy())[0]


def write_prediction_png(
    image: np.ndarray, detections, name: Callable[[str], str], png: str, *, image_path: str, min_score: float
) -> None:
    """``predict --visualize``'s picture of one image: its ground truth beside the prediction when the
    image lies in an annotated split folder of an Open Images dataset (``OID/validation/``), and the
    colour legend (:func:`hierseg.serving.render.render_prediction`)."""
    from hierseg.serving.render import render_prediction
    from hierseg.serving.visualize import save_png

    gt = _ground_truth_of_dir(os.path.dirname(os.path.abspath(image_path))).get(detections.image_id)
    truth = instances_of(gt, name) if gt is not None else None
    save_png(render_prediction(image, detections, name, ground_truth=truth, min_score=min_score), png)
