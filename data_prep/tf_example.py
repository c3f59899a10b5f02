"""tf.train.Example of one image in the TF Object Detection API / Model Garden layout.

Keys come from :mod:`hierseg.features`. Boxes are stored normalized to [0, 1] as the four separate
``image/object/bbox/{xmin,xmax,ymin,ymax}`` lists; masks as one PNG per instance at image resolution
with values 0/1; ``image/object/class/text`` holds the MIDs; ``image/source_id`` is the decimal COCO
image id of the split's COCO JSON and ``image/filename`` is ``<ImageID>.jpg`` (so Model Garden's
decoder, parsers and COCO evaluator read the records as they are).

The messages are built from a copy of TensorFlow's ``example.proto``/``feature.proto`` schema held in a
private protobuf descriptor pool, so pixel workers never import TensorFlow (spawning a worker then
costs a fraction of a second instead of seconds). Same field numbers and deterministic serialization
give the very bytes ``tf.train.Example.SerializeToString(deterministic=True)`` gives (a test checks it).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from hierseg import features as F

_F = descriptor_pb2.FieldDescriptorProto


@functools.cache
def _classes() -> dict[str, type]:
    """Message classes Example, Features, Feature, BytesList, FloatList, Int64List (package tensorflow)."""
    fd = descriptor_pb2.FileDescriptorProto(name="hierseg/tf_example.proto", package="tensorflow", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str]], oneof: str | None = None):
        m = fd.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if oneof:
                f.oneof_index = 0
        return m

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    message("BytesList", [("value", 1, _F.TYPE_BYTES, rep, "")])
    message("FloatList", [("value", 1, _F.TYPE_FLOAT, rep, "")])  # proto3: packed, as in feature.proto
    message("Int64List", [("value", 1, _F.TYPE_INT64, rep, "")])
    message(
        "Feature",
        [
            ("bytes_list", 1, _F.TYPE_MESSAGE, opt, ".tensorflow.BytesList"),
            ("float_list", 2, _F.TYPE_MESSAGE, opt, ".tensorflow.FloatList"),
            ("int64_list", 3, _F.TYPE_MESSAGE, opt, ".tensorflow.Int64List"),
        ],
        oneof="kind",
    )
    features = message("Features", [("feature", 1, _F.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry")])
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=_F.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
    message("Example", [("features", 1, _F.TYPE_MESSAGE, opt, ".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    names = ("Example", "Features", "Feature", "BytesList", "FloatList", "Int64List")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{n}")) for n in names}


def example_class() -> type:
    """The Example message class (``FromString`` parses records written by any TF version)."""
    return _classes()["Example"]


def _bytes(values: Sequence[bytes]):
    c = _classes()
    return c["Feature"](bytes_list=c["BytesList"](value=list(values)))


def _floats(values):
    c = _classes()
    return c["Feature"](float_list=c["FloatList"](value=[float(v) for v in values]))


def _ints(values):
    c = _classes()
    return c["Feature"](int64_list=c["Int64List"](value=[int(v) for v in values]))


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
    filename: str | None = None,
    mask_valid: Sequence[bool] | None = None,
):
    """Builds the Example.

    Args:
      image: encoded image bytes (JPEG or PNG); image_format "jpeg" or "png".
      height, width: image size in pixels.
      source_id: the image's decimal id in the split's COCO JSON ("17").
      filename: ``<ImageID>.jpg``, the COCO JSON's file_name (image/filename; None: no such key, and
        readers take image/source_id as the image's name).
      boxes: float32 [N, 4] normalized (ymin, xmin, ymax, xmax).
      class_ids: [N] ids 1..K; mids: [N] class MIDs; is_crowd: [N] IsGroupOf.
      mask_pngs: [N] PNG bytes, each [height, width] with values 0/1.
      weight: image/weight (repeat factor when balancing by weights, else 1.0).
      mask_valid: [N] image/object/mask_valid (False: a box-only instance, its PNG all zero); None =
        the key is not written (readers then take every mask as valid).
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
    if filename is not None:
        feature[F.IMAGE_FILENAME] = _bytes([filename.encode()])
    if mask_valid is not None:
        if len(mask_valid) != n:
            raise ValueError("build_example: mask_valid and boxes differ in length")
        feature[F.OBJECT_MASK_VALID] = _ints([bool(v) for v in mask_valid])
    c = _classes()
    return c["Example"](features=c["Features"](feature=feature))


def parsing_spec() -> dict:
    """The ``tf.io.parse_single_example`` spec of every key written by :func:`build_example`."""
    import tensorflow as tf

    return {
        F.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        F.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        F.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string),
        F.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        F.IMAGE_KEY_SHA256: tf.io.FixedLenFeature([], tf.string),
        F.OBJECT_XMIN: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_XMAX: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_YMIN: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_YMAX: tf.io.VarLenFeature(tf.float32),
        F.OBJECT_CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        F.OBJECT_CLASS_TEXT: tf.io.VarLenFeature(tf.string),
        F.OBJECT_IS_CROWD: tf.io.VarLenFeature(tf.int64),
        F.OBJECT_MASK: tf.io.VarLenFeature(tf.string),
        F.OBJECT_MASK_VALID: tf.io.VarLenFeature(tf.int64),
        F.EXAMPLE_WEIGHT: tf.io.FixedLenFeature([], tf.float32, default_value=1.0),
    }
