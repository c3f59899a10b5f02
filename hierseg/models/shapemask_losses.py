"""The ShapeMask losses (Kuo et al. 2019): MSE of the detection prior, sigmoid cross-entropy of the coarse
and fine masks, each a float32 scalar.

As the seed, each sums over the pixels of the valid sampled instances and divides by the number of
foreground target pixels; unlike the seed that is done **per image** (at least 1 pixel), then averaged
over the batch with the example weights (:mod:`hierseg.models.losses`), so replicas agree with one device.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg.models.losses import _weighted_batch_mean


def _per_image(elementwise: tf.Tensor, targets: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """``[B]``: sum of ``elementwise [B, S, M, M]`` over valid instances / their target pixels (>= 1)."""
    keep = tf.cast(valid, tf.float32)[:, :, None, None]
    total = tf.reduce_sum(elementwise * keep, axis=[1, 2, 3])
    foreground = tf.reduce_sum(tf.cast(targets, tf.float32) * keep, axis=[1, 2, 3])
    return total / tf.maximum(foreground, 1.0)


def prior_mse_loss(
    priors: tf.Tensor, mask_targets: tf.Tensor, valid: tf.Tensor, example_weights: tf.Tensor
) -> tf.Tensor:
    """``0.5 * sum((target - prior)**2)`` per image over valid instances / foreground target pixels.

    Args:
      priors: ``[B, S, M, M]`` detection priors in [0, 1]; mask_targets ``[B, S, M, M]`` 0/1;
      valid: bool ``[B, S]``; example_weights ``[B]``.
    """
    targets = tf.cast(mask_targets, tf.float32)
    diff = targets - tf.cast(priors, tf.float32)
    return _weighted_batch_mean(_per_image(0.5 * diff * diff, targets, valid), example_weights)


def mask_bce_loss(
    mask_logits: tf.Tensor, mask_targets: tf.Tensor, valid: tf.Tensor, example_weights: tf.Tensor
) -> tf.Tensor:
    """Sigmoid cross-entropy summed per image over valid instances / foreground target pixels.

    Args:
      mask_logits: ``[B, S, M, M]`` (coarse: M = crop size; fine: crop size x upsample factor);
      mask_targets: ``[B, S, M, M]`` 0/1; valid: bool ``[B, S]``; example_weights ``[B]``.
    """
    targets = tf.cast(mask_targets, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=tf.cast(mask_logits, tf.float32))
    return _weighted_batch_mean(_per_image(bce, targets, valid), example_weights)
