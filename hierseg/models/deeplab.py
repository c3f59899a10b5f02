"""DeepLab v3+ (Chen et al. 2018): atrous ResNet, ASPP with image pooling, stride-4 decoder.

Call contract (feature keys from :mod:`hierseg.features`, batched; S = input size, C = K + 1 classes
with 0 = background):

``model(features, training=True)`` needs IMAGE ``[B, S, S, 3]``, GT_SEMANTIC int32 ``[B, S, S]``
(class ids, ``features.SEMANTIC_IGNORE`` where unknown) and optionally WEIGHT ``[B]``; it returns float32 scalars
``total_loss`` and ``semantic_loss`` (per-replica mean of per-image losses weighted by WEIGHT; no
weight decay). The backbone runs at ``train_output_stride``.

``model(features, training=False)`` needs only IMAGE and returns SEMANTIC_LABELS int32 ``[B, S, S]``
(argmax class per input pixel) and SEMANTIC_SCORES float32 ``[B, S, S]`` (its softmax probability),
with the backbone at ``eval_output_stride``. Pixels of the zero padding get labels too: crop to
``image_info[1]`` before use.

Static shapes throughout; under ``mixed_bfloat16`` the convolutions run in bfloat16 and the logits,
softmax and loss in float32. ``model.backbone`` is the ResNet (pretrained starts).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hierseg import features as F
from hierseg.config.deeplab import DeepLabConfig
from hierseg.config.model import BackboneConfig
from hierseg.models.deeplab_loss import semantic_loss
from hierseg.models.resnet import ResNet, track_for_checkpoint

LOSS_KEYS = ("total_loss", "semantic_loss")
# What a DeepLab training step reads; the instance keys are dropped so they never reach the device.
TRAIN_KEYS = (F.IMAGE, F.IMAGE_INFO, F.GT_SEMANTIC, F.WEIGHT, F.NUM_DROPPED)


def semantic_train_targets(example: dict) -> dict:
    """The factory's per-example training-targets map: keeps :data:`TRAIN_KEYS` (GT_SEMANTIC required)."""
    if F.GT_SEMANTIC not in example:
        raise ValueError("model.type deeplab_v3plus needs GT_SEMANTIC: set data.semantic.enabled: true")
    return {k: v for k, v in example.items() if k in TRAIN_KEYS or k == F.TARGETS_SEED}


def resize_bilinear(x: tf.Tensor, size: tuple[int, int], align_corners: bool) -> tf.Tensor:
    """Bilinear resize of ``[B, h, w, C]`` to ``size``, in float32 for bfloat16 inputs.

    DeepLab's crops are ``k * output_stride + 1`` pixels (513) and its resizes align corners, so
    feature pixel ``i`` sits on input pixel ``i * stride``; even sizes use half-pixel centres.
    """
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    if align_corners:
        out = tf.compat.v1.image.resize_bilinear(x, size, align_corners=True)
    else:
        out = tf.image.resize(x, size, method="bilinear")
    return tf.cast(out, dtype)


def downsample_labels(labels: tf.Tensor, size: tuple[int, int], align_corners: bool) -> tf.Tensor:
    """Nearest-neighbour ``[B, S, S]`` int labels -> ``[B, h, w]`` on the logits' grid (``upsample_logits`` off).

    With aligned corners (odd S) logit pixel ``i`` sits on label pixel ``i * (S - 1) / (h - 1)``, exactly.
    """
    x = tf.cast(labels, tf.int32)[..., None]
    if align_corners:
        out = tf.compat.v1.image.resize_nearest_neighbor(x, size, align_corners=True)
    else:
        out = tf.image.resize(x, size, method="nearest")
    return out[..., 0]


class ConvBNReLU(keras.layers.Layer):
    """Conv (no bias) -> batch norm -> ReLU; ``kernel`` 1 or 3, optional dilation."""

    def __init__(self, filters: int, kernel: int, norm: dict, dilation: int = 1, **kw):
        super().__init__(**kw)
        self.conv = keras.layers.Conv2D(
            filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name="conv"
        )
        self.bn = keras.layers.BatchNormalization(name="bn", **norm)

    def build(self, input_shape):
        # Also built directly by ASPP (its atrous convs run through keras.ops.conv); building here keeps
        # the variable paths under this layer's name.
        self.conv.build(input_shape)
        self.bn.build((*input_shape[:-1], self.conv.filters))
        self.built = True

    def call(self, x, training=None):
        return keras.ops.relu(self.bn(self.conv(x), training=training))


