"""Multilevel anchor boxes of a square, padded input image (FPN, Lin et al. 2017).

Anchors are float32 pixels ``(ymin, xmin, ymax, xmax)`` of the padded ``image_size x image_size`` input,
concatenated over levels ``min_level..max_level``; within a level they are in ``(y, x, anchor)`` order,
and at one location the anchors run over scales (outer) then aspect ratios (inner). The anchors of
one location are centred on ``((y + 0.5) * stride, (x + 0.5) * stride)``; an anchor of scale ``s`` and
aspect ratio ``r`` (width / height, as in the TPU detection models) has
``width = anchor_size * stride * 2**(s / num_scales) * sqrt(r)`` and
``height = anchor_size * stride * 2**(s / num_scales) / sqrt(r)``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hierseg.config.model import AnchorConfig


def anchors_per_location(config: AnchorConfig) -> int:
    """Anchors at each feature-map location: num_scales * len(aspect_ratios)."""
    return config.num_scales * len(config.aspect_ratios)


def level_shapes(config: AnchorConfig, image_size: int) -> dict[int, tuple[int, int]]:
    """``{level: (height, width)}`` of each feature map; raises unless image_size % 2**max_level == 0."""
    stride = 2**config.max_level
    if image_size <= 0 or image_size % stride != 0:
        raise ValueError(
            f"image size {image_size} (data.output_size) must be a positive multiple of 2**model.anchor.max_level "
            f"= {stride} (e.g. {max(stride, round(image_size / stride) * stride)})"
        )
    return {
        level: (image_size // 2**level, image_size // 2**level)
        for level in range(config.min_level, config.max_level + 1)
    }


def num_anchors(config: AnchorConfig, image_size: int) -> int:
    """Total anchor count A over all levels."""
    k = anchors_per_location(config)
    return sum(h * w * k for h, w in level_shapes(config, image_size).values())


def _cell_anchor_sizes(config: AnchorConfig, stride: int) -> np.ndarray:
    """``[k, 2]`` (height, width) of the anchors at one location, scales outer, ratios inner."""
    sizes = []
    for scale in range(config.num_scales):
        side = config.anchor_size * stride * 2.0 ** (scale / config.num_scales)
        for ratio in config.aspect_ratios:
            sizes.append((side / np.sqrt(ratio), side * np.sqrt(ratio)))
    return np.asarray(sizes, dtype=np.float64)


def generate_anchors(config: AnchorConfig, image_size: int) -> tf.Tensor:
    """float32 ``[A, 4]`` anchors in pixels (ymin, xmin, ymax, xmax); order in the module docstring."""
    per_level = []
    for level, (h, w) in level_shapes(config, image_size).items():
        stride = 2**level
        sizes = tf.constant(_cell_anchor_sizes(config, stride), tf.float32)  # [k, 2]
        cy = (tf.range(h, dtype=tf.float32) + 0.5) * stride
        cx = (tf.range(w, dtype=tf.float32) + 0.5) * stride
        cy, cx = tf.meshgrid(cy, cx, indexing="ij")  # [h, w]
        centers = tf.stack([cy, cx], axis=-1)[:, :, None, :]  # [h, w, 1, 2]
        half = sizes[None, None] / 2.0  # [1, 1, k, 2]
        boxes = tf.concat([centers - half, centers + half], axis=-1)  # [h, w, k, 4]
        per_level.append(tf.reshape(boxes, [-1, 4]))
    return tf.concat(per_level, axis=0)


def generate_anchors_numpy(config: AnchorConfig, image_size: int) -> np.ndarray:
    """Slow reference of :func:`generate_anchors` (explicit loops in the documented order)."""
    out = []
    for level, (h, w) in level_shapes(config, image_size).items():
        stride = 2**level
        sizes = _cell_anchor_sizes(config, stride)
        for y in range(h):
            for x in range(w):
                cy, cx = (y + 0.5) * stride, (x + 0.5) * stride
                for ah, aw in sizes:
                    out.append((cy - ah / 2, cx - aw / 2, cy + ah / 2, cx + aw / 2))
    return np.asarray(out, dtype=np.float32).reshape(-1, 4)
