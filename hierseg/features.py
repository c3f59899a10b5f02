"""The one place that names the tf.data feature keys and fixes the tensor conventions.

Conventions used by every stage (data_prep writes them, the input pipeline reads them, the model and
the exporter produce them):

* **Boxes** are ``[N, 4]`` float32 ``(ymin, xmin, ymax, xmax)``, **normalized** to ``[0, 1]`` by the
  height and width of the (unpadded) image content, unless a name says ``_pixels``. The TFRecords
  store them as the separate OD-API keys ``xmin, xmax, ymin, ymax``.
* **Classes** are int32 ids ``1..K`` in the layer's label map; ``0`` is background and padding.
* **Instances** are padded to a fixed count ``max_instances`` (static shapes for TPU); the boolean
  validity mask ``gt_valid`` tells real rows from padding. Padding rows are all-zero.
* **Images** entering the model are float32 ``[H, W, 3]``, RGB, normalized by ``IMAGE_MEAN`` and
  ``IMAGE_STD`` (values in 0..255 before normalization), resized so the content fits the output size
  with its aspect ratio kept, and padded bottom/right with zeros to ``[output_size, output_size]``
  (a multiple of ``2**max_level``).
* **image_info** is float32 ``[4, 2]``: ``[[orig_h, orig_w], [scaled_h, scaled_w], [scale_y,
  scale_x], [offset_y, offset_x]]`` as in the TPU detection models; ``scaled = orig * scale``.
* **Instance masks** in the TFRecords are PNGs at image resolution (one per instance, 0/1 or 0/255).
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
IMAGE_SOURCE_ID = "image/source_id"  # bytes: the Open Images ImageID (16 hex chars)
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

# ---------------------------------------------------------------------------------------------
# Keys of the feature dict the input pipeline produces and the model consumes.
IMAGE = "image"  # float32 [H, W, 3] normalized, padded
IMAGE_INFO = "image_info"  # float32 [4, 2], see module docstring
SOURCE_ID = "source_id"  # string [] (eval/predict only; never fed to a TPU)
GT_BOXES = "gt_boxes"  # float32 [N, 4] normalized ymin, xmin, ymax, xmax
# (GT_BOXES are normalized by the scaled size image_info[1] in the input's frame, i.e. after any crop:
#  input pixels = box * image_info[1] (hierseg.input.preprocess.boxes_to_input_pixels).)
GT_CLASSES = "gt_classes"  # int32 [N], 1..K, 0 = padding
GT_VALID = "gt_valid"  # bool [N]
GT_IS_CROWD = "gt_is_crowd"  # bool [N]
GT_MASKS = "gt_masks"  # float32 [N, S, S] in [0, 1], cropped to the box
GT_MASK_VALID = "gt_mask_valid"  # bool [N]: GT_MASKS row is a real mask (False: box-only, no mask loss)
RPN_SCORE_TARGETS = "rpn_score_targets"  # int32 [A]: 1 pos, 0 neg, -1 ignore
RPN_BOX_TARGETS = "rpn_box_targets"  # float32 [A, 4]
WEIGHT = "example_weight"  # float32 []: per-example loss weight (repeat factor), 1.0 by default
NUM_DROPPED = "num_instances_dropped"  # int32 []: instances over max_instances, logged

# Keys of the model's inference output (a dict of batched tensors).
DET_BOXES = "detection_boxes"  # float32 [B, D, 4] normalized to the original image
DET_CLASSES = "detection_classes"  # int32 [B, D], 1..K, 0 for padding
DET_SCORES = "detection_scores"  # float32 [B, D] in [0, 1], 0 for padding
DET_MASKS = "detection_masks"  # float32 [B, D, M, M]: mask probabilities inside each box
NUM_DETECTIONS = "num_detections"  # int32 [B]

# ImageNet statistics on 0..255 RGB (what ResNet backbones are trained with).
IMAGE_MEAN = (123.675, 116.28, 103.53)
IMAGE_STD = (58.395, 57.12, 57.375)
