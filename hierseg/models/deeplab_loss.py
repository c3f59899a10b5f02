"""The DeepLab loss: softmax cross-entropy per pixel with an ignore label and optional class weights.

Normalization follows :mod:`hierseg.models.losses`: each image's loss is the weighted sum over its
labelled pixels divided by the number of labelled (non-ignored) pixels, then
``sum_b weight_b * loss_b / B`` over the batch (the per-replica mean a strategy sums over replicas).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def semantic_loss(
    logits: tf.Tensor,
    labels: tf.Tensor,
    ignore_label: int,
    class_weights: Sequence[float] | None = None,
    example_weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """float32 scalar loss.

    Args:
      logits: ``[B, H, W, C]`` (any float dtype; computed in float32), class 0 = background.
      labels: int ``[B, H, W]`` in ``0..C-1``, or ``ignore_label`` (any other value is also ignored,
        so a corrupt label never indexes out of range).
      ignore_label: label value without loss.
      class_weights: ``[C]`` multipliers of each pixel's loss by its true class; None = all 1.
      example_weights: float ``[B]``; None = all 1.
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = logits.shape[-1]
    labels = tf.cast(labels, tf.int32)
    valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    safe = tf.where(valid, labels, 0)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    pixel_weight = tf.cast(valid, tf.float32)
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise ValueError(f"class_weights has {len(class_weights)} entries for {num_classes} logits")
        pixel_weight *= tf.gather(tf.constant(class_weights, tf.float32), safe)
    axes = [1, 2]
    per_image = tf.reduce_sum(ce * pixel_weight, axis=axes) / tf.maximum(
        tf.reduce_sum(tf.cast(valid, tf.float32), axis=axes), 1.0
    )
    if example_weights is None:
        return tf.reduce_mean(per_image)
    weights = tf.cast(example_weights, tf.float32)
    return tf.reduce_sum(per_image * weights) / tf.cast(tf.shape(per_image)[0], tf.float32)
