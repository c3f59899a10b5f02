"""Pasting box-relative ``M x M`` mask predictions into full-image masks.

A mask ``[M, M]`` predicted for a box covers the box exactly: mask pixel ``(i, j)`` is centred at
``(ymin + (i + 0.5) * h / M, xmin + (j + 0.5) * w / M)``. An output pixel ``(y, x)`` of an ``H x W``
image (centre ``((y + 0.5) / H, (x + 0.5) / W)`` in normalized coordinates) takes the bilinear
interpolation of the mask at that point, with zeros beyond the mask's border (so a mask fades out
over half a mask pixel past the box, as detectron2's ``paste_masks_in_image`` does). Bilinear
interpolation is separable, so each paste is two small matrix products (no per-pixel gather):
``out[d] = Ky[d] @ masks[d] @ Kx[d].T`` with triangle kernels ``K[d, y, i] = max(0, 1 - |u_d(y) - i|)``.
The caller thresholds the result (0.5 is usual).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def _interpolation_kernel(start: tf.Tensor, end: tf.Tensor, out_size, mask_size) -> tf.Tensor:
    """``[D, out_size, mask_size]`` bilinear weights along one axis (normalized box side start..end)."""
    centers = (tf.range(out_size, dtype=tf.float32) + 0.5) / tf.cast(out_size, tf.float32)  # [S]
    side = tf.maximum(end - start, 1e-8)
    u = (centers[None, :] - start[:, None]) / side[:, None] * tf.cast(mask_size, tf.float32) - 0.5  # [D, S]
    index = tf.range(mask_size, dtype=tf.float32)
    return tf.maximum(0.0, 1.0 - tf.abs(u[:, :, None] - index[None, None, :]))


def paste_masks(masks: tf.Tensor, boxes: tf.Tensor, height, width) -> tf.Tensor:
    """float32 ``[D, height, width]`` soft masks in [0, 1] from ``masks [D, M, M]`` and normalized ``boxes [D, 4]``.

    ``height``/``width`` may be Python ints or scalar tensors (the original image size).
    """
    masks = tf.cast(masks, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    # The mask side is static in the exported graph, dynamic when a caller traces with relaxed shapes.
    size = masks.shape[-1] if masks.shape[-1] is not None else tf.shape(masks)[-1]
    ky = _interpolation_kernel(boxes[:, 0], boxes[:, 2], height, size)  # [D, H, M]
    kx = _interpolation_kernel(boxes[:, 1], boxes[:, 3], width, size)  # [D, W, M]
    return tf.einsum("dhm,dmn,dwn->dhw", ky, masks, kx)


def paste_masks_numpy(masks: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reference of :func:`paste_masks` (per-pixel bilinear with zero padding, explicit loops)."""
    masks = np.asarray(masks, np.float64)
    num, size = masks.shape[0], masks.shape[-1]
    out = np.zeros((num, height, width), np.float64)

    def at(mask, i, j):
        return mask[i, j] if 0 <= i < size and 0 <= j < size else 0.0

    for d in range(num):
        ymin, xmin, ymax, xmax = (float(v) for v in boxes[d])
        for y in range(height):
            u = ((y + 0.5) / height - ymin) / max(ymax - ymin, 1e-8) * size - 0.5
            i0 = math.floor(u)
            fy = u - i0
            for x in range(width):
                v = ((x + 0.5) / width - xmin) / max(xmax - xmin, 1e-8) * size - 0.5
                j0 = math.floor(v)
                fx = v - j0
                out[d, y, x] = (
                    at(masks[d], i0, j0) * (1 - fy) * (1 - fx)
                    + at(masks[d], i0, j0 + 1) * (1 - fy) * fx
                    + at(masks[d], i0 + 1, j0) * fy * (1 - fx)
                    + at(masks[d], i0 + 1, j0 + 1) * fy * fx
                )
    return out