class ASPP(keras.layers.Layer):
    """Atrous spatial pyramid pooling: ``[B, h, w, Cin] -> [B, h, w, num_filters]``.

    Branches: a 1x1 conv, one 3x3 conv per rate, and (optionally) image pooling: the global mean,
    a 1x1 conv and a broadcast back to ``h x w``. Concatenated, projected by a 1x1 conv, dropout.
    The rates are given per call, so one set of weights serves output strides 16 and 8.
    """

    def __init__(self, config: DeepLabConfig, norm: dict, **kw):
        super().__init__(**kw)
        aspp = config.aspp
        self.config = config
        self.branch_1x1 = ConvBNReLU(aspp.num_filters, 1, norm, name="conv_1x1")
        self.atrous = [ConvBNReLU(aspp.num_filters, 3, norm, name=f"atrous_{i}") for i in range(len(aspp.rates))]
        track_for_checkpoint(self, "atrous", self.atrous)
        self.pool = ConvBNReLU(aspp.num_filters, 1, norm, name="image_pooling") if aspp.image_pooling else None
        self.project = ConvBNReLU(aspp.num_filters, 1, norm, name="project")
        self.dropout = keras.layers.Dropout(aspp.dropout)

    def build(self, input_shape):
        # The atrous convs run through keras.ops.conv (their rate depends on the stride): build them here.
        for layer in self.atrous:
            layer.build(input_shape)
        self.built = True

    def call(self, x, training=None, output_stride=16):
        rates = self.config.rates_at(output_stride)
        branches = [self.branch_1x1(x, training=training)]
        for layer, rate in zip(self.atrous, rates):
            kernel = keras.ops.cast(layer.conv.kernel, x.dtype)  # same weights, rate set per stride
            y = keras.ops.conv(x, kernel, strides=1, padding="same", dilation_rate=rate)
            branches.append(keras.ops.relu(layer.bn(y, training=training)))
        if self.pool is not None:
            pooled = self.pool(keras.ops.mean(x, axis=(1, 2), keepdims=True), training=training)
            branches.append(tf.broadcast_to(pooled, tf.concat([tf.shape(x)[:3], tf.shape(pooled)[3:]], 0)))
        y = self.project(keras.ops.concatenate(branches, axis=-1), training=training)
        return self.dropout(y, training=training)


class Decoder(keras.layers.Layer):
    """DeepLab v3+ decoder: ``(aspp [B, h, w, A], low [B, 4h', 4w', L]) -> logits [B, h', w', C]``.

    The low-level features are projected to ``low_level_filters`` channels, the ASPP output is
    upsampled bilinearly to their size, both are concatenated and refined by 3x3 convs; a 1x1 conv
    with bias gives the class logits. Disabled (DeepLab v3), the classifier runs on the ASPP output.
    """

    def __init__(self, config: DeepLabConfig, num_classes: int, norm: dict, align_corners: bool, **kw):
        super().__init__(**kw)
        dec = config.decoder
        self.enabled = dec.enabled
        self.align_corners = align_corners
        if dec.enabled:
            self.low_project = ConvBNReLU(dec.low_level_filters, 1, norm, name="low_level_project")
            self.convs = [ConvBNReLU(dec.num_filters, 3, norm, name=f"conv_{i}") for i in range(dec.num_convs)]
            track_for_checkpoint(self, "conv", self.convs)
        self.classifier = keras.layers.Conv2D(num_classes + 1, 1, name="classifier")

    def call(self, aspp, low, training=None):
        x = aspp
        if self.enabled:
            low = self.low_project(low, training=training)
            x = resize_bilinear(x, tuple(low.shape[1:3]), self.align_corners)
            x = keras.ops.concatenate([x, tf.cast(low, x.dtype)], axis=-1)
            for conv in self.convs:
                x = conv(x, training=training)
        return self.classifier(x)


class DeepLabV3Plus(keras.Model):
    """``DeepLabV3Plus(backbone_config, config, num_classes, image_size)``; see the module docstring."""

    loss_keys = LOSS_KEYS
    output_kind = "semantic"

    def __init__(self, backbone: BackboneConfig, config: DeepLabConfig, num_classes: int, image_size: int, **kw):
        super().__init__(**kw)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        config.validate(num_classes)
        self.config = config
        self.num_classes = num_classes
        self.image_size = image_size
        # Random-init heads always learn their batch statistics, even over a frozen backbone.
        norm = {
            "momentum": config.head_norm_momentum,
            "epsilon": config.head_norm_epsilon,
            "synchronized": backbone.norm == "sync",
        }
        align = image_size % 2 == 1
        self.align_corners = align
        self.backbone = ResNet(backbone, name="backbone")
        self.aspp = ASPP(config, norm, name="aspp")
        self.decoder = Decoder(config, num_classes, norm, align, name="decoder")

    def logits(self, images: tf.Tensor, training: bool, upsample: bool = True) -> tf.Tensor:
        """float32 ``[B, S, S, C]`` logits at input resolution (stride-4 logits upsampled bilinearly), or
        the stride-4 logits ``[B, S', S', C]`` themselves with ``upsample=False``."""
        cfg = self.config
        stride = cfg.train_output_stride if training else cfg.eval_output_stride
        feats = self.backbone(images, training=training, output_stride=stride, multi_grid=tuple(cfg.multi_grid))
        x = self.aspp(feats[5], training=training, output_stride=stride)
        x = tf.cast(self.decoder(x, feats[cfg.decoder.low_level_level], training=training), tf.float32)
        if not upsample:
            return x
        return resize_bilinear(x, (images.shape[1], images.shape[2]), self.align_corners)

    def call(self, features, training=False):
        images = features[F.IMAGE]
        cfg = self.config
        logits = self.logits(images, bool(training), upsample=cfg.upsample_logits or not training)
        if training:
            batch = tf.shape(images)[0]
            weights = features.get(F.WEIGHT)
            weights = tf.ones([batch], tf.float32) if weights is None else tf.cast(weights, tf.float32)
            labels = features[F.GT_SEMANTIC]
            if not cfg.upsample_logits:
                labels = downsample_labels(labels, tuple(logits.shape[1:3]), self.align_corners)
            loss = semantic_loss(logits, labels, F.SEMANTIC_IGNORE, cfg.class_weights or None, weights)
            return {"total_loss": cfg.loss_weight * loss, "semantic_loss": loss}
        probs = tf.nn.softmax(logits, axis=-1)
        return {
            F.SEMANTIC_LABELS: tf.argmax(logits, axis=-1, output_type=tf.int32),
            F.SEMANTIC_SCORES: tf.reduce_max(probs, axis=-1),
        }
