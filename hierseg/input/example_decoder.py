"""Parses the prepared tf.train.Example layout (TF Object Detection API keys, see hierseg/features.py).

The decoder returns one image's tensors at its original resolution; augmentation, resizing, padding
and targets happen later in :mod:`hierseg.input.pipeline`.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg import features
from hierseg.input.preprocess import decode_image

# Keys of the decoded dict (internal to hierseg/input: variable-length, original resolution).
IMAGE = "image"  # uint8 [H, W, 3]
SOURCE_ID = "source_id"  # string []
HEIGHT = "height"  # int32 []
WIDTH = "width"  # int32 []
BOXES = "boxes"  # float32 [n, 4] normalized ymin, xmin, ymax, xmax
CLASSES = "classes"  # int32 [n], 1..K
IS_CROWD = "is_crowd"  # bool [n]
MASKS = "masks"  # uint8 [n, H, W], 0/1
MASK_VALID = "mask_valid"  # bool [n]: the mask is real (False: box-only instance, empty mask)
WEIGHT = "weight"  # float32 []
SEMANTIC_PNG = "semantic_png"  # string []: label-map PNG (VOC records), "" when absent


def _feature_spec() -> dict:
    float_list = tf.io.VarLenFeature(tf.float32)
    return {
        features.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        features.IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
        features.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        features.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        features.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        features.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        features.OBJECT_XMIN: float_list,
        features.OBJECT_XMAX: float_list,
        features.OBJECT_YMIN: float_list,
        features.OBJECT_YMAX: float_list,
        features.OBJECT_CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        features.OBJECT_IS_CROWD: tf.io.VarLenFeature(tf.int64),
        features.OBJECT_MASK: tf.io.VarLenFeature(tf.string),
        features.OBJECT_MASK_VALID: tf.io.VarLenFeature(tf.int64),
        features.EXAMPLE_WEIGHT: tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
        features.SEMANTIC_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def _decode_masks(pngs: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """PNG strings [n] -> uint8 [n, H, W] with values 0/1 (any nonzero pixel counts as inside).

    Masks are written at image resolution; one that is not (a foreign writer) is resized to it with
    nearest neighbour, as the Open Images masks themselves need.
    """

    def decode_one(png):
        m = tf.io.decode_png(png, channels=1)
        m = tf.cond(
            tf.reduce_all(tf.equal(tf.shape(m)[:2], tf.stack([height, width]))),
            lambda: m,
            lambda: tf.cast(tf.image.resize(m, tf.stack([height, width]), method="nearest"), tf.uint8),
        )
        return tf.cast(m[:, :, 0] > 0, tf.uint8)

    shape = tf.stack([tf.shape(pngs)[0], height, width])
    # map_fn cannot stack an empty list of unknown-shape masks: an image without instances is a cond.
    masks = tf.cond(
        tf.equal(tf.size(pngs), 0),
        lambda: tf.zeros(shape, tf.uint8),
        lambda: tf.map_fn(decode_one, pngs, fn_output_signature=tf.TensorSpec([None, None], tf.uint8)),
    )
    return tf.reshape(masks, shape)


def source_id_of(dense: dict[str, tf.Tensor]) -> tf.Tensor:
    """The Open Images ImageID: image/filename without its extension (image/source_id holds the COCO
    JSON's numeric id); records without a file name keep image/source_id."""
    filename = dense[features.IMAGE_FILENAME]
    return tf.where(
        tf.equal(filename, ""),
        dense[features.IMAGE_SOURCE_ID],
        tf.strings.regex_replace(filename, r"\.[^.]*$", ""),
    )


def _per_box(values: tf.Tensor, n: tf.Tensor, if_absent: int) -> tf.Tensor:
    """An optional per-box int64 field: ``[n]`` of ``if_absent`` when the record omits it (OD API writers
    may leave out is_crowd; mask_valid exists only with box-only instances)."""
    return tf.cond(tf.equal(tf.size(values), 0), lambda: tf.fill([n], tf.constant(if_absent, tf.int64)), lambda: values)


def _assert_per_box(values: tf.Tensor, n: tf.Tensor, source_id: tf.Tensor, what: str) -> tf.Operation:
    """Fails naming the source_id when ``values`` has not one entry per box."""
    message = tf.strings.join(["tf.Example ", source_id, f": number of {what} differs from number of boxes"])
    return tf.debugging.assert_equal(tf.shape(values)[0], n, message=message)


def decode_example(serialized: tf.Tensor, *, with_masks: bool = True) -> dict[str, tf.Tensor]:
    """One serialized tf.Example -> dict of tensors (keys of this module).

    Missing ``image/weight`` reads as 1.0, missing ``is_crowd`` as False, missing ``mask_valid`` as
    True (every mask real). The number of boxes, labels and masks must agree; a mismatch fails with an
    error naming the source_id.
    """
    parsed = tf.io.parse_single_example(serialized, _feature_spec())
    dense = {k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v) for k, v in parsed.items()}
    image = decode_image(dense[features.IMAGE_ENCODED])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    source_id = source_id_of(dense)
    corners = (features.OBJECT_YMIN, features.OBJECT_XMIN, features.OBJECT_YMAX, features.OBJECT_XMAX)
    boxes = tf.reshape(tf.stack([dense[k] for k in corners], axis=-1), [-1, 4])
    classes = tf.cast(dense[features.OBJECT_CLASS_LABEL], tf.int32)
    n = tf.shape(boxes)[0]
    crowd = _per_box(dense[features.OBJECT_IS_CROWD], n, 0)
    mask_valid = _per_box(dense[features.OBJECT_MASK_VALID], n, 1)  # box-only instances: 0 (issue 12)
    checks = [
        _assert_per_box(classes, n, source_id, "class labels"),
        _assert_per_box(crowd, n, source_id, "is_crowd values"),
        _assert_per_box(mask_valid, n, source_id, "mask_valid values"),
    ]
    out = {
        IMAGE: image,
        SOURCE_ID: source_id,
        HEIGHT: height,
        WIDTH: width,
        CLASSES: classes,
        IS_CROWD: crowd > 0,
        MASK_VALID: mask_valid > 0,
        WEIGHT: dense[features.EXAMPLE_WEIGHT],
        SEMANTIC_PNG: dense[features.SEMANTIC_ENCODED],
    }
    with tf.control_dependencies(checks):
        out[BOXES] = tf.identity(boxes)
    if with_masks:
        pngs = dense[features.OBJECT_MASK]
        with tf.control_dependencies([_assert_per_box(pngs, n, source_id, "masks")]):
            out[MASKS] = _decode_masks(pngs, height, width)
    return out
