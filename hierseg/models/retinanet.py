"""RetinaNet (Lin et al. 2017): ResNet-FPN on P3-P7, class and box subnets shared across levels, focal loss.

Call contract (feature keys from :mod:`hierseg.features`, batched; S = input size, A = anchors):

``model(features, training=True)`` needs IMAGE ``[B, S, S, 3]``, ANCHOR_CLASS_TARGETS ``[B, A]`` and
ANCHOR_BOX_TARGETS ``[B, A, 4]`` (:mod:`hierseg.models.retinanet_targets`) and optionally WEIGHT ``[B]``;
it returns float32 scalars ``total_loss, retinanet_class_loss, retinanet_box_loss`` (per-replica means,
no weight decay). Static shapes: it compiles with ``tf.function(jit_compile=True)``.

``model(features, training=False)`` needs IMAGE and IMAGE_INFO and returns DET_BOXES ``[B, D, 4]``
normalized to the original image, DET_CLASSES int32 ``[B, D]`` (1..K, 0 padding), DET_SCORES ``[B, D]``
and NUM_DETECTIONS int32 ``[B]`` (no masks: ``output_kind == "boxes"``).

Pyramid: the FPN's P3-P5 from C3-C5, then P6 = 3x3/2 conv of P5 and P7 = 3x3/2 conv of ReLU(P6), as
the seed. Anchors: ``model.anchor`` (3 scales x 3 ratios per location in the shipped configs).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.config.retinanet import RetinaNetConfig
from hierseg.models.fpn import BACKBONE_MAX_LEVEL, FPN
from hierseg.models.resnet import ResNet, track_for_checkpoint
from hierseg.models.retinanet_losses import focal_class_loss, huber_box_loss
from hierseg.ops.anchors import anchors_per_location, generate_anchors, level_shapes
from hierseg.ops.box_coding import clip_boxes, decode_boxes
from hierseg.ops.nms import batched_nms, offset_boxes_by_class

LOSS_KEYS = ("total_loss", "retinanet_class_loss", "retinanet_box_loss")


def _small_normal(stddev: float = 0.01):  # a fresh instance per layer: a Keras 3 initializer repeats its values
    return keras.initializers.RandomNormal(stddev=stddev)


class RetinaNetFPN(keras.layers.Layer):
    """``RetinaNetFPN(config)({2..5: C}) -> {min_level..max_level: P}``: the shared FPN plus conv P6/P7."""

    def __init__(self, config: ModelConfig, **kw):
        super().__init__(**kw)
        anchor = config.anchor
        self.min_level, self.max_level = anchor.min_level, anchor.max_level
        top = min(anchor.max_level, BACKBONE_MAX_LEVEL)
        self.fpn = FPN(config.fpn, dataclasses.replace(anchor, max_level=top), name="fpn")
        self.extra = [
            keras.layers.Conv2D(
                config.fpn.num_filters,
                3,
                strides=2,
                padding="same",
                kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "uniform"),
                name=f"p{level}",
            )
            for level in range(top + 1, anchor.max_level + 1)
        ]
        track_for_checkpoint(self, "extra", self.extra)

    def call(self, features):
        out = dict(self.fpn(features))
        level = max(out)
        for i, conv in enumerate(self.extra):
            x = out[level] if i == 0 else keras.ops.relu(out[level])
            level += 1
            out[level] = conv(x)
        return out


class _Subnet(keras.layers.Layer):
    """``num_convs`` shared 3x3 convs (+ a batch norm per level) + ReLU, then a 3x3 predictor conv."""

    def __init__(self, config: ModelConfig, outputs: int, bias: float, levels: list[int], **kw):
        super().__init__(**kw)
        head = config.retinanet.head
        self.levels = levels
        self.convs = [
            keras.layers.Conv2D(
                head.num_filters, 3, padding="same", kernel_initializer=_small_normal(), name=f"conv{i}"
            )
            for i in range(head.num_convs)
        ]
        track_for_checkpoint(self, "conv", self.convs)
        self.norms = []
        if head.use_batch_norm:
            backbone = config.backbone
            self.norms = [
                keras.layers.BatchNormalization(
                    momentum=backbone.norm_momentum,
                    epsilon=backbone.norm_epsilon,
                    synchronized=backbone.norm == "sync",
                    name=f"bn{i}_p{level}",
                )
                for i in range(head.num_convs)
                for level in levels
            ]
            track_for_checkpoint(self, "bn", self.norms)
        self.predict = keras.layers.Conv2D(
            outputs,
            3,
            padding="same",
            kernel_initializer=_small_normal(1e-5),
            bias_initializer=keras.initializers.Constant(bias),
            name="predict",
        )

    def build(self, input_shape):  # sub-layers build on the first call (one per level shape)
        self.built = True

    def call(self, x, level: int, training=None):
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if self.norms:
                x = self.norms[i * len(self.levels) + self.levels.index(level)](x, training=training)
            x = keras.ops.relu(x)
        return self.predict(x)


class RetinaNetHead(keras.layers.Layer):
    """``head({level: P}) -> (class_logits [B, A, K], box_deltas [B, A, 4])`` float32, anchors in generate_anchors order."""

    def __init__(self, config: ModelConfig, num_classes: int, **kw):
        super().__init__(**kw)
        self.num_classes = num_classes
        self.k = anchors_per_location(config.anchor)
        levels = list(range(config.anchor.min_level, config.anchor.max_level + 1))
        prior = -math.log((1 - 0.01) / 0.01)  # every class starts at p = 0.01 (focal-loss paper)
        self.class_net = _Subnet(config, num_classes * self.k, prior, levels, name="class_net")
        self.box_net = _Subnet(config, 4 * self.k, 0.0, levels, name="box_net")

    def call(self, pyramid: dict, training=None):
        logits, deltas = [], []
        for level in sorted(pyramid):
            x = pyramid[level]
            batch = tf.shape(x)[0]
            logits.append(
                tf.reshape(
                    tf.cast(self.class_net(x, level=level, training=training), tf.float32),
                    [batch, -1, self.num_classes],
                )
            )
            deltas.append(
                tf.reshape(tf.cast(self.box_net(x, level=level, training=training), tf.float32), [batch, -1, 4])
            )
        return tf.concat(logits, axis=1), tf.concat(deltas, axis=1)


def detect_dense(
    class_logits: tf.Tensor,
    box_deltas: tf.Tensor,
    anchors: tf.Tensor,
    level_sizes: list[int],
    image_hw: tf.Tensor,
    config: RetinaNetConfig,
) -> dict[str, tf.Tensor]:
    """Detections of a dense head: per level the ``pre_nms_topk`` best (anchor, class) pairs by sigmoid
    score, decoded, clipped, then one class-aware NMS (:func:`hierseg.ops.nms.offset_boxes_by_class`).

    Args:
      class_logits: ``[B, A, K]``; box_deltas ``[B, A, 4]``; anchors ``[A, 4]`` pixels; level_sizes: anchors
      per level (sum A); image_hw float32 ``[B, 2]`` content size for clipping.
    Returns:
      ``boxes`` ``[B, D, 4]`` input pixels, ``classes`` int32 ``[B, D]`` 1..K (0 padding), ``scores``,
      ``valid`` bool and ``num_detections`` int32 ``[B]``; D = ``config.max_detections``, by score.
    """
    num_classes = class_logits.shape[-1]
    batch = tf.shape(class_logits)[0]
    all_scores, all_classes, all_boxes = [], [], []
    start = 0
    for size in level_sizes:
        probs = tf.sigmoid(tf.reshape(class_logits[:, start : start + size], [batch, size * num_classes]))
        scores, pair = tf.math.top_k(probs, k=min(config.pre_nms_topk, size * num_classes))
        anchor_index = pair // num_classes
        deltas = tf.gather(box_deltas[:, start : start + size], anchor_index, batch_dims=1)
        boxes = decode_boxes(deltas, tf.gather(anchors[start : start + size], anchor_index), config.box_coding_weights)
        all_boxes.append(clip_boxes(boxes, image_hw[:, 0:1], image_hw[:, 1:2]))
        all_scores.append(scores)
        all_classes.append(pair % num_classes)
        start += size
    boxes, scores, classes = (tf.concat(t, axis=1) for t in (all_boxes, all_scores, all_classes))
    nonempty = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    scores = tf.where(nonempty, scores, 0.0)
    shifted = offset_boxes_by_class(boxes, classes, tf.reduce_max(image_hw))
    keep, valid = batched_nms(shifted, scores, config.max_detections, config.nms_iou, config.score_threshold)
    return {
        "boxes": tf.where(valid[..., None], tf.gather(boxes, keep, batch_dims=1), 0.0),
        "classes": tf.cast(tf.where(valid, tf.gather(classes, keep, batch_dims=1) + 1, 0), tf.int32),
        "scores": tf.where(valid, tf.gather(scores, keep, batch_dims=1), 0.0),
        "valid": valid,
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1),
    }


class RetinaNet(keras.Model):
    """``RetinaNet(config, num_classes, image_size)``; see the module docstring for the call contract."""

    output_kind = "boxes"
    loss_keys = LOSS_KEYS

    def __init__(self, config: ModelConfig, num_classes: int, image_size: int, **kw):
        super().__init__(**kw)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if config.anchor.min_level < 2:
            raise ValueError(f"model.anchor.min_level must be >= 2 for RetinaNet, got {config.anchor.min_level}")
        self.config = config
        self.num_classes = num_classes
        self.image_size = image_size
        k = anchors_per_location(config.anchor)
        self.level_sizes = [h * w * k for h, w in level_shapes(config.anchor, image_size).values()]
        self.anchors = generate_anchors(config.anchor, image_size).numpy()
        self.backbone = ResNet(config.backbone, name="backbone")
        self.fpn = RetinaNetFPN(config, name="fpn")
        self.head = RetinaNetHead(config, num_classes, name="retinanet_head")

    def _dense(self, images, training: bool):
        pyramid = self.fpn(self.backbone(images, training=training))
        class_logits, box_deltas = self.head(pyramid, training=training)
        return pyramid, class_logits, box_deltas

    def _detector_losses(self, features, class_logits, box_deltas) -> dict:
        cfg = self.config.retinanet
        weights = features.get(F.WEIGHT)
        weights = tf.ones(tf.shape(class_logits)[:1]) if weights is None else tf.cast(weights, tf.float32)
        targets = tf.cast(features[F.ANCHOR_CLASS_TARGETS], tf.int32)
        return {
            "retinanet_class_loss": focal_class_loss(class_logits, targets, weights, cfg.focal_alpha, cfg.focal_gamma),
            "retinanet_box_loss": huber_box_loss(
                box_deltas, features[F.ANCHOR_BOX_TARGETS], targets, weights, cfg.huber_delta
            ),
        }

    def _weighted_detector_loss(self, out: dict) -> tf.Tensor:
        cfg = self.config.retinanet
        return cfg.class_loss_weight * out["retinanet_class_loss"] + cfg.box_loss_weight * out["retinanet_box_loss"]

    def _detect(self, class_logits, box_deltas, image_hw):
        return detect_dense(
            class_logits, box_deltas, tf.constant(self.anchors), self.level_sizes, image_hw, self.config.retinanet
        )

    @staticmethod
    def _box_outputs(det: dict, image_info: tf.Tensor) -> dict:
        boxes = F.input_pixels_to_original(det["boxes"], image_info) * tf.cast(det["valid"][..., None], tf.float32)
        return {
            F.DET_BOXES: boxes,
            F.DET_CLASSES: det["classes"],
            F.DET_SCORES: det["scores"],
            F.NUM_DETECTIONS: det["num_detections"],
        }

    def call(self, features, training=False):
        _, class_logits, box_deltas = self._dense(features[F.IMAGE], bool(training))
        if training:
            out = self._detector_losses(features, class_logits, box_deltas)
            out["total_loss"] = self._weighted_detector_loss(out)
            return {key: out[key] for key in LOSS_KEYS}
        image_info = tf.cast(features[F.IMAGE_INFO], tf.float32)
        det = self._detect(class_logits, box_deltas, F.scaled_hw(image_info))
        return self._box_outputs(det, image_info)
