"""The RetinaNet losses (Lin et al. 2017): sigmoid focal loss over classes and Huber loss over box deltas.

Both follow :mod:`hierseg.models.losses`: each image's loss is normalized by **its own** number of
positive anchors (at least 1) and the batch mean weights each image by its example weight, so that two
replicas of half a batch average to the same value as one device on the whole batch. (The seed divides
the whole replica batch by its summed positives + 1; per image is the same up to that batch coupling.)
Inputs may be bfloat16; everything is computed in float32.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg.models.losses import _safe_count, _weighted_batch_mean, smooth_l1


def sigmoid_focal_loss(logits: tf.Tensor, labels: tf.Tensor, alpha: float, gamma: float) -> tf.Tensor:
    """Elementwise focal loss ``alpha_t * (1 - p_t)**gamma * BCE(labels, logits)``, float32, same shape.

    ``p_t = sigmoid(x)`` for a label 1 and ``1 - sigmoid(x)`` for a label 0; ``alpha_t`` is ``alpha`` and
    ``1 - alpha`` respectively. The modulator is computed as ``exp(-gamma * (z * x + softplus(-x)))`` so its
    gradient stays finite for gamma < 1 and large |x| (the seed's derivation).
    """
    x = tf.cast(logits, tf.float32)
    z = tf.cast(labels, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)
    modulator = tf.exp(-gamma * (z * x + tf.math.softplus(-x)))
    return tf.where(z > 0.5, alpha, 1.0 - alpha) * modulator * bce


def focal_class_loss(
    class_logits: tf.Tensor,
    class_targets: tf.Tensor,
    example_weights: tf.Tensor,
    alpha: float = 0.25,
    gamma: float = 1.5,
) -> tf.Tensor:
    """Focal loss of the anchors' class logits, a float32 scalar.

    Args:
      class_logits: ``[B, A, K]`` one sigmoid logit per foreground class (no background logit).
      class_targets: int32 ``[B, A]``: 1..K the class of a positive anchor, 0 negative, -1 ignored.
      example_weights: ``[B]``.
    Per image: the focal loss summed over the K classes of every non-ignored anchor, divided by the
    image's positive anchors (at least 1).
    """
    class_targets = tf.cast(class_targets, tf.int32)
    num_classes = class_logits.shape[-1]
    labels = tf.one_hot(class_targets - 1, num_classes, dtype=tf.float32)  # 0 and -1 -> all zeros
    per_anchor = tf.reduce_sum(sigmoid_focal_loss(class_logits, labels, alpha, gamma), axis=-1)
    per_image = tf.reduce_sum(tf.where(class_targets >= 0, per_anchor, 0.0), axis=-1)
    return _weighted_batch_mean(per_image / _safe_count(class_targets > 0), example_weights)


def huber(diff: tf.Tensor, delta: float) -> tf.Tensor:
    """Elementwise Huber loss: ``0.5 x^2`` if ``|x| <= delta`` else ``delta * (|x| - 0.5 delta)``."""
    return delta * smooth_l1(diff, delta)


def huber_box_loss(
    box_deltas: tf.Tensor,
    box_targets: tf.Tensor,
    class_targets: tf.Tensor,
    example_weights: tf.Tensor,
    delta: float = 0.1,
) -> tf.Tensor:
    """Huber loss of the positive anchors' deltas, a float32 scalar.

    Args:
      box_deltas, box_targets: ``[B, A, 4]`` encoded deltas (predicted, target).
      class_targets: int32 ``[B, A]`` as in :func:`focal_class_loss` (positives are > 0).
    Per image: the Huber loss summed over the 4 coordinates of the positive anchors, divided by
    4 x the image's positive anchors (at least 1), as the seed's ``num_positives * 4``.
    """
    positive = tf.cast(class_targets, tf.int32) > 0
    diff = tf.cast(box_deltas, tf.float32) - tf.cast(box_targets, tf.float32)
    per_anchor = tf.reduce_sum(huber(diff, delta), axis=-1)
    per_image = tf.reduce_sum(tf.where(positive, per_anchor, 0.0), axis=-1)
    return _weighted_batch_mean(per_image / (4.0 * _safe_count(positive)), example_weights)
