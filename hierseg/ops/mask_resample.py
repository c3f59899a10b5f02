"""Resampling box-relative masks from one box's frame into another's (ShapeMask's ``crop_mask_in_target_box``).

A mask ``[M, M]`` covers its box ``b`` exactly: mask pixel ``(i, j)`` is centred at
``(b.ymin + (i + 0.5) * b.h / M, b.xmin + (j + 0.5) * b.w / M)``. The output ``[O, O]`` covers the target
box ``t`` the same way; each output pixel takes the bilinear interpolation of the mask at its centre,
the mask being surrounded by zeros (so it fades to 0 over one mask pixel beyond its box, and is 0 far
outside it). Boxes are in any common unit (pixels here). Built on
:func:`hierseg.ops.roi_align.bilinear_sample`: one gather per bilinear corner, static shapes.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from hierseg.ops.roi_align import bilinear_sample, sample_coordinates

_PAD = 2  # zero rows/columns around each mask, so interpolation past the border fades to 0


def resample_box_masks(masks: tf.Tensor, boxes: tf.Tensor, target_boxes: tf.Tensor, output_size: int) -> tf.Tensor:
    """float32 ``[B, R, O, O]``: ``masks [B, R, M, M]`` (in ``boxes [B, R, 4]``) seen in ``target_boxes [B, R, 4]``.

    ``O = output_size``; boxes are (ymin, xmin, ymax, xmax); a degenerate source box gives zeros.
    """
    masks = tf.cast(masks, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    target_boxes = tf.cast(target_boxes, tf.float32)
    batch = tf.shape(masks)[0]
    num, size = masks.shape[1], masks.shape[-1]
    padded = tf.pad(masks, [[0, 0], [0, 0], [_PAD, _PAD], [_PAD, _PAD]])
    side = size + 2 * _PAD
    flat = tf.reshape(padded, [batch, num * side * side, 1])
    offsets = tf.tile(tf.range(num, dtype=tf.int32)[None, :] * side * side, [batch, 1])
    sides = tf.fill([batch, num], side)
    box_h = tf.maximum(boxes[..., 2] - boxes[..., 0], 1e-6)
    box_w = tf.maximum(boxes[..., 3] - boxes[..., 1], 1e-6)
    # Target pixel centres in the source mask's (padded) index space.
    y0 = (target_boxes[..., 0] - boxes[..., 0]) / box_h * size - 0.5 + _PAD
    x0 = (target_boxes[..., 1] - boxes[..., 1]) / box_w * size - 0.5 + _PAD
    hh = (target_boxes[..., 2] - target_boxes[..., 0]) / box_h * size
    ww = (target_boxes[..., 3] - target_boxes[..., 1]) / box_w * size
    ys = sample_coordinates(y0, hh, output_size)
    xs = sample_coordinates(x0, ww, output_size)
    out = bilinear_sample(flat, offsets, sides, sides, ys, xs)[..., 0]  # [B, R, O, O]
    degenerate = (boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1])
    return tf.where(degenerate[..., None, None], 0.0, out)


def resample_box_mask_numpy(mask: np.ndarray, box: np.ndarray, target_box: np.ndarray, output_size: int) -> np.ndarray:
    """Reference of :func:`resample_box_masks` for one mask (explicit per-pixel bilinear with zeros outside)."""
    mask = np.asarray(mask, np.float64)
    size = mask.shape[0]
    out = np.zeros((output_size, output_size))
    if box[2] <= box[0] or box[3] <= box[1]:
        return out
    bh, bw = box[2] - box[0], box[3] - box[1]

    def at(i, j):
        return mask[i, j] if 0 <= i < size and 0 <= j < size else 0.0

    for oi in range(output_size):
        py = target_box[0] + (oi + 0.5) * (target_box[2] - target_box[0]) / output_size
        u = (py - box[0]) / bh * size - 0.5
        for oj in range(output_size):
            px = target_box[1] + (oj + 0.5) * (target_box[3] - target_box[1]) / output_size
            v = (px - box[1]) / bw * size - 0.5
            i0, j0 = math.floor(u), math.floor(v)
            fy, fx = u - i0, v - j0
            out[oi, oj] = (
                at(i0, j0) * (1 - fy) * (1 - fx)
                + at(i0, j0 + 1) * (1 - fy) * fx
                + at(i0 + 1, j0) * fy * (1 - fx)
                + at(i0 + 1, j0 + 1) * fy * fx
            )
    return out
