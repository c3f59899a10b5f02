"""RPN training targets: label every anchor positive/negative/ignored and sample a fixed-size batch.

Faster R-CNN (Ren et al. 2015, section 3.1.2): an anchor is **positive** if its IoU with some ground
truth box is >= ``fg_iou`` (0.7), or if it is the best anchor of some ground truth box (so every
object gets at least one anchor); **negative** if its best IoU is < ``bg_iou`` (0.3); otherwise
ignored. ``batch_size_per_im`` (256) anchors are then sampled per image with at most ``fg_fraction``
(half) positives, the rest negatives; unsampled anchors are ignored (-1). The thresholds, the sample
size and the box coding weights are the model's (:class:`hierseg.config.model.RPNConfig`), so the
targets always match what the RPN head decodes. Shapes are static: the
sampling uses top-k over random keys rather than dynamic gathers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from hierseg import features
from hierseg.config.model import AnchorConfig, RPNConfig
from hierseg.ops.anchors import generate_anchors
from hierseg.ops.box_coding import encode_boxes
from hierseg.ops.iou import pairwise_iou

POSITIVE = 1
NEGATIVE = 0
IGNORE = -1


def label_anchors(
    anchors: tf.Tensor, gt_boxes_pixels: tf.Tensor, gt_valid: tf.Tensor, config: RPNConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Labels anchors before sampling.

    Args:
      anchors: float32 ``[A, 4]`` pixels (ymin, xmin, ymax, xmax).
      gt_boxes_pixels: float32 ``[N, 4]`` pixels in the same frame.
      gt_valid: bool ``[N]``; invalid rows (padding) match nothing.
      config: the model's RPN config (``fg_iou``, ``bg_iou``).

    Returns:
      labels: int32 ``[A]`` 1 / 0 / -1.
      matched: int32 ``[A]`` in ``0..N``: the ground truth each anchor is assigned to (argmax IoU;
        meaningful where ``labels == 1``; N where there is no valid ground truth).
    """
    gt_valid = tf.cast(gt_valid, tf.bool)
    iou = pairwise_iou(anchors, gt_boxes_pixels)  # [A, N]
    iou = tf.where(gt_valid[None, :], iou, -1.0)
    # A column of -1 after the real ones: with no valid ground truth an anchor's best IoU is -1 (a
    # negative) and its match is index N, the zero row :func:`assign_rpn_targets` appends.
    iou_padded = tf.concat([iou, -tf.ones([tf.shape(anchors)[0], 1])], axis=1)
    best_iou = tf.reduce_max(iou_padded, axis=1)  # [A]
    matched = tf.cast(tf.argmax(iou_padded, axis=1), tf.int32)
    labels = tf.where(best_iou >= config.fg_iou, POSITIVE, tf.where(best_iou < config.bg_iou, NEGATIVE, IGNORE))
    # Each valid ground truth's best anchors (ties included) become positives, even below fg_iou, so
    # no object is left without an anchor; the anchor keeps its argmax match (detectron2's Matcher).
    gt_best = tf.reduce_max(iou, axis=0)  # [N]
    is_best = (iou >= gt_best[None, :]) & (gt_best[None, :] > 0.0) & gt_valid[None, :]
    labels = tf.where(tf.reduce_any(is_best, axis=1), POSITIVE, labels)
    return tf.cast(labels, tf.int32), matched


