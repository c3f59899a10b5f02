"""Second-stage training targets with fixed counts: sampled ROIs and their class, box and mask targets.

(RPN anchor targets are made in the input pipeline: :mod:`hierseg.input.anchor_targets`.)

* :func:`sample_rois` (batched, in the model): proposals (+ gt boxes) are matched to gt boxes and
  ``num_samples`` ROIs are drawn per image, foreground first, at most ``fg_fraction`` of them.
* :func:`crop_mask_targets`: the mask target of a ROI is its matched gt mask resampled inside the ROI;
  gt masks arrive cropped to their own box (``features.GT_MASKS``), so the ROI is expressed in the gt
  box's frame.

Crowd gt boxes (``gt_is_crowd``) are never matched as positives; ROIs overlapping a crowd box by at
least the background threshold are not used as negatives either. All shapes are static.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from hierseg.config.model import ROISamplingConfig
from hierseg.ops.box_coding import encode_boxes
from hierseg.ops.iou import pairwise_iou
from hierseg.ops.roi_align import bilinear_sample, sample_coordinates


def _match(boxes, gt_boxes, gt_valid, gt_is_crowd):
    """IoU of boxes [..., R, 4] with usable gt [..., N]: (max_iou, argmax, crowd_iou, iou matrix)."""
    iou = pairwise_iou(boxes, gt_boxes)  # [..., R, N]
    usable = tf.logical_and(gt_valid, tf.logical_not(gt_is_crowd))[..., None, :]
    crowd = tf.logical_and(gt_valid, gt_is_crowd)[..., None, :]
    matchable = tf.where(usable, iou, -1.0)
    max_iou = tf.reduce_max(matchable, axis=-1)  # -1 when there is no usable gt
    argmax = tf.argmax(matchable, axis=-1, output_type=tf.int32)
    crowd_iou = tf.reduce_max(tf.where(crowd, iou, 0.0), axis=-1)
    return max_iou, argmax, crowd_iou, matchable


def _random_subset(candidates: tf.Tensor, count: int, limit: tf.Tensor | None = None, seed=None) -> tf.Tensor:
    """bool mask of the same shape [..., R]: up to ``count`` (and ``limit`` [...]) random candidates."""
    count = min(count, candidates.shape[-1])  # top_k needs k <= R
    noise = tf.random.uniform(tf.shape(candidates), seed=seed)
    keyed = tf.where(candidates, noise, -1.0)
    values, indices = tf.math.top_k(keyed, k=count)
    take = values >= 0.0
    if limit is not None:
        take = tf.logical_and(take, tf.range(count) < limit[..., None])
    hits = tf.one_hot(indices, tf.shape(candidates)[-1], on_value=True, off_value=False, dtype=tf.bool)
    return tf.reduce_any(tf.logical_and(hits, take[..., None]), axis=-2)


def foreground_slots(config: ROISamplingConfig) -> int:
    """The most foreground ROIs :func:`sample_rois` keeps per image: its first ``int(S * fg_fraction)`` rows."""
    return int(config.num_samples * config.fg_fraction)


def sample_rois(
    proposals: tf.Tensor,
    proposal_valid: tf.Tensor,
    gt_boxes: tf.Tensor,
    gt_classes: tf.Tensor,
    gt_valid: tf.Tensor,
    gt_is_crowd: tf.Tensor,
    config: ROISamplingConfig,
    seed: int | None = None,
) -> dict[str, tf.Tensor]:
    """Matches proposals to gt boxes and samples ``S = config.num_samples`` ROIs per image.

    Args:
      proposals: float32 ``[B, P, 4]`` pixels; proposal_valid: bool ``[B, P]``;
      gt_boxes: float32 ``[B, N, 4]`` pixels; gt_classes int32 ``[B, N]``; gt_valid, gt_is_crowd bool.
    Returns a dict of:
      ``rois`` ``[B, S, 4]``, ``classes`` int32 ``[B, S]`` (matched gt class, 0 = background),
      ``matched_index`` int32 ``[B, S]`` (into N), ``matched_boxes`` ``[B, S, 4]``, ``is_fg`` bool ``[B, S]``,
      ``sample_weights`` float32 ``[B, S]`` (1 for a sampled ROI, 0 for filler when there are too few).
      Foreground ROIs come first, so the first ``int(S * fg_fraction)`` rows hold every foreground ROI.
    """
    boxes = tf.cast(proposals, tf.float32)
    valid = proposal_valid
    if config.add_gt_boxes:
        boxes = tf.concat([boxes, tf.cast(gt_boxes, tf.float32)], axis=1)
        valid = tf.concat([valid, gt_valid & ~gt_is_crowd], axis=1)
    max_iou, argmax, crowd_iou, _ = _match(boxes, gt_boxes, gt_valid, gt_is_crowd)
    overlap = tf.maximum(max_iou, 0.0)
    fg = valid & (max_iou >= config.fg_iou)
    bg = valid & ~fg & (overlap < config.bg_iou_high) & (overlap >= config.bg_iou_low)
    bg &= crowd_iou < config.bg_iou_high

    num_samples = config.num_samples
    if boxes.shape[1] < num_samples:
        raise ValueError(f"roi_sampling.num_samples={num_samples} exceeds the {boxes.shape[1]} candidate boxes")
    fg = _random_subset(fg, foreground_slots(config), seed=seed)
    num_fg = tf.reduce_sum(tf.cast(fg, tf.int32), axis=-1)
    bg = _random_subset(bg, num_samples, limit=num_samples - num_fg, seed=seed)
    # top_k is stable: foreground (2) first, background (1) next, filler (0) last, each in index order.
    rank = tf.where(fg, 2, tf.where(bg, 1, 0))
    order_value, order = tf.math.top_k(rank, k=num_samples)
    rois = tf.gather(boxes, order, batch_dims=1)
    matched_index = tf.gather(argmax, order, batch_dims=1)
    is_fg = order_value == 2
    classes = tf.where(is_fg, tf.gather(gt_classes, matched_index, batch_dims=1), 0)
    return {
        "rois": tf.stop_gradient(rois),
        "classes": tf.cast(classes, tf.int32),
        "matched_index": matched_index,
        "matched_boxes": tf.gather(tf.cast(gt_boxes, tf.float32), matched_index, batch_dims=1),
        "is_fg": is_fg,
        "sample_weights": tf.cast(order_value > 0, tf.float32),
    }


def select_foreground(is_fg: tf.Tensor, cap: int, seed: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Up to ``cap`` foreground rows of ``is_fg [B, S]`` per image, a random subset when there are more.

    Returns int32 ``[B, cap]`` row indices (foreground first, then padding rows) and bool ``[B, cap]``
    telling the chosen foreground rows from the padding.
    """
    keys = tf.where(is_fg, tf.random.uniform(tf.shape(is_fg), seed=seed), -1.0)
    top, index = tf.math.top_k(keys, k=cap)
    return index, top >= 0.0


