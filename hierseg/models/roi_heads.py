"""The per-ROI heads of Mask R-CNN: the Fast R-CNN box head and the class-specific FCN mask head.

Both take ROIAligned features ``[B, R, s, s, C]`` and run on ``B * R`` ROIs at once. Outputs are
float32 (cast after the last layer so a bfloat16 policy only affects the trunk).

* :class:`BoxHead`: ``num_convs`` 3x3 convs, ``num_fcs`` fcs -> class logits ``[B, R, K + 1]``
  (softmax; column 0 = background) or ``[B, R, K]`` (sigmoid), and class-specific deltas ``[B, R, K, 4]``.
* :class:`MaskHead`: ``num_convs`` 3x3 convs, a 2x2 stride-2 deconv, a 1x1 conv -> logits
  ``[B, R, M, M, K]`` (one mask per class; the loss and inference pick the ROI's class).

With ``config.use_norm`` (Model Garden's heads) every conv / fc / deconv is followed by a batch norm
(the ``norm`` settings, the backbone's) before its ReLU.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from hierseg.config.model import BackboneConfig, BoxHeadConfig, MaskHeadConfig
from hierseg.models.resnet import norm_layer, track_for_checkpoint


# Initializers are made per layer: a Keras 3 initializer instance repeats the same values on every call.
def _he():
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")  # detectron2 c2_msra_fill


def _xavier():
    return keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")  # detectron2 c2_xavier_fill


def _dim(x: tf.Tensor, axis: int):
    """Static size of an axis when known (keeps ROI counts static under an unknown batch), else dynamic."""
    return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def _merge_rois(x: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))


def _norms(use_norm: bool, norm: BackboneConfig | None, what: str, count: int) -> list:
    if not use_norm:
        return []
    if norm is None:
        raise ValueError("a head with use_norm needs the batch-norm settings (norm=model.backbone)")
    return [norm_layer(norm, f"{what}{i + 1}_norm") for i in range(count)]


def _norm_relu(x: tf.Tensor, norms: list, index: int, training) -> tf.Tensor:
    """With norms: ReLU(norms[index](x)); without: x (the layer applied its own ReLU)."""
    return keras.ops.relu(norms[index](x, training=training)) if norms else x


def _split_rois(x: tf.Tensor, batch, num_rois) -> tf.Tensor:
    return tf.reshape(x, [batch, num_rois, *x.shape[1:]])


class BoxHead(keras.layers.Layer):
    """``BoxHead(config, K, sigmoid)(roi_features [B, R, s, s, C]) -> (class_logits, box_deltas)``."""

    def __init__(
        self,
        config: BoxHeadConfig,
        num_classes: int,
        sigmoid: bool = False,
        norm: BackboneConfig | None = None,
        **kw,
    ):
        super().__init__(**kw)
        self.num_classes = num_classes
        act = None if config.use_norm else "relu"
        self.convs = [
            keras.layers.Conv2D(config.conv_dims, 3, padding="same", activation=act, kernel_initializer=_he())
            for _ in range(config.num_convs)
        ]
        self.flatten = keras.layers.Flatten()
        self.fcs = [
            keras.layers.Dense(config.fc_dims, activation=act, kernel_initializer=_xavier(), name=f"fc{i + 1}")
            for i in range(config.num_fcs)
        ]
        track_for_checkpoint(self, "conv", self.convs)
        track_for_checkpoint(self, "fc", self.fcs)
        self.conv_norms, self.fc_norms = _norms(config.use_norm, norm, "conv", config.num_convs), []
        if config.use_norm:
            self.fc_norms = [norm_layer(norm, f"fc{i + 1}_norm") for i in range(config.num_fcs)]
        track_for_checkpoint(self, "conv_norm", self.conv_norms)
        track_for_checkpoint(self, "fc_norm", self.fc_norms)
        # Sigmoid heads start every class at a 1% prior (focal-loss paper) so the many negatives do not
        # swamp the first steps; softmax heads start uniform.
        prior = -math.log((1 - 0.01) / 0.01) if sigmoid else 0.0
        self.class_logits = keras.layers.Dense(
            num_classes if sigmoid else num_classes + 1,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            bias_initializer=keras.initializers.Constant(prior),
            name="class_logits",
        )
        self.box_deltas = keras.layers.Dense(
            num_classes * 4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name="box_deltas"
        )

    def call(self, roi_features, training=None):
        batch, num_rois = tf.shape(roi_features)[0], _dim(roi_features, 1)
        x = _merge_rois(roi_features)
        for i, conv in enumerate(self.convs):
            x = _norm_relu(conv(x), self.conv_norms, i, training)
        x = self.flatten(x)
        for i, fc in enumerate(self.fcs):
            x = _norm_relu(fc(x), self.fc_norms, i, training)
        logits = tf.cast(self.class_logits(x), tf.float32)
        deltas = tf.cast(self.box_deltas(x), tf.float32)
        logits = tf.reshape(logits, [batch, num_rois, logits.shape[-1]])
        deltas = tf.reshape(deltas, [batch, num_rois, self.num_classes, 4])
        return logits, deltas


class MaskHead(keras.layers.Layer):
    """``MaskHead(config, K)(roi_features [B, R, s, s, C]) -> mask logits [B, R, 2s, 2s, K]`` float32."""

    def __init__(self, config: MaskHeadConfig, num_classes: int, norm: BackboneConfig | None = None, **kw):
        super().__init__(**kw)
        if config.mask_size != 2 * config.roi_size:
            raise ValueError(f"mask_head.mask_size ({config.mask_size}) must be 2 * roi_size ({config.roi_size})")
        act = None if config.use_norm else "relu"
        self.convs = [
            keras.layers.Conv2D(
                config.num_filters, 3, padding="same", activation=act, kernel_initializer=_he(), name=f"conv{i + 1}"
            )
            for i in range(config.num_convs)
        ]
        track_for_checkpoint(self, "conv", self.convs)
        self.deconv = keras.layers.Conv2DTranspose(
            config.num_filters, 2, strides=2, activation=act, kernel_initializer=_he(), name="deconv"
        )
        # conv norms, then the deconv's norm last
        self.norms = _norms(config.use_norm, norm, "conv", config.num_convs + 1)
        track_for_checkpoint(self, "norm", self.norms)
        self.predictor = keras.layers.Conv2D(
            num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name="mask_logits"
        )

    def call(self, roi_features, training=None):
        batch, num_rois = tf.shape(roi_features)[0], _dim(roi_features, 1)
        x = _merge_rois(roi_features)
        for i, conv in enumerate(self.convs):
            x = _norm_relu(conv(x), self.norms, i, training)
        x = self.predictor(_norm_relu(self.deconv(x), self.norms, len(self.convs), training))
        return _split_rois(tf.cast(x, tf.float32), batch, num_rois)


def select_class_masks(mask_logits: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """``[B, R, M, M]`` channel ``classes - 1`` of ``mask_logits [B, R, M, M, K]`` (class 0 -> channel 0)."""
    channel = tf.maximum(tf.cast(classes, tf.int32) - 1, 0)
    moved = tf.transpose(mask_logits, [0, 1, 4, 2, 3])  # [B, R, K, M, M]
    return tf.gather(moved, channel[..., None], batch_dims=2)[:, :, 0]


def select_class_boxes(box_deltas: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """``[B, R, 4]`` deltas of class ``classes`` from ``box_deltas [B, R, K, 4]`` (class 0 -> row 0)."""
    row = tf.maximum(tf.cast(classes, tf.int32) - 1, 0)
    return tf.gather(box_deltas, row[..., None], batch_dims=2)[:, :, 0]
