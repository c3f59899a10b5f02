"""Image preprocessing shared by training, evaluation, export and prediction (pure TF ops).

Every image the network sees went through :func:`resize_and_pad` (or, at training time, its jittered
sibling in :mod:`hierseg.input.transforms`), so a SavedModel and the input pipeline agree pixel for
pixel. Conventions (see :mod:`hierseg.features`): RGB, normalized by ``IMAGE_MEAN``/``IMAGE_STD``, the
content resized with its aspect ratio kept so that the longer side is ``output_size`` and padded
bottom/right with zeros to ``[output_size, output_size]``; ``image_info`` float32 ``[4, 2]`` as in
:mod:`hierseg.features` (built by :func:`hierseg.features.make_image_info`).
"""

from __future__ import annotations

import tensorflow as tf

from hierseg import features
from hierseg.features import make_image_info


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded JPEG/PNG (also GIF/BMP) bytes -> uint8 ``[H, W, 3]`` RGB.

    Grayscale is replicated to three channels and an alpha channel is dropped (``channels=3``);
    16-bit PNGs are scaled to 8 bits.
    """
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def normalize_image(image: tf.Tensor) -> tf.Tensor:
    """uint8 or float ``[..., 3]`` with values in 0..255 -> float32 ``(image - IMAGE_MEAN) / IMAGE_STD``."""
    image = tf.cast(image, tf.float32)
    mean = tf.constant(features.IMAGE_MEAN, tf.float32)
    std = tf.constant(features.IMAGE_STD, tf.float32)
    return (image - mean) / std


def scaled_size(height: tf.Tensor, width: tf.Tensor, target: tf.Tensor | float) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) scaled so that the longer side is ``target``, aspect kept; int32, each >= 1."""
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    scale = tf.cast(target, tf.float32) / tf.maximum(h, w)
    sh = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), 1)
    sw = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), 1)
    return sh, sw


def resize_and_pad(image: tf.Tensor, output_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes the longer side to ``output_size`` (aspect kept) and pads bottom/right.

    Args:
      image: ``[H, W, 3]`` uint8 (or float in 0..255) RGB.
      output_size: side of the square output.

    Returns:
      image: float32 ``[output_size, output_size, 3]`` normalized (padding = 0 after normalization).
      image_info: float32 ``[4, 2]``: ``[[H, W], [scaled_h, scaled_w], [scaled_h / H, scaled_w / W], [0, 0]]``.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    sh, sw = scaled_size(height, width, output_size)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([sh, sw]), method="bilinear", antialias=False)
    resized = normalize_image(resized)
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, output_size, output_size)
    padded.set_shape([output_size, output_size, 3])
    info = make_image_info(height, width, sh, sw, 0, 0)
    return padded, info
