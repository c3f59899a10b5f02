"""The Mask R-CNN losses, one function each, all returning a float32 scalar.

Every loss is first normalized **per image** (by that image's sampled anchors, sampled ROIs or
foreground mask pixels), then averaged over the batch with the per-example weights::

    loss = sum_b weight_b * loss_b / B

so an example with weight 2 counts as if it appeared twice, and the result is the per-replica mean a
distribution strategy sums over replicas (dividing by the replica count). Inputs may be bfloat16;
everything is computed in float32.
"""

from __future__ import annotations

import tensorflow as tf


def smooth_l1(diff: tf.Tensor, beta: float) -> tf.Tensor:
    """Elementwise smooth L1 (Fast R-CNN): ``0.5 x^2 / beta`` if ``|x| < beta`` else ``|x| - 0.5 beta``."""
    x = tf.abs(diff)
    if beta <= 0.0:
        return x
    return tf.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


def _weighted_batch_mean(per_image: tf.Tensor, example_weights: tf.Tensor) -> tf.Tensor:
    per_image = tf.cast(per_image, tf.float32)
    weights = tf.cast(example_weights, tf.float32)
    return tf.reduce_sum(per_image * weights) / tf.cast(tf.shape(per_image)[0], tf.float32)


def _safe_count(x: tf.Tensor) -> tf.Tensor:
    return tf.maximum(tf.reduce_sum(tf.cast(x, tf.float32), axis=-1), 1.0)


def rpn_score_loss(logits: tf.Tensor, score_targets: tf.Tensor, example_weights: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy of objectness ``logits [B, A]`` on sampled anchors (``score_targets`` 1/0; -1 ignored)."""
    logits = tf.cast(logits, tf.float32)
    sampled = score_targets >= 0
    labels = tf.cast(score_targets > 0, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    per_image = tf.reduce_sum(tf.where(sampled, bce, 0.0), axis=-1) / _safe_count(sampled)
    return _weighted_batch_mean(per_image, example_weights)


def rpn_box_loss(
    deltas: tf.Tensor,
    box_targets: tf.Tensor,
    score_targets: tf.Tensor,
    example_weights: tf.Tensor,
    beta: float = 1.0 / 9.0,
) -> tf.Tensor:
    """Smooth L1 of anchor ``deltas [B, A, 4]`` on positives, normalized by the sampled anchor count."""
    positive = score_targets > 0
    loss = tf.reduce_sum(smooth_l1(tf.cast(deltas, tf.float32) - tf.cast(box_targets, tf.float32), beta), axis=-1)
    per_image = tf.reduce_sum(tf.where(positive, loss, 0.0), axis=-1) / _safe_count(score_targets >= 0)
    return _weighted_batch_mean(per_image, example_weights)


def fast_rcnn_class_loss(
    logits: tf.Tensor,
    classes: tf.Tensor,
    sample_weights: tf.Tensor,
    example_weights: tf.Tensor,
    classification: str = "softmax",
    sigmoid_loss: str = "bce",
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> tf.Tensor:
    """Classification loss of the sampled ROIs.

    Args:
      logits: ``[B, R, K + 1]`` (softmax, column 0 background) or ``[B, R, K]`` (sigmoid).
      classes: int32 ``[B, R]`` targets 0..K (0 background); sample_weights ``[B, R]`` (0 = filler).
    softmax: mean cross-entropy over sampled ROIs. sigmoid "bce": per-class BCE summed over classes,
    mean over sampled ROIs. sigmoid "focal": focal loss summed, divided by the foreground count.
    """
    logits = tf.cast(logits, tf.float32)
    sample_weights = tf.cast(sample_weights, tf.float32)
    if classification == "softmax":
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=logits)
        per_image = tf.reduce_sum(ce * sample_weights, axis=-1) / _safe_count(sample_weights)
        return _weighted_batch_mean(per_image, example_weights)
    num_classes = logits.shape[-1]
    labels = tf.one_hot(classes - 1, num_classes, dtype=tf.float32)  # class 0 -> all zeros
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    if sigmoid_loss == "focal":
        p = tf.sigmoid(logits)
        p_t = labels * p + (1 - labels) * (1 - p)
        alpha_t = labels * focal_alpha + (1 - labels) * (1 - focal_alpha)
        loss = tf.reduce_sum(alpha_t * (1 - p_t) ** focal_gamma * bce, axis=-1)
        normalizer = _safe_count((classes > 0) & (sample_weights > 0))
    else:
        loss = tf.reduce_sum(bce, axis=-1)
        normalizer = _safe_count(sample_weights)
    per_image = tf.reduce_sum(loss * sample_weights, axis=-1) / normalizer
    return _weighted_batch_mean(per_image, example_weights)


def fast_rcnn_box_loss(
    class_deltas: tf.Tensor,
    box_targets: tf.Tensor,
    classes: tf.Tensor,
    sample_weights: tf.Tensor,
    example_weights: tf.Tensor,
    beta: float = 1.0,
) -> tf.Tensor:
    """Smooth L1 of the gt-class deltas ``class_deltas [B, R, 4]`` on foreground ROIs, / sampled ROI count."""
    foreground = (classes > 0) & (tf.cast(sample_weights, tf.float32) > 0)
    loss = tf.reduce_sum(smooth_l1(tf.cast(class_deltas, tf.float32) - box_targets, beta), axis=-1)
    per_image = tf.reduce_sum(tf.where(foreground, loss, 0.0), axis=-1) / _safe_count(sample_weights)
    return _weighted_batch_mean(per_image, example_weights)


def mask_loss(
    mask_logits: tf.Tensor, mask_targets: tf.Tensor, foreground: tf.Tensor, example_weights: tf.Tensor
) -> tf.Tensor:
    """Mean per-pixel BCE of the gt-class mask ``logits [B, R, M, M]`` over foreground ROIs ``[B, R]``."""
    logits = tf.cast(mask_logits, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(mask_targets, tf.float32), logits=logits)
    per_roi = tf.reduce_mean(bce, axis=[-2, -1])
    per_image = tf.reduce_sum(tf.where(foreground, per_roi, 0.0), axis=-1) / _safe_count(foreground)
    return _weighted_batch_mean(per_image, example_weights)
