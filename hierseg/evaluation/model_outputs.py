"""Batched model outputs -> host-side :class:`Detections`: the one conversion that evaluation
(``hierseg evaluate``) and prediction (``hierseg predict``) share.

The model (and the exported ``serve_images`` signature) returns, per batch:
``DET_BOXES`` [B, D, 4] normalized (ymin, xmin, ymax, xmax) of the original image, ``DET_CLASSES``
[B, D] int 1..K (0 = padding), ``DET_SCORES`` [B, D], ``DET_MASKS`` [B, D, M, M] float32 mask
probabilities inside each box, ``NUM_DETECTIONS`` [B]. Masks are pasted into the original image size
(the bilinear paste of :func:`hierseg.ops.mask_paste.paste_masks`), thresholded and run-length encoded
one detection at a time inside its box's window, so a 10000 x 8000 image with 100 detections never
holds a full-size mask array (``bench/predict.py --big_image`` measures the peak).
"""

from __future__ import annotations

import numpy as np

from hierseg import features
from hierseg.detections import Detections
from hierseg.errors import WorkError
from hierseg.label_map import LabelMap
from hierseg.prediction_file import check_scores
from hierseg.rle import encode_rle_window

ROW_BLOCK = 1024  # output rows pasted per matrix product: bounds the float32 scratch to ROW_BLOCK x box width


def _window(start: float, end: float, size: int, mask_size: int) -> tuple[int, int]:
    """The output pixels [lo, hi) along one axis that a box side start..end (normalized) can touch:
    the mask's bilinear support reaches half a mask pixel past the box (see hierseg.ops.mask_paste)."""
    pad = 0.5 * max(end - start, 1e-8) / mask_size
    lo = max(0, int(np.floor((start - pad) * size - 0.5)))
    hi = min(size, int(np.ceil((end + pad) * size + 0.5)))
    return lo, max(lo, hi)


def _kernel(start: float, end: float, lo: int, hi: int, size: int, mask_size: int) -> np.ndarray:
    """float32 [hi - lo, mask_size] bilinear weights of output pixels lo..hi-1 (paste_masks' kernel)."""
    centers = (np.arange(lo, hi, dtype=np.float32) + 0.5) / np.float32(size)
    side = np.float32(max(end - start, 1e-8))
    u = (centers - np.float32(start)) / side * np.float32(mask_size) - np.float32(0.5)
    return np.maximum(np.float32(0.0), 1.0 - np.abs(u[:, None] - np.arange(mask_size, dtype=np.float32)[None, :]))


def paste_one(
    mask: np.ndarray, box: np.ndarray, height: int, width: int, threshold: float
) -> tuple[int, int, np.ndarray]:
    """One ``[M, M]`` box mask pasted (bilinear) into an ``height x width`` image and thresholded, inside
    the box's window only: returns ``(top, left, window)`` with ``window`` bool ``[h, w]``.

    The same values as :func:`hierseg.ops.mask_paste.paste_masks` (``Ky @ mask @ Kx.T``), computed
    ``ROW_BLOCK`` rows at a time, so memory is the window's, never the image's.
    """
    size = mask.shape[-1]
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    top, bottom = _window(ymin, ymax, height, size)
    left, right = _window(xmin, xmax, width, size)
    mask_x = mask.astype(np.float32) @ _kernel(xmin, xmax, left, right, width, size).T  # [M, w]
    window = np.zeros((bottom - top, right - left), bool)
    for r in range(top, bottom, ROW_BLOCK):
        r1 = min(bottom, r + ROW_BLOCK)
        window[r - top : r1 - top] = _kernel(ymin, ymax, r, r1, height, size) @ mask_x >= threshold
    return top, left, window


def filled_box(box: np.ndarray, height: int, width: int) -> tuple[int, int, np.ndarray]:
    """``(top, left, window)``: the pixels whose centres lie inside one normalized box, as a bool window
    (the mask of a box-only detection); memory is the box's, like :func:`paste_one`."""
    rows = np.nonzero(((np.arange(height) + 0.5) / height >= box[0]) & ((np.arange(height) + 0.5) / height < box[2]))[0]
    cols = np.nonzero(((np.arange(width) + 0.5) / width >= box[1]) & ((np.arange(width) + 0.5) / width < box[3]))[0]
    if not len(rows) or not len(cols):
        return 0, 0, np.zeros((0, 0), bool)
    return int(rows[0]), int(cols[0]), np.ones((len(rows), len(cols)), bool)


def image_detections(
    outputs: dict[str, np.ndarray],
    b: int,
    image_id: str,
    height: int,
    width: int,
    label_map: LabelMap,
    *,
    min_score: float = 0.0,
    mask_threshold: float = 0.5,
    drop_empty_masks: bool = False,
    source: str = "model outputs",
) -> Detections:
    """Image ``b`` of a batch of outputs (numpy) -> :class:`Detections` at ``height`` x ``width``.

    Detections scoring below ``min_score`` and padding rows (class 0) are left out. With
    ``drop_empty_masks`` a detection whose pasted mask has no pixel is left out too (prediction does,
    since a submission cannot carry an empty mask; COCO evaluation keeps them as the model's output).
    """
    num = int(outputs[features.NUM_DETECTIONS][b])
    classes = outputs[features.DET_CLASSES][b, :num].astype(np.int64)
    try:  # a NaN, infinite or out-of-range score is a broken model, never silently dropped
        scores = check_scores(outputs[features.DET_SCORES][b, :num], f"{source}: image {image_id}").astype(np.float32)
    except ValueError as e:
        raise WorkError(str(e)) from None
    bad = np.flatnonzero((classes < 0) | (classes > label_map.num_classes))
    if len(bad):
        raise WorkError(
            f"{source}: image {image_id}: instance {int(bad[0])}: class id {int(classes[bad[0]])} is not in the "
            f"label map (1..{label_map.num_classes})"
        )
    keep = np.flatnonzero((scores >= min_score) & (classes >= 1))
    if not len(keep):
        return Detections(image_id, height, width)
    boxes = np.clip(outputs[features.DET_BOXES][b, keep].astype(np.float32), 0.0, 1.0)
    box_masks = outputs.get(features.DET_MASKS)
    rles, nonempty = [], np.ones(len(keep), bool)
    for i, k in enumerate(keep):  # one detection at a time, inside its box: memory is one box's
        if box_masks is not None:
            top, left, window = paste_one(box_masks[b, k], boxes[i], height, width, mask_threshold)
        else:  # a box-only model (output_kind "boxes"): each mask is its box, filled; predict refuses these
            top, left, window = filled_box(boxes[i], height, width)
        nonempty[i] = window.any()
        rles.append(encode_rle_window(window, top, left, height, width))
    if drop_empty_masks:
        keep, boxes = keep[nonempty], boxes[nonempty]
        rles = [r for r, ok in zip(rles, nonempty) if ok]
        if not len(keep):
            return Detections(image_id, height, width)
    mids = [label_map.mid_of(int(c)) for c in classes[keep]]
    return Detections(image_id, height, width, mids, scores[keep], boxes, rles)
