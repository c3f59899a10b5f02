"""Geometric transforms of one example: horizontal flip, scale jitter with crop, mask crops to boxes.

Boxes stay normalized to the (flipped) source image while masks are cropped from the full-resolution
source masks; ``image_info`` records how the source maps into the network input, and
:func:`source_to_input_boxes` finally moves the boxes into the input's frame
(input-normalized, the frame of ``GT_BOXES`` in :mod:`hierseg.features`). Randomness is stateless: every function
takes a ``seed`` int32 ``[2]``, so a fixed seed reproduces an example exactly whatever the thread order.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg.features import crop_offset, make_image_info, scaled_hw
from hierseg.input.preprocess import normalize_image, scaled_size


def flip_horizontal(image: tf.Tensor, boxes: tf.Tensor, masks: tf.Tensor | None) -> tuple:
    """Mirrors left-right: image ``[H, W, C]``, normalized boxes ``[n, 4]``, masks ``[n, H, W]`` (or None)."""
    image = tf.reverse(image, axis=[1])
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    boxes = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
    if masks is not None:
        masks = tf.reverse(masks, axis=[2])
    return image, boxes, masks


def random_flip(image, boxes, masks, prob: float, seed: tf.Tensor) -> tuple:
    """:func:`flip_horizontal` with probability ``prob`` (stateless ``seed`` ``[2]``)."""
    if prob <= 0.0:
        return image, boxes, masks
    do_flip = tf.random.stateless_uniform([], seed) < prob
    if masks is None:
        image, boxes = tf.cond(do_flip, lambda: flip_horizontal(image, boxes, None)[:2], lambda: (image, boxes))
        return image, boxes, None
    return tf.cond(do_flip, lambda: flip_horizontal(image, boxes, masks), lambda: (image, boxes, masks))


def scale_and_crop(
    image: tf.Tensor, output_size: int, scale: tf.Tensor | float = 1.0, crop_seed: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Resizes so the longer side is ``output_size * scale``, crops a window of at most ``output_size``, pads.

    With ``scale = 1`` this is :func:`hierseg.input.preprocess.resize_and_pad`. With ``scale > 1``
    the window's offset is uniform over the valid range (stateless ``crop_seed``; None = top-left).

    Args:
      image: uint8 ``[H, W, 3]``.

    Returns:
      image: float32 ``[output_size, output_size, 3]`` normalized, zero-padded bottom/right.
      image_info: float32 ``[4, 2]`` with the crop offset (:func:`hierseg.features.crop_offset`).
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    sh, sw = scaled_size(height, width, tf.cast(output_size, tf.float32) * tf.cast(scale, tf.float32))
    max_oy = tf.maximum(sh - output_size, 0)
    max_ox = tf.maximum(sw - output_size, 0)
    if crop_seed is None:
        oy = ox = tf.constant(0, tf.int32)
    else:
        u = tf.random.stateless_uniform([2], crop_seed)
        oy = tf.minimum(tf.cast(u[0] * tf.cast(max_oy + 1, tf.float32), tf.int32), max_oy)
        ox = tf.minimum(tf.cast(u[1] * tf.cast(max_ox + 1, tf.float32), tf.int32), max_ox)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([sh, sw]), method="bilinear")
    window = resized[oy : oy + output_size, ox : ox + output_size, :]
    window = normalize_image(window)
    out = tf.image.pad_to_bounding_box(window, 0, 0, output_size, output_size)
    out.set_shape([output_size, output_size, 3])
    return out, make_image_info(height, width, sh, sw, oy, ox)


def random_scale_and_crop(
    image: tf.Tensor, output_size: int, scale_min: float, scale_max: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale jitter: :func:`scale_and_crop` with ``scale ~ U(scale_min, scale_max)`` (stateless ``seed``)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    scale = tf.random.stateless_uniform([], seeds[0], minval=scale_min, maxval=scale_max)
    if scale_min == scale_max:
        scale = tf.constant(scale_min, tf.float32)
    return scale_and_crop(image, output_size, scale, seeds[1])


def clip_boxes_to_window(
    boxes: tf.Tensor, image_info: tf.Tensor, output_size: int, min_size: float = 1.0
) -> tuple[tf.Tensor, tf.Tensor]:
    """Clips normalized source boxes to the part of the source visible in the network input.

    Args:
      boxes: ``[n, 4]`` normalized source boxes.
      image_info: ``[4, 2]`` from :func:`scale_and_crop`.
      output_size: side of the network input.
      min_size: boxes narrower or shorter than this many input pixels after clipping are not kept.

    Returns:
      boxes: ``[n, 4]`` clipped, still normalized to the source (within ``[0, 1]``).
      keep: bool ``[n]``: the instance is still visible.
    """
    scaled = scaled_hw(image_info)
    offset = crop_offset(image_info)
    # The visible window in scaled-image pixels, then in normalized source coordinates.
    lo = offset / scaled
    hi = tf.minimum(offset + output_size, scaled) / scaled
    lo4 = tf.concat([lo, lo], axis=0)
    hi4 = tf.concat([hi, hi], axis=0)
    clipped = tf.minimum(tf.maximum(boxes, lo4), hi4)
    size_px = (clipped[:, 2:] - clipped[:, :2]) * scaled
    keep = tf.reduce_all(size_px >= min_size, axis=-1)
    return clipped, keep


def crop_masks_to_boxes(masks: tf.Tensor, boxes: tf.Tensor, size: int) -> tf.Tensor:
    """Resamples each mask inside its box onto a ``size x size`` grid (pixel-center aligned).

    Args:
      masks: ``[n, H, W]`` uint8/bool/float, 1 inside.
      boxes: ``[n, 4]`` normalized (ymin, xmin, ymax, xmax), box edges in continuous coordinates
        (pixel ``i`` covers ``[i, i + 1) / H``).
      size: output side.

    Returns:
      float32 ``[n, size, size]`` in ``[0, 1]`` (bilinear): cell ``(i, j)`` samples the mask at the
      centre of the box's ``(i, j)``-th cell, so a box tight around a mask gives an almost full crop.
    """
    n = tf.shape(masks)[0]
    h = tf.cast(tf.shape(masks)[1], tf.float32)
    w = tf.cast(tf.shape(masks)[2], tf.float32)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    # crop_and_resize samples at y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (size - 1); choose y1, y2 so
    # those are the cell centres ymin * H + (i + 0.5) * box_h / size - 0.5 (pixel-centre coordinates).
    cell_h = (ymax - ymin) * h / size
    cell_w = (xmax - xmin) * w / size
    y1 = (ymin * h + 0.5 * cell_h - 0.5) / tf.maximum(h - 1.0, 1.0)
    y2 = (ymin * h + (size - 0.5) * cell_h - 0.5) / tf.maximum(h - 1.0, 1.0)
    x1 = (xmin * w + 0.5 * cell_w - 0.5) / tf.maximum(w - 1.0, 1.0)
    x2 = (xmin * w + (size - 0.5) * cell_w - 0.5) / tf.maximum(w - 1.0, 1.0)
    crop_boxes = tf.stack([y1, x1, y2, x2], axis=-1)
    # crop_and_resize reads uint8 directly: no float copy of n full-resolution masks.
    images = tf.cast(masks, tf.uint8)[..., None] if masks.dtype == tf.bool else masks[..., None]
    crops = tf.image.crop_and_resize(
        images, crop_boxes, tf.range(n), [size, size], method="bilinear", extrapolation_value=0.0
    )
    return tf.clip_by_value(crops[..., 0], 0.0, 1.0)


def source_to_input_boxes(boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Normalized source boxes ``[n, 4]`` -> boxes normalized by the scaled size in the input's frame.

    Subtracts the crop offset (``crop_offset / scaled_hw``), so that the result is input-normalized
    (:func:`hierseg.features.boxes_to_input_pixels` gives input pixels). Without a crop the boxes are unchanged.
    """
    shift = crop_offset(image_info) / scaled_hw(image_info)
    return boxes - tf.concat([shift, shift], axis=0)
