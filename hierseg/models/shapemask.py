"""ShapeMask (Kuo et al., ICCV 2019): a RetinaNet detector plus shape-prior, coarse and fine mask heads.

Call contract (feature keys from :mod:`hierseg.features`, batched; S = sampled masks per image):

``model(features, training=True)`` needs what :class:`hierseg.models.retinanet.RetinaNet` needs plus
MASK_BOXES, MASK_OUTER_BOXES ``[B, S, 4]``, MASK_CLASSES ``[B, S]``, MASK_TARGETS ``[B, S, C, C]``,
FINE_MASK_TARGETS ``[B, S, F, F]`` and MASK_VALID ``[B, S]`` (:mod:`hierseg.models.shapemask_targets`);
it returns float32 scalars ``total_loss, retinanet_class_loss, retinanet_box_loss, shapemask_prior_loss,
shapemask_coarse_loss, shapemask_fine_loss``. Static shapes: it compiles with XLA.

``model(features, training=False)`` needs IMAGE and IMAGE_INFO and returns the RetinaNet detections plus
DET_MASKS float32 ``[B, D, F, F]``: the fine mask probabilities resampled from the outer box into each
detected box (the Mask R-CNN convention, so evaluation, export and predict paste them the same way).
F = ``mask_crop_size * upsample_factor``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.models.retinanet import RetinaNet
from hierseg.models.shapemask_heads import CoarseMaskHead, FineMaskHead, ShapePriorHead
from hierseg.models.shapemask_losses import mask_bce_loss, prior_mse_loss
from hierseg.models.shapemask_targets import outer_boxes
from hierseg.ops.mask_resample import resample_box_masks

LOSS_KEYS = (
    "total_loss",
    "retinanet_class_loss",
    "retinanet_box_loss",
    "shapemask_prior_loss",
    "shapemask_coarse_loss",
    "shapemask_fine_loss",
)


def initial_priors(config: ModelConfig, num_classes: int) -> np.ndarray:
    """float32 ``[Kc, K, C, C]``: the priors file of ``shapemask.shape_prior_path``, or one all-zero prior per
    class when the path is empty (the seed's fallback). The file must have ``num_classes`` rows (or 1)."""
    cfg = config.shapemask
    num_mask_classes = num_classes if cfg.use_category_for_mask else 1
    if not cfg.shape_prior_path:
        return np.zeros([num_mask_classes, 1, cfg.mask_crop_size, cfg.mask_crop_size], np.float32)
    from hierseg.priors import read_priors

    priors = read_priors(cfg.shape_prior_path)
    if priors.shape[2:] != (cfg.mask_crop_size, cfg.mask_crop_size):
        raise ValueError(
            f"{cfg.shape_prior_path}: priors of {priors.shape[2]}x{priors.shape[3]} but "
            f"model.shapemask.mask_crop_size is {cfg.mask_crop_size}"
        )
    if not cfg.use_category_for_mask:
        return priors.reshape(1, -1, *priors.shape[2:])  # every class's priors, one class-agnostic set
    if priors.shape[0] != num_classes:
        raise ValueError(f"{cfg.shape_prior_path}: priors for {priors.shape[0]} classes, the model has {num_classes}")
    return priors


class ShapeMask(RetinaNet):
    """``ShapeMask(config, num_classes, image_size)``; see the module docstring for the call contract."""

    output_kind = "masks"
    loss_keys = LOSS_KEYS

    def __init__(self, config: ModelConfig, num_classes: int, image_size: int, **kw):
        super().__init__(config, num_classes, image_size, **kw)
        cfg = config.shapemask
        if not config.anchor.min_level <= cfg.mask_min_level <= cfg.mask_max_level <= config.anchor.max_level:
            raise ValueError(
                f"model.shapemask mask levels {cfg.mask_min_level}..{cfg.mask_max_level} must lie within the "
                f"pyramid {config.anchor.min_level}..{config.anchor.max_level}"
            )
        priors = initial_priors(config, num_classes)
        self.prior_head = ShapePriorHead(cfg, priors, name="prior_head")
        self.coarse_head = CoarseMaskHead(cfg, config.backbone, priors.shape[0], name="coarse_head")
        self.fine_head = FineMaskHead(cfg, config.backbone, priors.shape[0], name="fine_head")

    def _masks(self, pyramid, boxes, outer, classes, training: bool):
        instance, prior = self.prior_head(pyramid, boxes, outer, classes)
        coarse = self.coarse_head(instance, prior, classes, training=training)
        fine = self.fine_head(instance, coarse, classes, training=training)
        return prior, coarse, fine

    def call(self, features, training=False):
        pyramid, class_logits, box_deltas = self._dense(features[F.IMAGE], bool(training))
        cfg = self.config.shapemask
        if training:
            out = self._detector_losses(features, class_logits, box_deltas)
            classes = tf.cast(features[F.MASK_CLASSES], tf.int32)
            prior, coarse, fine = self._masks(
                pyramid,
                tf.cast(features[F.MASK_BOXES], tf.float32),
                tf.cast(features[F.MASK_OUTER_BOXES], tf.float32),
                classes,
                True,
            )
            valid = tf.cast(features[F.MASK_VALID], tf.bool)
            weights = features.get(F.WEIGHT)
            weights = tf.ones(tf.shape(classes)[:1]) if weights is None else tf.cast(weights, tf.float32)
            out["shapemask_prior_loss"] = prior_mse_loss(prior, features[F.MASK_TARGETS], valid, weights)
            out["shapemask_coarse_loss"] = mask_bce_loss(coarse, features[F.MASK_TARGETS], valid, weights)
            out["shapemask_fine_loss"] = mask_bce_loss(fine, features[F.FINE_MASK_TARGETS], valid, weights)
            out["total_loss"] = (
                self._weighted_detector_loss(out)
                + cfg.prior_loss_weight * out["shapemask_prior_loss"]
                + cfg.coarse_loss_weight * out["shapemask_coarse_loss"]
                + cfg.fine_loss_weight * out["shapemask_fine_loss"]
            )
            return {key: out[key] for key in LOSS_KEYS}
        image_info = tf.cast(features[F.IMAGE_INFO], tf.float32)
        image_hw = F.scaled_hw(image_info)
        det = self._detect(class_logits, box_deltas, image_hw)
        outer = outer_boxes(det["boxes"], cfg.outer_box_scale, image_hw)
        _, _, fine = self._masks(pyramid, det["boxes"], outer, det["classes"], False)
        size = cfg.mask_crop_size * cfg.upsample_factor
        masks = resample_box_masks(tf.sigmoid(fine), outer, det["boxes"], size)
        out = self._box_outputs(det, image_info)
        out[F.DET_MASKS] = tf.where(det["valid"][..., None, None], masks, 0.0)
        return out
