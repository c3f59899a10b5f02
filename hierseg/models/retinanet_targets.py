"""RetinaNet anchor targets of one example (a per-example tf.data map, so the model gets fixed shapes).

Every anchor is labelled by its best IoU with the image's non-crowd gt boxes (the seed's ArgMaxMatcher
with ``force_match_for_each_row``): positive (the matched gt's class 1..K) when IoU >= ``match_iou``
or when it is the best anchor of some gt box; negative (0) when IoU < ``unmatched_iou``; ignored (-1)
in between. Unlike the RPN no subset is sampled: the focal loss takes every labelled anchor. The
labelling is :func:`hierseg.input.anchor_targets.label_anchors` (shared with the RPN), the deltas
:func:`hierseg.ops.box_coding.encode_boxes` with ``retinanet.box_coding_weights``.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig, RPNConfig
from hierseg.config.retinanet import RetinaNetConfig
from hierseg.input.anchor_targets import POSITIVE, label_anchors
from hierseg.ops.anchors import generate_anchors
from hierseg.ops.box_coding import encode_boxes


def assign_anchor_targets(
    anchors: tf.Tensor,
    gt_boxes_pixels: tf.Tensor,
    gt_classes: tf.Tensor,
    gt_usable: tf.Tensor,
    config: RetinaNetConfig,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Targets of one image.

    Args:
      anchors: float32 ``[A, 4]`` input pixels (``hierseg.ops.anchors.generate_anchors``).
      gt_boxes_pixels: float32 ``[N, 4]`` input pixels; gt_classes int32 ``[N]`` 1..K;
      gt_usable: bool ``[N]``: valid and not crowd (other rows match nothing).
    Returns:
      class_targets int32 ``[A]`` (1..K / 0 / -1) and box_targets float32 ``[A, 4]`` (0 where not positive).
    """
    thresholds = RPNConfig(fg_iou=config.match_iou, bg_iou=config.unmatched_iou)
    labels, matched = label_anchors(anchors, gt_boxes_pixels, gt_usable, thresholds)
    classes_padded = tf.concat([tf.cast(gt_classes, tf.int32), [0]], axis=0)  # row N: "no match"
    boxes_padded = tf.concat([tf.cast(gt_boxes_pixels, tf.float32), tf.zeros([1, 4])], axis=0)
    positive = labels == POSITIVE
    class_targets = tf.where(positive, tf.gather(classes_padded, matched), labels)
    deltas = encode_boxes(tf.gather(boxes_padded, matched), anchors, tuple(config.box_coding_weights))
    return class_targets, tf.where(positive[:, None], deltas, 0.0)


def add_anchor_targets(features: dict, anchors: tf.Tensor, config: RetinaNetConfig) -> dict:
    """Returns ``features`` (one example, :mod:`hierseg.features` keys) plus ANCHOR_CLASS_TARGETS ``[A]``
    and ANCHOR_BOX_TARGETS ``[A, 4]``, computed from GT_BOXES, GT_CLASSES, GT_VALID, GT_IS_CROWD, IMAGE_INFO."""
    pixels = F.boxes_to_input_pixels(features[F.GT_BOXES], features[F.IMAGE_INFO])
    usable = tf.cast(features[F.GT_VALID], tf.bool) & ~tf.cast(features[F.GT_IS_CROWD], tf.bool)
    classes, boxes = assign_anchor_targets(anchors, pixels, features[F.GT_CLASSES], usable, config)
    num_anchors = anchors.shape[0]
    classes.set_shape([num_anchors])
    boxes.set_shape([num_anchors, 4])
    return {**features, F.ANCHOR_CLASS_TARGETS: classes, F.ANCHOR_BOX_TARGETS: boxes}


def retinanet_targets_map(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    """The per-example training-targets map of ``model.type: retinanet`` (see hierseg.models.factory)."""
    anchors = generate_anchors(model_config.anchor, image_size)

    def add_targets(example: dict) -> dict:
        return add_anchor_targets(example, anchors, model_config.retinanet)

    return add_targets
