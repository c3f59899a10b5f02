"""R-CNN box deltas (Girshick et al. 2014): boxes relative to anchors/proposals and back.

For a box ``b`` and a reference box (anchor) ``a``, both ``(ymin, xmin, ymax, xmax)`` in pixels, with
centres ``(cy, cx)`` and sides ``(h, w)`` and weights ``(wy, wx, wh, ww)``::

    dy = wy * (b.cy - a.cy) / a.h      dx = wx * (b.cx - a.cx) / a.w
    dh = wh * log(b.h / a.h)           dw = ww * log(b.w / a.w)

Decoding inverts this; ``dh / wh`` and ``dw / ww`` are clipped at ``log(1000 / 16)`` so a wild
prediction cannot overflow ``exp``. Both functions broadcast over leading dimensions and compute in
float32 (bfloat16 inputs are cast), returning float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

BBOX_XFORM_CLIP = math.log(1000.0 / 16.0)
_EPS = 1e-8


def _centers_sizes(boxes):
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * h, boxes[..., 1] + 0.5 * w, h, w


def encode_boxes(boxes: tf.Tensor, anchors: tf.Tensor, weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0)) -> tf.Tensor:
    """float32 ``[..., 4]`` deltas ``(dy, dx, dh, dw)`` of ``boxes`` w.r.t. ``anchors`` (broadcast)."""
    boxes = tf.cast(boxes, tf.float32)
    anchors = tf.cast(anchors, tf.float32)
    by, bx, bh, bw = _centers_sizes(boxes)
    ay, ax, ah, aw = _centers_sizes(anchors)
    ah = tf.maximum(ah, _EPS)
    aw = tf.maximum(aw, _EPS)
    wy, wx, wh, ww = (float(v) for v in weights)
    return tf.stack(
        [
            wy * (by - ay) / ah,
            wx * (bx - ax) / aw,
            wh * tf.math.log(tf.maximum(bh, _EPS) / ah),
            ww * tf.math.log(tf.maximum(bw, _EPS) / aw),
        ],
        axis=-1,
    )


def decode_boxes(deltas: tf.Tensor, anchors: tf.Tensor, weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0)) -> tf.Tensor:
    """float32 ``[..., 4]`` boxes (ymin, xmin, ymax, xmax) from ``deltas`` w.r.t. ``anchors``."""
    deltas = tf.cast(deltas, tf.float32)
    anchors = tf.cast(anchors, tf.float32)
    ay, ax, ah, aw = _centers_sizes(anchors)
    wy, wx, wh, ww = (float(v) for v in weights)
    dy = deltas[..., 0] / wy
    dx = deltas[..., 1] / wx
    dh = tf.minimum(deltas[..., 2] / wh, BBOX_XFORM_CLIP)
    dw = tf.minimum(deltas[..., 3] / ww, BBOX_XFORM_CLIP)
    cy = dy * ah + ay
    cx = dx * aw + ax
    h = tf.exp(dh) * ah
    w = tf.exp(dw) * aw
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)


def clip_boxes(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Clips pixel boxes ``[..., 4]`` to ``[0, height] x [0, width]`` (scalars or broadcastable)."""
    height = tf.cast(height, boxes.dtype)
    width = tf.cast(width, boxes.dtype)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack(
        [
            tf.clip_by_value(ymin, 0.0, height),
            tf.clip_by_value(xmin, 0.0, width),
            tf.clip_by_value(ymax, 0.0, height),
            tf.clip_by_value(xmax, 0.0, width),
        ],
        axis=-1,
    )


def encode_boxes_numpy(boxes: np.ndarray, anchors: np.ndarray, weights=(10.0, 10.0, 5.0, 5.0)) -> np.ndarray:
    """Reference of :func:`encode_boxes` (float64 numpy, one box at a time)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    anchors = np.broadcast_to(np.asarray(anchors, np.float64), boxes.shape).reshape(-1, 4)
    out = np.zeros_like(boxes)
    for i, (b, a) in enumerate(zip(boxes, anchors)):
        ah, aw = max(a[2] - a[0], _EPS), max(a[3] - a[1], _EPS)
        bh, bw = max(b[2] - b[0], _EPS), max(b[3] - b[1], _EPS)
        out[i] = (
            weights[0] * ((b[0] + b[2]) / 2 - (a[0] + a[2]) / 2) / ah,
            weights[1] * ((b[1] + b[3]) / 2 - (a[1] + a[3]) / 2) / aw,
            weights[2] * math.log(bh / ah),
            weights[3] * math.log(bw / aw),
        )
    return out


def decode_boxes_numpy(deltas: np.ndarray, anchors: np.ndarray, weights=(10.0, 10.0, 5.0, 5.0)) -> np.ndarray:
    """Reference of :func:`decode_boxes` (float64 numpy, one box at a time)."""
    deltas = np.asarray(deltas, np.float64).reshape(-1, 4)
    anchors = np.broadcast_to(np.asarray(anchors, np.float64), deltas.shape).reshape(-1, 4)
    out = np.zeros_like(deltas)
    for i, (d, a) in enumerate(zip(deltas, anchors)):
        ah, aw = a[2] - a[0], a[3] - a[1]
        cy, cx = (a[0] + a[2]) / 2 + d[0] / weights[0] * ah, (a[1] + a[3]) / 2 + d[1] / weights[1] * aw
        h = math.exp(min(d[2] / weights[2], BBOX_XFORM_CLIP)) * ah
        w = math.exp(min(d[3] / weights[3], BBOX_XFORM_CLIP)) * aw
        out[i] = (cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2)
    return out
