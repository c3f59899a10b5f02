"""Inference post-processing: class-aware NMS to a fixed number of detections, without a loop over classes.

From the box head's class scores ``[B, R, K]`` the best ``pre_nms_topk`` (ROI, class) pairs of each
image are taken from the flattened ``R * K`` scores, their class-specific boxes decoded, and one NMS
runs over all of them with every class moved to its own coordinate range
(:func:`hierseg.ops.nms.offset_boxes_by_class`), so boxes of different classes never suppress each
other. The graph is the same size for 10 or 300 classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from hierseg.config.model import DetectionConfig
from hierseg.ops.box_coding import clip_boxes, decode_boxes
from hierseg.ops.nms import batched_nms, offset_boxes_by_class


def class_probabilities(class_logits: tf.Tensor, classification: str) -> tf.Tensor:
    """float32 ``[B, R, K]`` foreground class probabilities (softmax drops the background column)."""
    class_logits = tf.cast(class_logits, tf.float32)
    if classification == "softmax":
        return tf.nn.softmax(class_logits, axis=-1)[..., 1:]
    return tf.sigmoid(class_logits)


def detect(
    class_logits: tf.Tensor,
    box_deltas: tf.Tensor,
    rois: tf.Tensor,
    roi_valid: tf.Tensor,
    image_hw: tf.Tensor,
    config: DetectionConfig,
    classification: str = "softmax",
    weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
) -> dict[str, tf.Tensor]:
    """Final detections of a batch, in input-image pixels.

    Args:
      class_logits: ``[B, R, K(+1)]``; box_deltas ``[B, R, K, 4]``; rois ``[B, R, 4]`` pixels;
      roi_valid bool ``[B, R]``; image_hw float32 ``[B, 2]`` content size for clipping.
    Returns:
      ``boxes`` float32 ``[B, D, 4]`` pixels, ``classes`` int32 ``[B, D]`` 1..K (0 padding), ``scores``
      ``[B, D]`` (0 padding), ``valid`` bool ``[B, D]``, ``num_detections`` int32 ``[B]``; D =
      ``config.max_detections``, detections sorted by descending score.
    """
    probs = class_probabilities(class_logits, classification)
    probs = tf.where(roi_valid[..., None], probs, 0.0)
    batch = tf.shape(probs)[0]
    num_rois, num_classes = probs.shape[1], probs.shape[2]
    flat = tf.reshape(probs, [batch, num_rois * num_classes])
    k = min(config.pre_nms_topk, num_rois * num_classes)
    scores, pair = tf.math.top_k(flat, k=k)
    roi_index = pair // num_classes
    class_index = pair % num_classes  # 0-based class
    deltas = tf.gather(tf.reshape(box_deltas, [batch, num_rois * num_classes, 4]), pair, batch_dims=1)
    boxes = decode_boxes(deltas, tf.gather(tf.cast(rois, tf.float32), roi_index, batch_dims=1), weights)
    boxes = clip_boxes(boxes, image_hw[:, 0:1], image_hw[:, 1:2])
    nonempty = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    scores = tf.where(nonempty, scores, 0.0)
    shifted = offset_boxes_by_class(boxes, class_index, tf.reduce_max(image_hw))
    keep, valid = batched_nms(
        shifted, scores, config.max_detections, config.nms_iou, score_threshold=config.score_threshold
    )
    out_boxes = tf.where(valid[..., None], tf.gather(boxes, keep, batch_dims=1), 0.0)
    out_scores = tf.where(valid, tf.gather(scores, keep, batch_dims=1), 0.0)
    out_classes = tf.where(valid, tf.gather(class_index, keep, batch_dims=1) + 1, 0)
    return {
        "boxes": out_boxes,
        "classes": tf.cast(out_classes, tf.int32),
        "scores": out_scores,
        "valid": valid,
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1),
    }
