"""Inference post-processing: per-class top-k, per-class NMS and the best detections, without a loop over classes.

As the seed (TPU Mask R-CNN ``generate_detections``): for every class the ``pre_nms_topk`` ROIs with the
best scores of that class are taken (one ``top_k`` over ``[B, K, R]``), their class-specific boxes
decoded and clipped, and NMS runs for every class at once with ``[B * K]`` as the batch of
:func:`hierseg.ops.nms.batched_nms`; the ``max_detections`` best survivors over all classes are the
detections. A global top-k of (ROI, class) pairs would let a few confident classes crowd out every
candidate of a rarer one; here each class keeps its own candidates. The graph is the same size for 10
or 300 classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from hierseg.config.model import DetectionConfig
from hierseg.ops.box_coding import clip_boxes, decode_boxes
from hierseg.ops.nms import batched_nms


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
    k = min(config.pre_nms_topk, num_rois)  # candidates per class
    scores, roi_index = tf.math.top_k(tf.transpose(probs, [0, 2, 1]), k=k)  # [B, K, k]
    deltas = tf.gather(tf.transpose(box_deltas, [0, 2, 1, 3]), roi_index, batch_dims=2)  # [B, K, k, 4]
    anchors = tf.gather(tf.cast(rois, tf.float32), tf.reshape(roi_index, [batch, num_classes * k]), batch_dims=1)
    boxes = decode_boxes(tf.reshape(deltas, [batch, num_classes * k, 4]), anchors, weights)
    boxes = clip_boxes(boxes, image_hw[:, 0:1], image_hw[:, 1:2])  # [B, K * k, 4]
    nonempty = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    scores = tf.where(nonempty, tf.reshape(scores, [batch, num_classes * k]), 0.0)

    # Per-class NMS with the classes as the batch: [B * K, k] -> the best per_class of each class.
    per_class = min(config.max_detections, k)
    keep, kept = batched_nms(
        tf.reshape(boxes, [-1, k, 4]),
        tf.reshape(scores, [-1, k]),
        per_class,
        config.nms_iou,
        score_threshold=config.score_threshold,
    )
    keep = tf.reshape(keep, [batch, num_classes, per_class]) + tf.range(num_classes)[None, :, None] * k
    keep = tf.reshape(keep, [batch, num_classes * per_class])
    kept = tf.reshape(kept, [batch, num_classes * per_class])
    survivor_scores = tf.where(kept, tf.gather(scores, keep, batch_dims=1), -1.0)
    top_scores, top = tf.math.top_k(survivor_scores, k=min(config.max_detections, num_classes * per_class))
    index = tf.gather(keep, top, batch_dims=1)  # into K * k
    valid = top_scores > 0.0
    out_boxes = tf.where(valid[..., None], tf.gather(boxes, index, batch_dims=1), 0.0)
    out_scores = tf.where(valid, top_scores, 0.0)
    out_classes = tf.where(valid, index // k + 1, 0)
    pad = config.max_detections - top.shape[1]
    if pad > 0:  # fewer candidates than detections (tiny heads): pad to the static D
        out_boxes = tf.pad(out_boxes, [[0, 0], [0, pad], [0, 0]])
        out_scores, out_classes = tf.pad(out_scores, [[0, 0], [0, pad]]), tf.pad(out_classes, [[0, 0], [0, pad]])
        valid = tf.pad(valid, [[0, 0], [0, pad]])
    return {
        "boxes": out_boxes,
        "classes": tf.cast(out_classes, tf.int32),
        "scores": out_scores,
        "valid": valid,
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1),
    }