def mask_training_rois(
    sampled: dict[str, tf.Tensor], sampling: ROISamplingConfig, max_rois: int
) -> dict[str, tf.Tensor]:
    """The sampled ROIs a mask head trains on: the foreground ones, at a static count C.

    Args:
      sampled: :func:`sample_rois` output; every foreground ROI is in its first
        ``S = num_samples * fg_fraction`` rows ("slots").
      max_rois: C = ``min(max_rois, S)`` (0 = S); with more foreground than C, a uniform random subset.
    Returns:
      ``rois`` float32 ``[B, C, 4]`` input pixels, ``classes`` / ``matched_index`` int32 ``[B, C]`` and
      ``is_fg`` bool ``[B, C]`` (False on padding rows, which weigh nothing in the mask loss).
    """
    slots = max(1, foreground_slots(sampling))
    cap = min(max_rois or slots, slots)
    keys = ("rois", "classes", "is_fg", "matched_index")
    if cap == slots:
        return {k: sampled[k][:, :cap] for k in keys}
    chosen, _ = select_foreground(sampled["is_fg"][:, :slots], cap)
    return {k: tf.gather(sampled[k], chosen, batch_dims=1) for k in keys}


def box_targets(matched_boxes: tf.Tensor, rois: tf.Tensor, is_fg: tf.Tensor, weights: Sequence[float]) -> tf.Tensor:
    """float32 ``[B, S, 4]`` Fast R-CNN deltas of the matched gt boxes w.r.t. the ROIs (0 for background)."""
    return tf.where(is_fg[..., None], encode_boxes(matched_boxes, rois, weights), 0.0)


