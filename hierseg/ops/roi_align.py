"""Multilevel ROIAlign (Mask R-CNN, He et al. 2017) with static shapes, built from gathers (XLA/TPU friendly).

Each ROI is assigned to one FPN level by its size (FPN paper eq. 1)::

    level = clip(floor(canonical_level + log2(sqrt(h * w) / canonical_size)), min_level, max_level)

and cut into ``output_size x output_size`` bins; each bin averages ``sampling_ratio**2`` bilinear
samples placed at the centres of a regular sub-grid. Sampling follows detectron2's ``aligned=True``
convention: a feature pixel ``(i, j)`` of a level with stride ``s`` covers image pixels
``[i * s, (i + 1) * s)``, so a continuous image coordinate ``y`` maps to ``y / s - 0.5`` in feature
index space. A sample more than one pixel outside the map contributes 0; otherwise coordinates are
clamped to the map. All levels are flattened into one ``[B, T, C]`` tensor so the bilinear corners of
every ROI come from one gather, whatever its level.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def assign_levels(
    boxes: tf.Tensor, min_level: int, max_level: int, canonical_size: float = 224.0, canonical_level: int = 4
) -> tf.Tensor:
    """int32 ``[...]`` FPN level of each pixel box ``[..., 4]``."""
    boxes = tf.cast(boxes, tf.float32)
    h = tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    w = tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    size = tf.sqrt(h * w)
    level = tf.floor(canonical_level + tf.math.log(size / canonical_size + 1e-8) / math.log(2.0))
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


def sample_coordinates(start: tf.Tensor, length: tf.Tensor, num_samples: int) -> tf.Tensor:
    """``[..., num_samples]`` centres of ``num_samples`` equal cells of ``[start, start + length]``."""
    steps = (tf.range(num_samples, dtype=tf.float32) + 0.5) / num_samples
    return start[..., None] + length[..., None] * steps


def _axis_corners(coords: tf.Tensor, size: tf.Tensor):
    """Bilinear corners along one axis: (low index, high index, low weight, high weight), detectron2 rules.

    ``coords [B, R, S]`` float in index space, ``size [B, R]`` float extent of the map on this axis.
    """
    size = size[..., None]
    inside = (coords >= -1.0) & (coords <= size)
    c = tf.clip_by_value(coords, 0.0, size - 1.0)
    low = tf.floor(c)
    high = tf.minimum(low + 1.0, size - 1.0)
    frac = c - low
    zero = tf.zeros_like(frac)
    w_low = tf.where(inside, 1.0 - frac, zero)
    w_high = tf.where(inside, frac, zero)
    return tf.cast(low, tf.int32), tf.cast(high, tf.int32), w_low, w_high


def bilinear_sample(
    flat_features: tf.Tensor,
    offsets: tf.Tensor,
    heights: tf.Tensor,
    widths: tf.Tensor,
    ys: tf.Tensor,
    xs: tf.Tensor,
) -> tf.Tensor:
    """Samples a grid of points from maps stored flat.

    Args:
      flat_features: ``[B, T, C]``: row-major maps of any sizes concatenated along T.
      offsets: int32 ``[B, R]`` start (in T) of the map each ROI samples from.
      heights, widths: int32 ``[B, R]`` size of that map.
      ys: float32 ``[B, R, Sy]`` and xs ``[B, R, Sx]``: sample coordinates in that map's index space.
    Returns:
      ``[B, R, Sy, Sx, C]`` in the dtype of ``flat_features``.
    """
    y0, y1, wy0, wy1 = _axis_corners(ys, tf.cast(heights, tf.float32))
    x0, x1, wx0, wx1 = _axis_corners(xs, tf.cast(widths, tf.float32))
    base = offsets[..., None, None]
    row = widths[..., None, None]
    dtype = flat_features.dtype
    out = 0.0
    for yi, wy in ((y0, wy0), (y1, wy1)):
        for xi, wx in ((x0, wx0), (x1, wx1)):
            index = base + yi[..., :, None] * row + xi[..., None, :]  # [B, R, Sy, Sx]
            weight = tf.cast(wy[..., :, None] * wx[..., None, :], dtype)
            out += tf.gather(flat_features, index, batch_dims=1) * weight[..., None]
    return out


def multilevel_roi_align(
    features: dict[int, tf.Tensor],
    boxes: tf.Tensor,
    output_size: int,
    sampling_ratio: int = 2,
    canonical_size: float = 224.0,
    canonical_level: int = 4,
    aligned: bool = True,
) -> tf.Tensor:
    """ROIAlign over an FPN pyramid.

    Args:
      features: ``{level: [B, H_l, W_l, C]}`` with ``H_l = image_size / 2**level``; levels contiguous.
      boxes: float ``[B, R, 4]`` ROIs in input-image pixels (ymin, xmin, ymax, xmax).
      output_size: bins per side; sampling_ratio: samples per bin side.
      aligned: detectron2's half-pixel shift (``y / s - 0.5``); False samples at ``y / s`` as Model
        Garden / the TPU models do (with ``sampling_ratio = 1``, their one sample per bin centre).
    Returns:
      ``[B, R, output_size, output_size, C]`` in the features' dtype.
    """
    levels = sorted(features)
    min_level, max_level = levels[0], levels[-1]
    shapes = [features[lv].shape for lv in levels]
    batch = tf.shape(features[min_level])[0]
    channels = shapes[0][-1]
    flat = tf.concat([tf.reshape(features[lv], [batch, -1, channels]) for lv in levels], axis=1)
    sizes = [(int(s[1]), int(s[2])) for s in shapes]
    starts = np.cumsum([0] + [h * w for h, w in sizes])[:-1]

    boxes = tf.cast(boxes, tf.float32)
    level_index = assign_levels(boxes, min_level, max_level, canonical_size, canonical_level) - min_level
    offsets = tf.gather(tf.constant(starts, tf.int32), level_index)
    heights = tf.gather(tf.constant([h for h, _ in sizes], tf.int32), level_index)
    widths = tf.gather(tf.constant([w for _, w in sizes], tf.int32), level_index)
    scale = 1.0 / tf.gather(tf.constant([2.0**lv for lv in levels], tf.float32), level_index)

    n = output_size * sampling_ratio
    shift = 0.5 if aligned else 0.0
    ys = sample_coordinates(boxes[..., 0] * scale - shift, (boxes[..., 2] - boxes[..., 0]) * scale, n)
    xs = sample_coordinates(boxes[..., 1] * scale - shift, (boxes[..., 3] - boxes[..., 1]) * scale, n)
    samples = bilinear_sample(flat, offsets, heights, widths, ys, xs)  # [B, R, n, n, C]
    num_rois = boxes.shape[1] if boxes.shape[1] is not None else tf.shape(boxes)[1]
    samples = tf.reshape(samples, [batch, num_rois, output_size, sampling_ratio, output_size, sampling_ratio, channels])
    return tf.reduce_mean(samples, axis=[3, 5])


def _bilinear_numpy(fmap: np.ndarray, y: float, x: float) -> np.ndarray:
    h, w = fmap.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(fmap.shape[2:], np.float64)
    y, x = min(max(y, 0.0), h - 1.0), min(max(x, 0.0), w - 1.0)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return (
        fmap[y0, x0] * (1 - ly) * (1 - lx)
        + fmap[y0, x1] * (1 - ly) * lx
        + fmap[y1, x0] * ly * (1 - lx)
        + fmap[y1, x1] * ly * lx
    )


def roi_align_numpy(
    fmap: np.ndarray, box: np.ndarray, stride: float, output_size: int, sampling_ratio: int
) -> np.ndarray:
    """Reference ROIAlign of one pixel box on one ``[H, W, C]`` map of the given stride (explicit loops)."""
    fmap = np.asarray(fmap, np.float64)
    y0, x0 = box[0] / stride - 0.5, box[1] / stride - 0.5
    bin_h, bin_w = (box[2] - box[0]) / stride / output_size, (box[3] - box[1]) / stride / output_size
    out = np.zeros((output_size, output_size, fmap.shape[2]), np.float64)
    for i in range(output_size):
        for j in range(output_size):
            acc = 0.0
            for si in range(sampling_ratio):
                for sj in range(sampling_ratio):
                    y = y0 + (i + (si + 0.5) / sampling_ratio) * bin_h
                    x = x0 + (j + (sj + 0.5) / sampling_ratio) * bin_w
                    acc = acc + _bilinear_numpy(fmap, y, x)
            out[i, j] = acc / sampling_ratio**2
    return out


def multilevel_roi_align_numpy(
    features: dict[int, np.ndarray], boxes: np.ndarray, output_size: int, sampling_ratio: int = 2
) -> np.ndarray:
    """Reference of :func:`multilevel_roi_align` (``features`` [B, H, W, C] per level, ``boxes`` [B, R, 4])."""
    levels = sorted(features)
    batch, num_rois = boxes.shape[:2]
    out = np.zeros((batch, num_rois, output_size, output_size, features[levels[0]].shape[-1]))
    for b in range(batch):
        for r in range(num_rois):
            box = np.asarray(boxes[b, r], np.float64)
            size = math.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
            level = int(math.floor(4 + math.log2(size / 224.0 + 1e-8)))
            level = min(max(level, levels[0]), levels[-1])
            out[b, r] = roi_align_numpy(features[level][b], box, 2.0**level, output_size, sampling_ratio)
    return out
