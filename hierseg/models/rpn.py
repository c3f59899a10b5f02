"""Region Proposal Network (Ren et al. 2015) on an FPN: a shared head, then fixed-count proposals.

The head slides over every pyramid level and predicts, per anchor, an objectness logit and box deltas
(in the order of :func:`hierseg.ops.anchors.generate_anchors`: levels, then (y, x, anchor)).
:func:`generate_proposals` keeps the ``pre_nms_topk`` best anchors of each level, decodes and clips
them to the image content, runs NMS (per level, via the class-offset trick with the level as class)
and returns exactly ``post_nms_topk`` proposals per image with a validity mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from hierseg.config.model import BackboneConfig
from hierseg.models.resnet import norm_layer, track_for_checkpoint
from hierseg.ops.box_coding import clip_boxes, decode_boxes
from hierseg.ops.nms import batched_nms, offset_boxes_by_class


class RPNHead(keras.layers.Layer):
    """``RPNHead(num_anchors, filters, num_convs)({level: P}) -> (scores [B, A], deltas [B, A, 4])`` float32.

    With ``norm`` (Model Garden's head) each shared conv is followed, per level, by its own batch norm
    then the ReLU; ``num_levels`` is then the number of pyramid levels.
    """

    def __init__(
        self, num_anchors: int, filters: int, num_convs: int = 1, norm: BackboneConfig | None = None, num_levels=0, **kw
    ):
        super().__init__(**kw)
        self.num_anchors = num_anchors

        def small():  # a fresh instance per layer: a Keras 3 initializer repeats its values
            return keras.initializers.RandomNormal(stddev=0.01)

        self.convs = [
            keras.layers.Conv2D(
                filters,
                3,
                padding="same",
                activation=None if norm else "relu",
                kernel_initializer=small(),
                name=f"conv{i}",
            )
            for i in range(num_convs)
        ]
        track_for_checkpoint(self, "conv", self.convs)
        # Flat, level-major: level_norms[level_index * num_convs + conv_index].
        self.level_norms = [norm_layer(norm, f"norm_{i}") for i in range(num_levels * num_convs)] if norm else []
        track_for_checkpoint(self, "level_norm", self.level_norms)
        self.objectness = keras.layers.Conv2D(num_anchors, 1, kernel_initializer=small(), name="objectness")
        self.deltas = keras.layers.Conv2D(num_anchors * 4, 1, kernel_initializer=small(), name="deltas")

    def call(self, features: dict[int, tf.Tensor], training=None):
        scores, deltas = [], []
        for li, level in enumerate(sorted(features)):
            x = features[level]
            for ci, conv in enumerate(self.convs):
                x = conv(x)
                if self.level_norms:
                    x = keras.ops.relu(self.level_norms[li * len(self.convs) + ci](x, training=training))
            batch = tf.shape(x)[0]
            scores.append(tf.reshape(tf.cast(self.objectness(x), tf.float32), [batch, -1]))
            deltas.append(tf.reshape(tf.cast(self.deltas(x), tf.float32), [batch, -1, 4]))
        return tf.concat(scores, axis=1), tf.concat(deltas, axis=1)


def generate_proposals(
    scores: tf.Tensor,
    deltas: tf.Tensor,
    anchors: tf.Tensor,
    level_sizes: Sequence[int],
    image_hw: tf.Tensor,
    pre_nms_topk: int,
    post_nms_topk: int,
    nms_iou: float,
    min_size: float = 0.0,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Fixed-count proposals per image.

    Args:
      scores: float32 ``[B, A]`` objectness logits; deltas: ``[B, A, 4]``; anchors: ``[A, 4]`` pixels.
      level_sizes: anchors per level (in order), summing to A.
      image_hw: float32 ``[B, 2]`` size of the image content (the scaled, unpadded part) for clipping.
    Returns:
      ``boxes`` float32 ``[B, post_nms_topk, 4]`` pixels, ``scores`` ``[B, post_nms_topk]`` (logits,
      ``-inf``-like for padding) and ``valid`` bool ``[B, post_nms_topk]``. No gradient flows back.
    """
    scores = tf.stop_gradient(scores)
    deltas = tf.stop_gradient(deltas)
    level_boxes, level_scores, level_ids = [], [], []
    start = 0
    for i, size in enumerate(level_sizes):
        k = min(pre_nms_topk, size)
        top_scores, top = tf.math.top_k(scores[:, start : start + size], k=k)
        top_deltas = tf.gather(deltas[:, start : start + size], top, batch_dims=1)
        top_anchors = tf.gather(anchors[start : start + size], top)
        boxes = decode_boxes(top_deltas, top_anchors, weights)
        boxes = clip_boxes(boxes, image_hw[:, 0:1], image_hw[:, 1:2])
        level_boxes.append(boxes)
        level_scores.append(top_scores)
        level_ids.append(tf.fill(tf.shape(top_scores), i))
        start += size
    boxes = tf.concat(level_boxes, axis=1)
    scores = tf.concat(level_scores, axis=1)
    ids = tf.concat(level_ids, axis=1)
    low = tf.float32.min
    big = tf.reduce_max(image_hw)
    usable = (boxes[..., 2] - boxes[..., 0] > min_size) & (boxes[..., 3] - boxes[..., 1] > min_size)
    scores = tf.where(usable, scores, low)
    # Per-level NMS as one NMS: levels are moved apart so boxes of different levels never overlap.
    shifted = offset_boxes_by_class(boxes, ids, big)
    keep, valid = batched_nms(shifted, scores, post_nms_topk, nms_iou, score_threshold=low)
    out_boxes = tf.gather(boxes, keep, batch_dims=1)
    out_scores = tf.gather(scores, keep, batch_dims=1)
    valid &= out_scores > low
    out_boxes = tf.where(valid[..., None], out_boxes, 0.0)
    out_scores = tf.where(valid, out_scores, low)
    return out_boxes, out_scores, valid
