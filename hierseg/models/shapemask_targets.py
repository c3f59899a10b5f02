"""ShapeMask mask-branch training targets of one example (a per-example tf.data map), as the seed's parser.

``num_sampled_masks`` = S of the image's non-crowd instances are drawn in a random order (repeated
cyclically when the image has fewer; every row invalid when it has none), their boxes jittered to
mimic detections (:func:`jitter_boxes`), the outer boxes (``outer_box_scale`` about the centre) computed
(:func:`outer_boxes`), and the gt masks resampled into the outer boxes at the coarse (C) and fine
(C x upsample_factor) sizes and binarised at 0.5. Keys: :mod:`hierseg.features` MASK_*.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.config.shapemask import ShapeMaskConfig
from hierseg.ops.box_coding import clip_boxes
from hierseg.ops.mask_resample import resample_box_masks


def outer_boxes(boxes: tf.Tensor, scale: float, image_hw: tf.Tensor) -> tf.Tensor:
    """``boxes [..., R, 4]`` (pixels) scaled by ``scale`` about their centres, clipped to the content size
    ``image_hw [..., 2]`` (``[2]`` for one image's ``[R, 4]``, ``[B, 2]`` for a batch's ``[B, R, 4]``)."""
    boxes = tf.cast(boxes, tf.float32)
    cy, cx = (boxes[..., 0] + boxes[..., 2]) / 2.0, (boxes[..., 1] + boxes[..., 3]) / 2.0
    h, w = (boxes[..., 2] - boxes[..., 0]) * scale, (boxes[..., 3] - boxes[..., 1]) * scale
    out = tf.stack([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0], axis=-1)
    return clip_boxes(out, image_hw[..., 0:1], image_hw[..., 1:2])


def jitter_boxes(boxes: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Jittered ``boxes [..., 4]``: centre moved by ``noise[..., 0:2] * (h, w)``, sides scaled by
    ``exp(noise[..., 2:4])``; ``noise`` has the boxes' shape (standard normal x ``box_jitter_scale``)."""
    boxes = tf.cast(boxes, tf.float32)
    h, w = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    cy = (boxes[..., 0] + boxes[..., 2]) / 2.0 + noise[..., 0] * h
    cx = (boxes[..., 1] + boxes[..., 3]) / 2.0 + noise[..., 1] * w
    h, w = h * tf.exp(noise[..., 2]), w * tf.exp(noise[..., 3])
    return tf.stack([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0], axis=-1)


def sample_instances(usable: tf.Tensor, num_samples: int, seed: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """``(indices int32 [S], valid bool [S])``: the usable rows of ``usable [N]`` in a random order,
    repeated cyclically up to S rows; all invalid (index 0) when no row is usable."""
    n_rows = tf.shape(usable)[0]
    keys = tf.random.uniform([n_rows]) if seed is None else tf.random.stateless_uniform([n_rows], seed)
    order = tf.argsort(tf.where(usable, keys, -1.0), direction="DESCENDING", stable=True)
    count = tf.reduce_sum(tf.cast(usable, tf.int32))
    slots = tf.range(num_samples) % tf.maximum(count, 1)
    indices = tf.gather(order, slots)
    valid = tf.fill([num_samples], count > 0)
    return tf.where(valid, indices, 0), valid


def add_mask_targets(features: dict, config: ShapeMaskConfig, seed: tf.Tensor | None = None) -> dict:
    """Returns ``features`` (one example) plus MASK_BOXES, MASK_OUTER_BOXES, MASK_CLASSES, MASK_TARGETS,
    FINE_MASK_TARGETS and MASK_VALID (shapes in :mod:`hierseg.features`).

    Args:
      seed: int32/int64 ``[2]`` for stateless sampling and jitter; None = op-seeded random ops.
    """
    s, crop = config.num_sampled_masks, config.mask_crop_size
    info = tf.cast(features[F.IMAGE_INFO], tf.float32)
    image_hw = F.scaled_hw(info)
    gt_boxes = F.boxes_to_input_pixels(features[F.GT_BOXES], info)  # [N, 4]
    usable = tf.cast(features[F.GT_VALID], tf.bool) & ~tf.cast(features[F.GT_IS_CROWD], tf.bool)
    seeds = [None, None] if seed is None else tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    index, valid = sample_instances(usable, s, seeds[0])
    boxes = tf.gather(gt_boxes, index)
    shape = [s, 4]
    noise = tf.random.normal(shape) if seeds[1] is None else tf.random.stateless_normal(shape, seeds[1])
    jittered = clip_boxes(jitter_boxes(boxes, noise * config.box_jitter_scale), image_hw[0], image_hw[1])
    outer = outer_boxes(jittered, config.outer_box_scale, image_hw)
    gt_masks = tf.gather(tf.cast(features[F.GT_MASKS], tf.float32), index)[None]
    coarse = resample_box_masks(gt_masks, boxes[None], outer[None], crop)[0]
    fine = resample_box_masks(gt_masks, boxes[None], outer[None], crop * config.upsample_factor)[0]
    zero_rows = ~valid[:, None]
    return {
        **features,
        F.MASK_BOXES: tf.where(zero_rows, 0.0, jittered),
        F.MASK_OUTER_BOXES: tf.where(zero_rows, 0.0, outer),
        F.MASK_CLASSES: tf.where(valid, tf.gather(tf.cast(features[F.GT_CLASSES], tf.int32), index), 0),
        F.MASK_TARGETS: tf.cast((coarse >= 0.5) & valid[:, None, None], tf.float32),
        F.FINE_MASK_TARGETS: tf.cast((fine >= 0.5) & valid[:, None, None], tf.float32),
        F.MASK_VALID: valid,
    }


def shapemask_targets_map(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    """The per-example training-targets map of ``model.type: shapemask``: RetinaNet anchor targets plus the
    mask-branch targets, seeded by the example's TARGETS_SEED (see hierseg.models.factory)."""
    from hierseg.models.retinanet_targets import retinanet_targets_map

    anchor_targets = retinanet_targets_map(model_config, image_size)

    def add_targets(example: dict) -> dict:
        return add_mask_targets(anchor_targets(example), model_config.shapemask, seed=example.get(F.TARGETS_SEED))

    return add_targets