def crop_mask_targets(
    gt_masks: tf.Tensor,
    gt_boxes: tf.Tensor,
    matched_index: tf.Tensor,
    rois: tf.Tensor,
    mask_size: int,
    sampling_ratio: int = 2,
) -> tf.Tensor:
    """Binary float32 ``[B, R, M, M]`` mask targets of ROIs.

    Args:
      gt_masks: ``[B, N, S, S]`` in [0, 1], each mask cropped to its gt box; gt_boxes ``[B, N, 4]`` pixels;
      matched_index: int32 ``[B, R]`` gt row of each ROI; rois: ``[B, R, 4]`` pixels; M = ``mask_size``.
    """
    gt_masks = tf.cast(gt_masks, tf.float32)
    batch = tf.shape(gt_masks)[0]
    size = gt_masks.shape[-1]
    flat = tf.reshape(gt_masks, [batch, -1, 1])
    gt = tf.gather(tf.cast(gt_boxes, tf.float32), matched_index, batch_dims=1)
    rois = tf.cast(rois, tf.float32)
    gt_h = tf.maximum(gt[..., 2] - gt[..., 0], 1e-6)
    gt_w = tf.maximum(gt[..., 3] - gt[..., 1], 1e-6)
    # The ROI in the index space of the gt mask: pixel i of the mask covers [i, i+1) * gt_side / S.
    y0 = (rois[..., 0] - gt[..., 0]) / gt_h * size - 0.5
    x0 = (rois[..., 1] - gt[..., 1]) / gt_w * size - 0.5
    hh = (rois[..., 2] - rois[..., 0]) / gt_h * size
    ww = (rois[..., 3] - rois[..., 1]) / gt_w * size
    n = mask_size * sampling_ratio
    ys = sample_coordinates(y0, hh, n)
    xs = sample_coordinates(x0, ww, n)
    sides = tf.fill(tf.shape(matched_index), size)
    samples = bilinear_sample(flat, matched_index * size * size, sides, sides, ys, xs)  # [B, R, n, n, 1]
    num_rois = rois.shape[1]
    samples = tf.reshape(samples, [batch, num_rois, mask_size, sampling_ratio, mask_size, sampling_ratio])
    return tf.cast(tf.reduce_mean(samples, axis=[3, 5]) >= 0.5, tf.float32)


def crop_mask_target_numpy(
    gt_mask: np.ndarray, gt_box: np.ndarray, roi: np.ndarray, mask_size: int, sampling_ratio: int = 2
) -> np.ndarray:
    """Reference of :func:`crop_mask_targets` for one ROI (explicit loops over bins and samples)."""
    from hierseg.ops.roi_align import _bilinear_numpy

    size = gt_mask.shape[0]
    gt_h, gt_w = max(gt_box[2] - gt_box[0], 1e-6), max(gt_box[3] - gt_box[1], 1e-6)
    fmap = np.asarray(gt_mask, np.float64)[:, :, None]
    out = np.zeros((mask_size, mask_size))
    for i in range(mask_size):
        for j in range(mask_size):
            acc = 0.0
            for si in range(sampling_ratio):
                for sj in range(sampling_ratio):
                    py = roi[0] + (i + (si + 0.5) / sampling_ratio) * (roi[2] - roi[0]) / mask_size
                    px = roi[1] + (j + (sj + 0.5) / sampling_ratio) * (roi[3] - roi[1]) / mask_size
                    y = (py - gt_box[0]) / gt_h * size - 0.5
                    x = (px - gt_box[1]) / gt_w * size - 0.5
                    acc += _bilinear_numpy(fmap, y, x)[0]
            out[i, j] = acc / sampling_ratio**2
    return (out >= 0.5).astype(np.float32)
