"""Per-pixel semantic targets (``GT_SEMANTIC``) from instance annotations or a label-map PNG (pure TF).

Open Images layers keep their instance records: :func:`class_map_from_instances` paints each mask
with its class id, later instances on top, over background 0. Pixels whose class is unknown get
``features.SEMANTIC_IGNORE`` so that unlabelled objects never teach background:

* inside the box of an instance that carries no mask (an all-zero mask: the box-only instances of
  ``image/object/mask_valid`` 0 decode to empty masks), and
* on gray-filled regions: data_prep paints the boxes of non-target parent classes (Person in a Layer1
  that has Man, Woman, ...) with one gray level and never over target masks
  (:func:`data_prep.pixels.gray_fill_region`). The records keep only the painted pixels, so
  :func:`gray_fill_mask` finds them again: every channel within ``tolerance`` of ``gray_value``
  (JPEG moves the level by a few units) on a block of at least ``min_side x min_side`` pixels
  (a morphological opening, so scattered natural gray pixels stay labelled).

Mask pixels win over both ignore rules. PASCAL VOC records carry the label map itself
(``features.SEMANTIC_ENCODED``). Either map is built in the source frame and moved into the network
input by :func:`labels_to_input_frame`, with the image's flip and ``image_info``.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg import features
from hierseg.config.deeplab import SemanticTargetConfig


def gray_fill_mask(image: tf.Tensor, gray_value: int, tolerance: int, min_side: int) -> tf.Tensor:
    """bool ``[H, W]``: pixels of ``image`` (uint8 ``[H, W, 3]``) on gray-filled blocks (see module doc)."""
    if gray_value < 0:
        return tf.zeros(tf.shape(image)[:2], tf.bool)
    diff = tf.abs(tf.cast(image, tf.int32) - gray_value)
    gray = tf.cast(tf.reduce_all(diff <= tolerance, axis=-1), tf.float32)[None, :, :, None]
    if min_side > 1:
        # Opening = erosion then dilation with the same window: keeps exactly the union of all
        # min_side x min_side windows that are gray throughout. An even window is centred low-right,
        # so the dilation uses the mirrored window (reverse, pool, reverse).
        k = int(min_side)
        eroded = -tf.nn.max_pool2d(-gray, k, 1, "SAME")
        flipped = tf.reverse(eroded, axis=[1, 2])
        gray = tf.reverse(tf.nn.max_pool2d(flipped, k, 1, "SAME"), axis=[1, 2])
    return gray[0, :, :, 0] > 0.5


def box_region(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """bool ``[n, H, W]``: pixels covered by normalized boxes ``[n, 4]`` (rows floor(ymin H)..ceil(ymax H))."""
    boxes = tf.cast(boxes, tf.float32)
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    rows = tf.range(height, dtype=tf.float32)
    cols = tf.range(width, dtype=tf.float32)
    in_y = (rows[None, :] >= tf.floor(boxes[:, 0:1] * h)) & (rows[None, :] < tf.math.ceil(boxes[:, 2:3] * h))
    in_x = (cols[None, :] >= tf.floor(boxes[:, 1:2] * w)) & (cols[None, :] < tf.math.ceil(boxes[:, 3:4] * w))
    return in_y[:, :, None] & in_x[:, None, :]


def class_map_from_instances(
    masks: tf.Tensor,
    classes: tf.Tensor,
    boxes: tf.Tensor,
    gray: tf.Tensor | None = None,
    ignore_boxes_without_mask: bool = True,
) -> tf.Tensor:
    """int32 ``[H, W]`` class map of one image.

    Args:
      masks: ``[n, H, W]`` (uint8/bool/float, > 0 inside), in the record's order.
      classes: int ``[n]`` class ids 1..K.
      boxes: ``[n, 4]`` normalized (ymin, xmin, ymax, xmax).
      gray: bool ``[H, W]`` gray-filled pixels, or None.
      ignore_boxes_without_mask: SEMANTIC_IGNORE inside the boxes of instances whose mask is empty.

    Returns:
      the class of the last instance whose mask covers the pixel; else SEMANTIC_IGNORE on gray or
      mask-less boxes; else 0.
    """
    masks = tf.convert_to_tensor(masks)
    classes = tf.cast(classes, tf.int32)
    boxes = tf.cast(boxes, tf.float32)
    n = tf.shape(masks)[0]
    height, width = tf.shape(masks)[1], tf.shape(masks)[2]

    # One instance at a time (memory O(H W), not O(n H W): records hold 100+ full-resolution masks).
    def body(i, labels, unknown):
        inside = tf.not_equal(masks[i], tf.zeros([], masks.dtype))
        labels = tf.where(inside, classes[i], labels)
        if ignore_boxes_without_mask:
            region = box_region(boxes[i : i + 1], height, width)[0]
            unknown = unknown | (region & ~tf.reduce_any(inside))
        return i + 1, labels, unknown

    _, labels, unknown = tf.while_loop(
        lambda i, *_: i < n,
        body,
        [tf.constant(0), tf.zeros([height, width], tf.int32), tf.zeros([height, width], tf.bool)],
    )
    if gray is not None:
        unknown |= tf.cast(gray, tf.bool)
    # Classes are 1..K, so a positive label means "painted by a mask", which wins over the ignore rules.
    return tf.where(labels > 0, labels, tf.where(unknown, features.SEMANTIC_IGNORE, 0))


def labels_to_input_frame(labels: tf.Tensor, image_info: tf.Tensor, output_size: int) -> tf.Tensor:
    """Moves a source-frame label map into the network input: int32 ``[S, S]``.

    Resizes ``labels`` (``[H, W]``, any int dtype) with nearest neighbour to the scaled size
    ``image_info[1]``, takes the window at offset ``image_info[3]`` (as
    :func:`hierseg.input.transforms.scale_and_crop` does for the image) and pads bottom/right with
    SEMANTIC_IGNORE, so padding never counts as background.
    """
    info = tf.cast(image_info, tf.float32)
    sh, sw = tf.unstack(tf.cast(features.scaled_hw(info), tf.int32))
    oy, ox = tf.unstack(tf.cast(features.crop_offset(info), tf.int32))
    # Shift by one so that padding (0 after pad) is distinguishable from class 0.
    shifted = tf.cast(labels, tf.int32)[:, :, None] + 1
    resized = tf.image.resize(shifted, tf.stack([sh, sw]), method="nearest")
    window = resized[oy : oy + output_size, ox : ox + output_size, :]
    padded = tf.image.pad_to_bounding_box(window, 0, 0, output_size, output_size)[:, :, 0]
    out = tf.where(padded > 0, padded - 1, features.SEMANTIC_IGNORE)
    out.set_shape([output_size, output_size])
    return out


def source_class_map(
    image: tf.Tensor,
    masks: tf.Tensor,
    classes: tf.Tensor,
    boxes: tf.Tensor,
    encoded_labels: tf.Tensor,
    config: SemanticTargetConfig,
) -> tf.Tensor:
    """int32 ``[H, W]`` source-frame class map of one decoded record.

    A record with a label-map PNG (``encoded_labels`` non-empty: VOC) uses it as is (values 0..K,
    255 = ignore); otherwise the map comes from the instances and the gray fill of ``image``.
    """

    def from_png():
        png = tf.io.decode_png(encoded_labels, channels=1)[:, :, 0]
        tf.debugging.assert_equal(tf.shape(png), tf.shape(image)[:2], message="label map size != image size")
        return tf.cast(png, tf.int32)

    def from_instances():
        gray = None
        if config.gray_value >= 0:
            gray = gray_fill_mask(image, config.gray_value, config.gray_tolerance, config.gray_min_side)
        return class_map_from_instances(masks, classes, boxes, gray, config.ignore_boxes_without_mask)

    return tf.cond(tf.strings.length(encoded_labels) > 0, from_png, from_instances)
