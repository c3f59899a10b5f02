"""The one place that names the tf.data feature keys and fixes the tensor conventions.

Conventions used by every stage (data_prep writes them, the input pipeline reads them, the model and
the exporter produce them):

* **Boxes** are ``[N, 4]`` float32 ``(ymin, xmin, ymax, xmax)`` in one of three frames, each named
  where it is used, and converted only by the functions at the end of this module:

  - *input pixels*: pixels of the padded network input ``[S, S]``. Everything inside a model
    (anchors, proposals, ROIs, box and RPN targets, detections before output) is in input pixels.
  - *input-normalized*: input pixels divided by the scaled content size ``scaled_hw(image_info)``.
    ``GT_BOXES`` of the input pipeline are in this frame (after any crop, within ``[0, 1]``);
    :func:`boxes_to_input_pixels` is the one conversion to input pixels (nothing converts back). Without
    a crop this equals normalized to the original.
  - *original-normalized*: normalized by the original image's height and width: the TFRecords (as the
    OD-API keys ``xmin, xmax, ymin, ymax``), the model's ``DET_BOXES`` and the host-side ``Detections``.
    :func:`input_pixels_to_original` is the one conversion from input pixels.
* **Classes** are int32 ids ``1..K`` in the layer's label map; ``0`` is background and padding.
* **Instances** are padded to a fixed count ``max_instances`` (static shapes for TPU); the boolean
  validity mask ``gt_valid`` tells real rows from padding. Padding rows are all-zero.
* **Images** entering the model are float32 ``[H, W, 3]``, RGB, normalized by ``IMAGE_MEAN`` and
  ``IMAGE_STD`` (values in 0..255 before normalization), resized so the content fits the output size
  with its aspect ratio kept, and padded bottom/right with zeros to ``[output_size, output_size]``
  (a multiple of ``2**max_level``).
* **image_info** is float32 ``[4, 2]`` (``[B, 4, 2]`` batched): ``[[orig_h, orig_w], [scaled_h,
  scaled_w], [scale_y, scale_x], [offset_y, offset_x]]`` as in the TPU detection models; ``scaled = orig
  * scale``; ``offset`` is the crop's top-left corner in scaled pixels. Build it with
  :func:`make_image_info` and read it with :func:`original_hw`, :func:`scaled_hw`, :func:`image_scale`,
  :func:`crop_offset` (never by row index).
* **Instance masks** in the TFRecords are PNGs at image resolution (one per instance) with values 0/1,
  as Model Garden's own converters write them (its decoder does not rescale); readers accept 0/255 too.
  In the input pipeline they become ``gt_masks`` float32 ``[N, S, S]`` in ``[0, 1]``: the mask cropped
  to its box and resized to ``S = gt_mask_size``, so the model can crop any ROI target from them.
* **Anchors** are concatenated over levels ``min_level..max_level``; within a level in ``(y, x,
  anchor)`` order. RPN targets follow that order: ``rpn_score_targets`` int32 ``[A]`` (1 positive,
  0 negative, -1 ignored) and ``rpn_box_targets`` float32 ``[A, 4]`` (encoded deltas, 0 where not
  positive).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# tf.train.Example keys (TF Object Detection API / Model Garden layout), written by data_prep.
IMAGE_ENCODED = "image/encoded"  # bytes: JPEG (or PNG) of the image
IMAGE_FORMAT = "image/format"  # bytes: b"jpeg" or b"png"
IMAGE_HEIGHT = "image/height"  # int64
IMAGE_WIDTH = "image/width"  # int64
# bytes: the decimal id of the image in the split's COCO JSON (validation_coco.json "id"), as Model
# Garden's parsers and COCO evaluator expect; the Open Images ImageID is in IMAGE_FILENAME.
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_FILENAME = "image/filename"  # bytes: "<ImageID>.jpg" (the COCO JSON's file_name)
IMAGE_KEY_SHA256 = "image/key/sha256"  # bytes: sha256 of image/encoded (OD API; optional)
OBJECT_XMIN = "image/object/bbox/xmin"  # float list, normalized
OBJECT_XMAX = "image/object/bbox/xmax"
OBJECT_YMIN = "image/object/bbox/ymin"
OBJECT_YMAX = "image/object/bbox/ymax"
OBJECT_CLASS_LABEL = "image/object/class/label"  # int64 list, 1..K
OBJECT_CLASS_TEXT = "image/object/class/text"  # bytes list: the MIDs
OBJECT_IS_CROWD = "image/object/is_crowd"  # int64 list: IsGroupOf
OBJECT_MASK = "image/object/mask"  # bytes list: one PNG per instance at image resolution
# int64 list: 1 = the instance's mask is real, 0 = a box-only instance (its PNG is all zero; it trains the
# box losses, never the mask loss). Absent = every mask is real (records written before issue 12).
OBJECT_MASK_VALID = "image/object/mask_valid"
EXAMPLE_WEIGHT = "image/weight"  # float: repeat-factor weight (1.0 when balancing is in the shards)
SEMANTIC_ENCODED = "image/segmentation/class/encoded"  # bytes: PNG of class ids 0..K, 255 ignore (DeepLab key)
SEMANTIC_FORMAT = "image/segmentation/class/format"  # bytes: b"png"

# ---------------------------------------------------------------------------------------------
# Keys of the feature dict the input pipeline produces and the model consumes.
IMAGE = "image"  # float32 [H, W, 3] normalized, padded
IMAGE_INFO = "image_info"  # float32 [4, 2], see module docstring
SOURCE_ID = "source_id"  # string [] (eval/predict only; never fed to a TPU)
GT_BOXES = "gt_boxes"  # float32 [N, 4] input-normalized ymin, xmin, ymax, xmax (boxes_to_input_pixels)
GT_CLASSES = "gt_classes"  # int32 [N], 1..K, 0 = padding
GT_VALID = "gt_valid"  # bool [N]
GT_IS_CROWD = "gt_is_crowd"  # bool [N]
GT_MASKS = "gt_masks"  # float32 [N, S, S] in [0, 1], cropped to the box
GT_MASK_VALID = "gt_mask_valid"  # bool [N]: GT_MASKS row is a real mask (False: box-only, no mask loss)
RPN_SCORE_TARGETS = "rpn_score_targets"  # int32 [A]: 1 pos, 0 neg, -1 ignore
RPN_BOX_TARGETS = "rpn_box_targets"  # float32 [A, 4]
WEIGHT = "example_weight"  # float32 []: per-example loss weight (repeat factor), 1.0 by default
NUM_DROPPED = "num_instances_dropped"  # int32 []: instances over max_instances, logged
GT_SEMANTIC = "gt_semantic"  # int32 [S, S]: class id 0..K per input pixel, SEMANTIC_IGNORE where unknown
SEMANTIC_IGNORE = 255  # GT_SEMANTIC / label-map PNG value without loss or metric (VOC boundaries, padding)
# int64 [2]: stateless seed of the model's per-example training-targets map (models.factory.build_train_targets);
# present only while that map runs, removed before batching.
TARGETS_SEED = "train_targets_seed"

# Keys of the model's inference output (a dict of batched tensors).
DET_BOXES = "detection_boxes"  # float32 [B, D, 4] original-normalized
DET_CLASSES = "detection_classes"  # int32 [B, D], 1..K, 0 for padding
DET_SCORES = "detection_scores"  # float32 [B, D] in [0, 1], 0 for padding
DET_MASKS = "detection_masks"  # float32 [B, D, M, M]: mask probabilities inside each box
NUM_DETECTIONS = "num_detections"  # int32 [B]
SEMANTIC_LABELS = "semantic_labels"  # int32 [B, S, S]: argmax class 0..K per input pixel (crop to image_info[1])
SEMANTIC_SCORES = "semantic_scores"  # float32 [B, S, S]: softmax probability of that class

# ImageNet statistics on 0..255 RGB (what ResNet backbones are trained with).
IMAGE_MEAN = (123.675, 116.28, 103.53)
IMAGE_STD = (58.395, 57.12, 57.375)

# Training targets of the one-stage detectors (RetinaNet, ShapeMask), added per example by
# hierseg.models.retinanet_targets / shapemask_targets. Anchors in the order described above.
ANCHOR_CLASS_TARGETS = "anchor_class_targets"  # int32 [A]: 1..K positive class, 0 negative, -1 ignored
ANCHOR_BOX_TARGETS = "anchor_box_targets"  # float32 [A, 4]: encoded deltas at positives, 0 elsewhere
# ShapeMask: S = num_sampled_masks instances per image (repeated when fewer), boxes in input pixels.
MASK_BOXES = "mask_boxes"  # float32 [S, 4]: jittered gt boxes, clipped to the input
MASK_OUTER_BOXES = "mask_outer_boxes"  # float32 [S, 4]: those boxes scaled by outer_box_scale, clipped
MASK_CLASSES = "mask_classes"  # int32 [S]: 1..K (0 when the image has no instance)
MASK_TARGETS = "mask_targets"  # float32 [S, C, C] 0/1: gt mask in the outer box, C = mask_crop_size
FINE_MASK_TARGETS = "fine_mask_targets"  # float32 [S, F, F] 0/1, F = C * upsample_factor
MASK_VALID = "mask_valid"  # bool [S]: False for every row of an image without instances


# ---------------------------------------------------------------------------------------------
# image_info and the box frames. Functions take numpy arrays or tensors with any leading dimensions;
# TensorFlow is imported inside them so that data_prep can import the keys above without it.
def original_hw(image_info):
    """``[..., 2]`` original (height, width) of ``image_info [..., 4, 2]``."""
    return image_info[..., 0, :]


def scaled_hw(image_info):
    """``[..., 2]`` (height, width) of the resized content before any crop; boxes are clipped to it."""
    return image_info[..., 1, :]


def image_scale(image_info):
    """``[..., 2]`` (scale_y, scale_x) = scaled / original."""
    return image_info[..., 2, :]


def crop_offset(image_info):
    """``[..., 2]`` (offset_y, offset_x): top-left corner of the input window in scaled pixels."""
    return image_info[..., 3, :]


def make_image_info(height, width, scaled_h, scaled_w, offset_y, offset_x):
    """float32 ``[4, 2]`` image_info from its parts (scale = scaled / original, per axis)."""
    import tensorflow as tf

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


def _yxyx(hw):
    """``[..., 2]`` (h, w) -> ``[..., 1, 4]`` (h, w, h, w), to scale ``[..., N, 4]`` boxes."""
    import tensorflow as tf

    hw = tf.cast(hw, tf.float32)
    return tf.concat([hw, hw], axis=-1)[..., None, :]


def boxes_to_input_pixels(boxes, image_info):
    """Input-normalized boxes ``[..., N, 4]`` (``GT_BOXES``) -> input pixels: ``boxes * scaled_hw``."""
    import tensorflow as tf

    return tf.cast(boxes, tf.float32) * _yxyx(scaled_hw(tf.cast(image_info, tf.float32)))


def input_pixels_to_original(boxes_pixels, image_info):
    """Input-pixel boxes ``[..., D, 4]`` -> original-normalized, clipped to ``[0, 1]``.

    original pixels = (input pixels + crop_offset) / image_scale.
    """
    import tensorflow as tf

    info = tf.cast(image_info, tf.float32)
    original = (tf.cast(boxes_pixels, tf.float32) + _yxyx(crop_offset(info))) / tf.maximum(
        _yxyx(image_scale(info)), 1e-8
    )
    return tf.clip_by_value(original / tf.maximum(_yxyx(original_hw(info)), 1.0), 0.0, 1.0)
