"""Pairwise overlaps of run-length encoded masks, for all pairs of an image at once.

Everything goes through pycocotools' RLE routines (``mask.iou``, ``mask.area``), which work on the
run lengths without decoding to dense arrays; the dense numpy versions at the bottom are the slow
references the tests check them against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask


def _check_sizes(rles_a: Sequence[dict], rles_b: Sequence[dict]) -> None:
    sizes = {tuple(int(v) for v in r["size"]) for r in (*rles_a, *rles_b)}
    if len(sizes) > 1:
        raise ValueError(f"masks of different sizes cannot be compared: {sorted(sizes)}")


def mask_areas(rles: Sequence[dict]) -> np.ndarray:
    """N RLEs -> [N] int64 pixel counts."""
    if not rles:
        return np.zeros([0], np.int64)
    return np.asarray(coco_mask.area(list(rles)), np.int64).reshape([-1])


def pairwise_intersections(rles_a: Sequence[dict], rles_b: Sequence[dict], *, check_sizes: bool = True) -> np.ndarray:
    """Pixel counts of ``a_i AND b_j``: [A, B] int64.

    pycocotools' crowd IoU is ``|a ∩ b| / |a|``, so the intersection is that ratio times ``|a|``,
    rounded (the ratio of two integers below 2**31 is exact to far better than half a pixel).

    Raises:
      ValueError: if the masks do not all have the same size (unless ``check_sizes`` is False because
        the caller checked them: pycocotools itself returns -1 for such pairs).
    """
    n_a, n_b = len(rles_a), len(rles_b)
    if n_a == 0 or n_b == 0:
        return np.zeros([n_a, n_b], np.int64)
    if check_sizes:
        _check_sizes(rles_a, rles_b)
    ratio = np.asarray(coco_mask.iou(list(rles_a), list(rles_b), [1] * n_b), np.float64).reshape([n_a, n_b])
    return np.rint(ratio * mask_areas(rles_a)[:, None]).astype(np.int64)


def pairwise_mask_iou(rles_a: Sequence[dict], rles_b: Sequence[dict]) -> np.ndarray:
    """Mask IoU ``|a ∩ b| / |a ∪ b|`` for every pair: [A, B] float64 in [0, 1] (0 when both are empty)."""
    inter = pairwise_intersections(rles_a, rles_b)
    union = mask_areas(rles_a)[:, None] + mask_areas(rles_b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def rle_boxes(rles: Sequence[dict]) -> np.ndarray:
    """Tight boxes of RLE masks: [N, 4] float64 normalized (ymin, xmin, ymax, xmax); zeros when empty.

    Pixel edges as :func:`hierseg.detections.tight_boxes` (and the official metric's
    ``_to_normalized_box``): a mask covering rows y0..y1 has ymin = y0 / H, ymax = (y1 + 1) / H.
    """
    if not rles:
        return np.zeros([0, 4], np.float64)
    xywh = np.asarray(coco_mask.toBbox(list(rles)), np.float64).reshape([-1, 4])
    hw = np.array([[int(r["size"][0]), int(r["size"][1])] for r in rles], np.float64)
    h, w = hw[:, 0], hw[:, 1]
    return np.stack(
        [xywh[:, 1] / h, xywh[:, 0] / w, (xywh[:, 1] + xywh[:, 3]) / h, (xywh[:, 0] + xywh[:, 2]) / w], axis=1
    )


# ------------------------------------------------------------------------------ dense references
def dense_intersections(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """Reference: [A, H, W] and [B, H, W] bool -> [A, B] int64 intersections."""
    a = np.asarray(masks_a, bool).reshape(len(masks_a), -1).astype(np.int64)
    b = np.asarray(masks_b, bool).reshape(len(masks_b), -1).astype(np.int64)
    return a @ b.T


def dense_mask_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """Reference: [A, H, W] and [B, H, W] bool -> [A, B] float64 IoU (0 when both are empty)."""
    inter = dense_intersections(masks_a, masks_b)
    area_a = np.asarray(masks_a, bool).reshape(len(masks_a), -1).sum(1)
    area_b = np.asarray(masks_b, bool).reshape(len(masks_b), -1).sum(1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)
