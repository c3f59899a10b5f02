"""The ShapeMask mask heads (Kuo et al. 2019, figs. 4-6), as the seed's TPU implementation.

All work on instances ``[B, R, ...]`` (R = sampled masks at training, detections at inference) and boxes
in input pixels; mask tensors are box-relative squares.

* :class:`ShapePriorHead`: instance features = ROIAlign of P3-P5 on the **outer** boxes (C x C) and a
  1x1 projection to ``num_downsample_channels``; their mean inside the box (features x the box's
  uniform mask in the outer frame) gives softmax weights over the class's K priors; the weighted prior
  (box frame) resampled into the outer frame is the **detection prior** ``[B, R, C, C]``.
* :class:`CoarseMaskHead`: features + 1x1 projection of the detection prior -> ``num_convs`` x (3x3 conv,
  BN, ReLU) -> per-class 1x1 logits; the instance's class is picked -> ``[B, R, C, C]``.
* :class:`FineMaskHead`: features minus the mean feature inside the coarse mask (instance embedding),
  plus a projection of the coarse probabilities -> decoder, a stride-``upsample_factor`` deconv -> per-class
  logits ``[B, R, C*u, C*u]``.

Class ids are 1..K (0 = padding, which reads class 1's weights; its outputs are masked by the caller).
Outputs are float32.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from hierseg.config.model import BackboneConfig
from hierseg.config.shapemask import ShapeMaskConfig
from hierseg.models.resnet import track_for_checkpoint
from hierseg.ops.mask_resample import resample_box_masks
from hierseg.ops.roi_align import multilevel_roi_align

_FOREGROUND_PRIOR = -math.log((1 - 0.01) / 0.01)  # mask logits start at p = 0.01, as the seed


def _normal(stddev: float = 0.01):  # a fresh instance per layer: a Keras 3 initializer repeats its values
    return keras.initializers.RandomNormal(stddev=stddev)


def pick_class(per_class: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """``[B, R, ...]`` slice ``classes - 1`` of ``per_class [B, R, ..., Kc]`` (Kc == 1: the only slice)."""
    if per_class.shape[-1] == 1:
        return per_class[..., 0]
    index = tf.maximum(tf.cast(classes, tf.int32) - 1, 0)
    moved = tf.experimental.numpy.moveaxis(per_class, -1, 2)  # [B, R, Kc, ...]
    return tf.gather(moved, index[..., None], batch_dims=2)[:, :, 0]


class ShapePriorHead(keras.layers.Layer):
    """``head(pyramid, boxes, outer_boxes, classes) -> (instance_features [B, R, C, C, D], detection_prior [B, R, C, C])``.

    ``priors``: float32 ``[Kc, K, C, C]`` (Kc = num_classes, or 1 without ``use_category_for_mask``), kept
    as a non-trainable weight so checkpoints and exports carry them.
    """

    def __init__(self, config: ShapeMaskConfig, priors: np.ndarray, **kw):
        super().__init__(**kw)
        self.config = config
        self.num_mask_classes, self.num_clusters = int(priors.shape[0]), int(priors.shape[1])
        self.levels = list(range(config.mask_min_level, config.mask_max_level + 1))
        self.priors = self.add_weight(
            name="shape_priors",
            shape=priors.shape,
            initializer=keras.initializers.Constant(np.asarray(priors, np.float32)),
            trainable=False,
            dtype="float32",
        )
        self.project = keras.layers.Dense(config.num_downsample_channels, name="project")
        self.prior_logits = keras.layers.Dense(
            self.num_mask_classes * self.num_clusters, kernel_initializer=_normal(), name="prior_logits"
        )

    def call(self, pyramid: dict, boxes, outer_boxes, classes):
        crop = self.config.mask_crop_size
        features = {level: pyramid[level] for level in self.levels}
        crops = multilevel_roi_align(features, outer_boxes, crop, self.config.sampling_ratio)
        instance = self.project(crops)  # [B, R, C, C, D]
        batch, num = tf.shape(boxes)[0], boxes.shape[1]
        box_in_outer = resample_box_masks(tf.ones([batch, num, crop, crop]), boxes, outer_boxes, crop)
        pooled = tf.reduce_mean(instance * tf.cast(box_in_outer[..., None], instance.dtype), axis=[2, 3])
        logits = tf.cast(self.prior_logits(pooled), tf.float32)
        logits = tf.reshape(logits, [batch, num, self.num_clusters, self.num_mask_classes])
        weights = tf.nn.softmax(pick_class(logits, classes), axis=-1)  # [B, R, K]
        class_index = tf.maximum(tf.cast(classes, tf.int32) - 1, 0) * int(self.num_mask_classes > 1)
        class_priors = tf.gather(tf.convert_to_tensor(self.priors), class_index)  # [B, R, K, C, C]
        box_prior = tf.einsum("brk,brkhw->brhw", weights, class_priors)
        return instance, resample_box_masks(box_prior, boxes, outer_boxes, crop)


class _MaskDecoder(keras.layers.Layer):
    """``num_convs`` x (3x3 conv, BN, ReLU), an optional stride-u deconv, a 1x1 conv to Kc logits."""

    def __init__(self, config: ShapeMaskConfig, backbone: BackboneConfig, num_outputs: int, upsample: int, **kw):
        super().__init__(**kw)
        channels = config.num_downsample_channels
        self.convs = [
            keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=_normal(), name=f"conv{i}")
            for i in range(config.num_convs)
        ]
        self.norms = [
            keras.layers.BatchNormalization(
                momentum=backbone.norm_momentum,
                epsilon=backbone.norm_epsilon,
                synchronized=backbone.norm == "sync",
                name=f"bn{i}",
            )
            for i in range(config.num_convs)
        ]
        track_for_checkpoint(self, "conv", self.convs)
        track_for_checkpoint(self, "bn", self.norms)
        self.upsample = (
            keras.layers.Conv2DTranspose(channels, upsample, strides=upsample, name="deconv") if upsample > 1 else None
        )
        self.predict = keras.layers.Conv2D(
            num_outputs,
            1,
            kernel_initializer=_normal(),
            bias_initializer=keras.initializers.Constant(_FOREGROUND_PRIOR),
            name="mask_logits",
        )

    def call(self, x, training=None):
        shape = tf.shape(x)
        num = x.shape[1]
        x = tf.reshape(x, tf.concat([[shape[0] * num], shape[2:]], axis=0))
        for conv, norm in zip(self.convs, self.norms):
            x = keras.ops.relu(norm(conv(x), training=training))
        if self.upsample is not None:
            x = self.upsample(x)
        x = tf.cast(self.predict(x), tf.float32)
        return tf.reshape(x, [shape[0], num, *x.shape[1:]])


class CoarseMaskHead(keras.layers.Layer):
    """``head(instance_features, detection_prior, classes) -> coarse mask logits [B, R, C, C]``."""

    def __init__(self, config: ShapeMaskConfig, backbone: BackboneConfig, num_mask_classes: int, **kw):
        super().__init__(**kw)
        self.embed_prior = keras.layers.Dense(config.num_downsample_channels, name="embed_prior")
        self.decoder = _MaskDecoder(config, backbone, num_mask_classes, 1, name="decoder")

    def call(self, instance, detection_prior, classes, training=None):
        x = instance + self.embed_prior(tf.cast(detection_prior[..., None], instance.dtype))
        return pick_class(self.decoder(x, training=training), classes)


class FineMaskHead(keras.layers.Layer):
    """``head(instance_features, coarse_logits, classes) -> fine mask logits [B, R, C*u, C*u]``."""

    def __init__(self, config: ShapeMaskConfig, backbone: BackboneConfig, num_mask_classes: int, **kw):
        super().__init__(**kw)
        self.embed_mask = keras.layers.Dense(config.num_downsample_channels, name="embed_mask")
        self.decoder = _MaskDecoder(config, backbone, num_mask_classes, config.upsample_factor, name="decoder")

    def call(self, instance, coarse_logits, classes, training=None):
        probs = tf.sigmoid(coarse_logits)
        inside = tf.cast(probs > 0.5, instance.dtype)[..., None]  # [B, R, C, C, 1]
        # Instance embedding: the mean feature inside the coarse mask (hard average, as the seed).
        embedding = tf.reduce_sum(instance * inside, axis=[2, 3]) / (tf.reduce_sum(inside, axis=[2, 3]) + 1e-6)
        x = instance - embedding[:, :, None, None, :]
        x = x + self.embed_mask(tf.cast(probs[..., None], instance.dtype))
        return pick_class(self.decoder(x, training=training), classes)
