"""Batched, padded non-maximum suppression with static output shapes (XLA/TPU friendly).

Greedy NMS: boxes are visited in descending score order; a box is kept unless its IoU with an already
kept box is **greater than** ``iou_threshold``; boxes whose score is not greater than
``score_threshold`` are never kept. The TF op is the tiled, batched algorithm of
``tf.image.non_max_suppression_padded`` (a ``while_loop`` of dense IoU tiles, compiles with XLA).

Class-aware NMS without a loop over classes uses :func:`offset_boxes_by_class`: boxes of different
classes are moved apart so that they never overlap, then one NMS runs over all of them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hierseg.ops.iou import pairwise_iou_numpy


def batched_nms(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    max_output_size: int,
    iou_threshold: float,
    score_threshold: float = float("-inf"),
) -> tuple[tf.Tensor, tf.Tensor]:
    """Selects up to ``max_output_size`` boxes per image.

    Args:
      boxes: float ``[B, N, 4]`` (ymin, xmin, ymax, xmax), any unit.
      scores: float ``[B, N]``.
    Returns:
      ``indices`` int32 ``[B, max_output_size]`` into N in descending score order (padding rows are 0),
      ``valid`` bool ``[B, max_output_size]`` (True for the first ``num_valid`` rows of each image).
    """
    boxes = tf.cast(boxes, tf.float32)
    # -inf scores break the op's ordering; the lowest finite float sorts the same way.
    lowest = float(np.finfo(np.float32).min)
    scores = tf.maximum(tf.cast(scores, tf.float32), lowest)
    n = boxes.shape[-2]
    if n is not None and n < max_output_size:
        # The tiled op cannot return more rows than it has boxes: pad with never-kept boxes.
        pad = max_output_size - n
        boxes = tf.pad(boxes, [[0, 0], [0, pad], [0, 0]])
        scores = tf.pad(scores, [[0, 0], [0, pad]], constant_values=lowest)
        score_threshold = max(score_threshold, lowest)  # never keep the padding
    indices, num_valid = tf.image.non_max_suppression_padded(
        boxes,
        scores,
        max_output_size,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        pad_to_max_output_size=True,
    )
    indices = tf.cast(indices[:, :max_output_size], tf.int32)
    valid = tf.range(max_output_size)[None, :] < num_valid[:, None]
    return tf.where(valid, indices, 0), valid


def offset_boxes_by_class(boxes: tf.Tensor, classes: tf.Tensor, max_coordinate) -> tf.Tensor:
    """Shifts ``boxes [..., 4]`` by ``classes [...] * (max_coordinate + 1)`` so classes never overlap.

    ``max_coordinate`` (float or scalar tensor) bounds every coordinate of ``boxes``.
    """
    offset = tf.cast(classes, boxes.dtype) * (tf.cast(max_coordinate, boxes.dtype) + 1.0)
    return boxes + offset[..., None]


def nms_numpy(
    boxes: np.ndarray,
    scores: np.ndarray,
    max_output_size: int,
    iou_threshold: float,
    score_threshold: float = float("-inf"),
) -> np.ndarray:
    """Reference greedy NMS of one image: the kept indices (descending score, ties by lower index)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    iou = pairwise_iou_numpy(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if len(kept) == max_output_size:
            break
        if scores[i] <= score_threshold:
            continue
        if all(iou[i, j] <= iou_threshold for j in kept):
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)