def sample_anchors(labels: tf.Tensor, config: RPNConfig, seed: tf.Tensor | None = None) -> tf.Tensor:
    """Keeps a random ``config.batch_size_per_im`` subset of labelled anchors, the rest set to -1.

    At most ``round(batch_size_per_im * fg_fraction)`` positives; negatives fill the batch.

    Args:
      labels: int32 ``[A]`` from :func:`label_anchors`.
      seed: int32 ``[2]`` for stateless sampling; None uses op-seeded ``tf.random.uniform``.

    Returns:
      int32 ``[A]`` 1 / 0 / -1 with at most ``batch_size_per_im`` non-negative entries.
    """
    a = tf.shape(labels)[0]
    if seed is None:
        keys = tf.random.uniform([2, a])
    else:
        keys = tf.random.stateless_uniform([2, a], seed)
    size = config.batch_size_per_im
    max_pos = int(round(size * config.fg_fraction))
    k_pos = min(max_pos, labels.shape[0]) if labels.shape[0] is not None else max_pos
    k_neg = min(size, labels.shape[0]) if labels.shape[0] is not None else size
    pos_keys = tf.where(labels == POSITIVE, keys[0], -1.0)
    neg_keys = tf.where(labels == NEGATIVE, keys[1], -1.0)
    pos_top, pos_idx = tf.math.top_k(pos_keys, k=k_pos)
    pos_take = pos_top >= 0.0
    num_pos = tf.reduce_sum(tf.cast(pos_take, tf.int32))
    neg_top, neg_idx = tf.math.top_k(neg_keys, k=k_neg)
    neg_take = (neg_top >= 0.0) & (tf.range(k_neg) < size - num_pos)
    out = tf.fill([a], IGNORE)
    out = tf.tensor_scatter_nd_update(
        out,
        tf.boolean_mask(neg_idx, neg_take)[:, None],
        tf.fill([tf.reduce_sum(tf.cast(neg_take, tf.int32))], NEGATIVE),
    )
    out = tf.tensor_scatter_nd_update(out, tf.boolean_mask(pos_idx, pos_take)[:, None], tf.fill([num_pos], POSITIVE))
    return out


def assign_rpn_targets(
    anchors: tf.Tensor,
    gt_boxes_pixels: tf.Tensor,
    gt_valid: tf.Tensor,
    config: RPNConfig,
    seed: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """RPN targets of one image.

    Args:
      anchors: float32 ``[A, 4]`` pixels (``hierseg.ops.anchors.generate_anchors``).
      gt_boxes_pixels: float32 ``[N, 4]`` pixels in the network input (ymin, xmin, ymax, xmax).
      gt_valid: bool ``[N]``.
      config: the model's :class:`hierseg.config.model.RPNConfig` (thresholds, sample size, fg
        fraction, ``box_coding_weights``).
      seed: int32 ``[2]`` stateless seed for the sampling, or None (op-seeded).

    Returns:
      score_targets: int32 ``[A]``: 1 positive, 0 negative, -1 ignored (incl. not sampled).
      box_targets: float32 ``[A, 4]``: ``encode_boxes(matched gt, anchor, config.box_coding_weights)``
        at positives, 0 elsewhere.
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    gt_boxes_pixels = tf.convert_to_tensor(gt_boxes_pixels, tf.float32)
    labels, matched = label_anchors(anchors, gt_boxes_pixels, gt_valid, config)
    labels = sample_anchors(labels, config, seed)
    boxes_padded = tf.concat([gt_boxes_pixels, tf.zeros([1, 4])], axis=0)  # row N: "no match"
    matched_boxes = tf.gather(boxes_padded, matched)
    deltas = encode_boxes(matched_boxes, anchors, weights=tuple(config.box_coding_weights))
    box_targets = tf.where((labels == POSITIVE)[:, None], deltas, 0.0)
    return labels, tf.cast(box_targets, tf.float32)


def rpn_targets_map(anchor: AnchorConfig, config: RPNConfig, image_size: int) -> Callable[[dict], dict]:
    """Mask R-CNN's per-example training-targets map (``models.factory.build_train_targets``).

    ``example -> example`` with RPN_SCORE_TARGETS int32 ``[A]`` and RPN_BOX_TARGETS float32 ``[A, 4]``
    added: :func:`assign_rpn_targets` on the anchors of ``image_size`` and the valid, non-crowd
    ``GT_BOXES`` (group-of boxes may cover several objects: never an RPN positive), sampled with the
    example's TARGETS_SEED.
    """
    anchors = tf.constant(np.asarray(generate_anchors(anchor, image_size), np.float32))
    num = int(anchors.shape[0])

    def add_targets(example: dict) -> dict:
        pixels = features.boxes_to_input_pixels(example[features.GT_BOXES], example[features.IMAGE_INFO])
        valid = tf.cast(example[features.GT_VALID], tf.bool) & ~tf.cast(example[features.GT_IS_CROWD], tf.bool)
        scores, deltas = assign_rpn_targets(anchors, pixels, valid, config, seed=example.get(features.TARGETS_SEED))
        scores.set_shape([num])
        deltas.set_shape([num, 4])
        return dict(example, **{features.RPN_SCORE_TARGETS: scores, features.RPN_BOX_TARGETS: deltas})

    return add_targets
