"""Intersection over union of two sets of boxes, batched, padding-safe."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def box_area(boxes: tf.Tensor) -> tf.Tensor:
    """``[...]`` areas of ``[..., 4]`` (ymin, xmin, ymax, xmax) boxes; degenerate boxes have area 0."""
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def pairwise_iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """float32 ``[..., N, M]`` IoU of ``boxes_a [..., N, 4]`` with ``boxes_b [..., M, 4]``.

    Boxes are (ymin, xmin, ymax, xmax) in any common unit; leading dims must match (or broadcast).
    A pair whose union is empty (e.g. all-zero padding rows) has IoU 0.
    """
    a = tf.cast(boxes_a, tf.float32)
    b = tf.cast(boxes_b, tf.float32)
    ymin = tf.maximum(a[..., :, None, 0], b[..., None, :, 0])
    xmin = tf.maximum(a[..., :, None, 1], b[..., None, :, 1])
    ymax = tf.minimum(a[..., :, None, 2], b[..., None, :, 2])
    xmax = tf.minimum(a[..., :, None, 3], b[..., None, :, 3])
    inter = tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def pairwise_iou_numpy(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Reference of :func:`pairwise_iou` for unbatched ``[N, 4]`` x ``[M, 4]`` (loops)."""
    out = np.zeros((len(boxes_a), len(boxes_b)), np.float64)
    for i, a in enumerate(np.asarray(boxes_a, np.float64)):
        for j, b in enumerate(np.asarray(boxes_b, np.float64)):
            ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = ih * iw
            union = max(a[2] - a[0], 0) * max(a[3] - a[1], 0) + max(b[2] - b[0], 0) * max(b[3] - b[1], 0) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out
