"""tf.train.Example of one image in the TF Object Detection API / Model Garden layout.

Keys come from :mod:`hierseg.features`. Boxes are stored normalized to [0, 1] as the four separate
``image/object/bbox/{xmin,xmax,ymin,ymax}`` lists; masks as one PNG per instance at image resolution
with values 0/255; ``image/object/class/text`` holds the MIDs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from hierseg import features as F


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def build_example(
    *,
    image: bytes,
    image_format: str,
    height: int,
    width: int,
    source_id: str,
    boxes: np.ndarray,
    class_ids: Sequence[int],
    mids: Sequence[str],
    is_crowd: Sequence[bool],
    mask_pngs: Sequence[bytes],
    weight: float = 1.0,
) -> tf.train.Example:
    """Builds the Example.

    Args:
      image: encoded image bytes (JPEG or PNG); image_format "jpeg" or "png".
      height, width: image size in pixels.
      source_id: the Open Images ImageID.
      boxes: float32 [N, 4] normalized (ymin, xmin, ymax, xmax).
      class_ids: [N] ids 1..K; mids: [N] class MIDs; is_crowd: [N] IsGroupOf.
      mask_pngs: [N] PNG bytes, each [height, width] with values 0/255.
      weight: image/weight (repeat factor when balancing by weights, else 1.0).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    if not (len(class_ids) == len(mids) == len(is_crowd) == len(mask_pngs) == n):
        raise ValueError("build_example: boxes, class_ids, mids, is_crowd and mask_pngs differ in length")
    feature = {
        F.IMAGE_ENCODED: _bytes([image]),
        F.IMAGE_FORMAT: _bytes([image_format.encode()]),
        F.IMAGE_HEIGHT: _ints([height]),
        F.IMAGE_WIDTH: _ints([width]),
        F.IMAGE_SOURCE_ID: _bytes([source_id.encode()]),
        F.IMAGE_KEY_SHA256: _bytes([hashlib.sha256(image).hexdigest().encode()]),
        F.OBJECT_YMIN: _floats(boxes[:, 0]),
        F.OBJECT_XMIN: _floats(boxes[:, 1]),
        F.OBJECT_YMAX: _floats(boxes[:, 2]),
        F.OBJECT_XMAX: _floats(boxes[:, 3]),
        F.OBJECT_CLASS_LABEL: _ints(class_ids),
        F.OBJECT_CLASS_TEXT: _bytes([m.encode() for m in mids]),
        F.OBJECT_IS_CROWD: _ints([bool(c) for c in is_crowd]),
        F.OBJECT_MASK: _bytes(mask_pngs),
        F.EXAMPLE_WEIGHT: _floats([weight]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parsing_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of every key written by :func:`build_example`."""
    return {
        F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        F.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        F.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_KEY_SHA256: tf.io.FixedLenFeature([], tf.string),
        F.OBJECT_XMIN: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_XMAX: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_YMIN: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_YMAX: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        F.OBJECT_CLASS_TEXT: tf.io.VarLenFeature(tf.string),
        F.OBJECT_IS_CROWD: tf.io.VarLenFeature(tf.int64),
        F.OBJECT_MASK: tf.io.VarLenFeature(tf.string),
        F.EXAMPLE_WEIGHT: tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
    }
