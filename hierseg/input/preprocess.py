"""Image preprocessing shared by training, evaluation, export and prediction (pure TF ops).

Every image the network sees went through :func:`resize_and_pad` (or, at training time, its jittered
sibling in :mod:`hierseg.input.transforms`), so a SavedModel and the input pipeline agree pixel for
pixel. Conventions (see :mod:`hierseg.features`): RGB, normalized by ``IMAGE_MEAN``/``IMAGE_STD``, the
content resized with its aspect ratio kept so that the longer side is ``output_size`` and padded
bottom/right with zeros to ``[output_size, output_size]``; ``image_info`` float32 ``[4, 2]`` =
``[[orig_h, orig_w], [scaled_h, scaled_w], [scale_y, scale_x], [offset_y, offset_x]]``.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg import features


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


def make_image_info(height, width, scaled_h, scaled_w, offset_y, offset_x) -> tf.Tensor:
    """float32 ``[4, 2]`` image_info from its parts (scale = scaled / original, per axis)."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    sh, sw = tf.cast(scaled_h, tf.float32), tf.cast(scaled_w, tf.float32)
    return tf.stack(
        [
            tf.stack([h, w]),
            tf.stack([sh, sw]),
            tf.stack([sh / h, sw / w]),
            tf.stack([tf.cast(offset_y, tf.float32), tf.cast(offset_x, tf.float32)]),
        ]
    )


def _scaled_hwhw(image_info: tf.Tensor) -> tf.Tensor:
    """``[..., 4, 2]`` image_info -> scaled size as ``[..., 1, 4]`` (h, w, h, w), to scale boxes."""
    info = tf.convert_to_tensor(image_info, tf.float32)
    return tf.concat([info[..., 1, :], info[..., 1, :]], axis=-1)[..., None, :]


def boxes_to_input_pixels(boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """``GT_BOXES`` -> pixel boxes in the network input: ``boxes * image_info[1]`` (the scaled size).

    The pipeline's boxes are normalized by the scaled image size in the input's frame (after any
    crop), so this needs no offset; at eval and prediction (no crop) they are also normalized to the
    original image.

    Args:
      boxes: ``[..., N, 4]`` float32 normalized ``(ymin, xmin, ymax, xmax)``.
      image_info: ``[..., 4, 2]`` with the same leading dimensions.

    Returns:
      ``[..., N, 4]`` float32 pixels of the padded input image.
    """
    return tf.convert_to_tensor(boxes, tf.float32) * _scaled_hwhw(image_info)


def input_pixels_to_boxes(boxes_pixels: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`boxes_to_input_pixels`."""
    return tf.convert_to_tensor(boxes_pixels, tf.float32) / _scaled_hwhw(image_info)
