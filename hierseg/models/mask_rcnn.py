"""Mask R-CNN (He et al. 2017): ResNet-FPN backbone, RPN, box head and class-specific mask head.

Call contract (feature keys from :mod:`hierseg.features`, batched; S = input size, A = anchors):

``model(features, training=True)`` needs IMAGE ``[B, S, S, 3]``, IMAGE_INFO ``[B, 4, 2]``, GT_BOXES
(input-normalized, see :mod:`hierseg.features`), GT_CLASSES, GT_VALID, GT_IS_CROWD, GT_MASKS ``[B, N, Sm, Sm]``
(cropped to the box), optionally GT_MASK_VALID ``[B, N]`` (False = box-only instance: a positive for
the RPN and Fast R-CNN losses, left out of the mask loss; absent = all True), RPN_SCORE_TARGETS ``[B, A]``, RPN_BOX_TARGETS ``[B, A, 4]`` (encoded with
``config.rpn.box_coding_weights``) and optionally WEIGHT ``[B]``; it returns a dict of float32 scalars
``total_loss, rpn_score_loss, rpn_box_loss, frcnn_class_loss, frcnn_box_loss, mask_loss`` (per-replica
means, each image weighted by WEIGHT; no weight decay). Static shapes throughout: it compiles with
``tf.function(jit_compile=True)``.

``model(features, training=False)`` needs only IMAGE and IMAGE_INFO and returns DET_BOXES ``[B, D, 4]``
original-normalized, DET_CLASSES int32 ``[B, D]`` (1..K, 0 padding), DET_SCORES ``[B, D]``,
DET_MASKS float32 ``[B, D, M, M]`` (probabilities of the detected class inside each box) and
NUM_DETECTIONS int32 ``[B]``.

``model.backbone`` is the ResNet (a ``keras.Model``) for initialisation from a pretrained checkpoint;
``model.loss_keys`` and ``model.output_kind = "masks"`` complete the factory contract
(:mod:`hierseg.models.factory`). Inside, every box is in input pixels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.models import losses
from hierseg.models.fpn import BACKBONE_MAX_LEVEL, FPN
from hierseg.models.postprocess import detect
from hierseg.models.resnet import ResNet
from hierseg.models.roi_heads import BoxHead, MaskHead, select_class_boxes, select_class_masks
from hierseg.models.rpn import RPNHead, generate_proposals
from hierseg.ops.anchors import anchors_per_location, generate_anchors, level_shapes
from hierseg.ops.roi_align import multilevel_roi_align
from hierseg.ops.target_sampling import box_targets, crop_mask_targets, mask_training_rois, sample_rois

LOSS_KEYS = ("total_loss", "rpn_score_loss", "rpn_box_loss", "frcnn_class_loss", "frcnn_box_loss", "mask_loss")


class MaskRCNN(keras.Model):
    """``MaskRCNN(config, num_classes, image_size)``; see the module docstring for the call contract."""

    loss_keys = LOSS_KEYS
    output_kind = "masks"

    def __init__(self, config: ModelConfig, num_classes: int, image_size: int, **kw):
        super().__init__(**kw)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.image_size = image_size
        anchor = config.anchor
        shapes = level_shapes(anchor, image_size)  # validates image_size
        k = anchors_per_location(anchor)
        self.level_sizes = [h * w * k for h, w in shapes.values()]
        self.anchors = generate_anchors(anchor, image_size).numpy()
        self.roi_levels = list(range(anchor.min_level, min(anchor.max_level, BACKBONE_MAX_LEVEL) + 1))
        sigmoid = config.classification == "sigmoid"

        self.backbone = ResNet(config.backbone, name="backbone")
        norm = config.backbone  # batch-norm settings of the optional FPN / head norms (Model Garden layout)
        self.fpn = FPN(config.fpn, anchor, norm=norm, name="fpn")
        rpn_norm = norm if config.rpn.use_norm else None
        num_levels = anchor.max_level - anchor.min_level + 1
        self.rpn_head = RPNHead(k, config.fpn.num_filters, config.rpn.num_convs, rpn_norm, num_levels, name="rpn_head")
        self.box_head = BoxHead(config.box_head, num_classes, sigmoid=sigmoid, norm=norm, name="box_head")
        self.mask_head = MaskHead(config.mask_head, num_classes, norm=norm, name="mask_head")

    # -- shared trunk ---------------------------------------------------------------------------
    def _pyramid_and_proposals(self, images, image_hw, training: bool):
        pyramid = self.fpn(self.backbone(images, training=training), training=training)
        scores, deltas = self.rpn_head(pyramid, training=training)
        rpn = self.config.rpn
        proposals, _, valid = generate_proposals(
            scores,
            deltas,
            tf.constant(self.anchors),
            self.level_sizes,
            image_hw,
            rpn.pre_nms_topk_train if training else rpn.pre_nms_topk_test,
            rpn.post_nms_topk_train if training else rpn.post_nms_topk_test,
            rpn.nms_iou,
            rpn.min_size,
            rpn.box_coding_weights,
        )
        roi_features = {lv: pyramid[lv] for lv in self.roi_levels}
        return roi_features, scores, deltas, proposals, valid

    def _roi_align(self, features, rois, head_config):
        return multilevel_roi_align(
            features, rois, head_config.roi_size, head_config.sampling_ratio, aligned=self.config.roi_align_aligned
        )

    def call(self, features, training=False):
        images = features[F.IMAGE]
        image_info = tf.cast(features[F.IMAGE_INFO], tf.float32)
        image_hw = F.scaled_hw(image_info)  # content size: proposals and detections are clipped to it
        roi_features, rpn_scores, rpn_deltas, proposals, proposal_valid = self._pyramid_and_proposals(
            images, image_hw, bool(training)
        )
        if training:
            return self._training_losses(
                features, image_info, roi_features, rpn_scores, rpn_deltas, proposals, proposal_valid
            )
        return self._inference_outputs(image_info, image_hw, roi_features, proposals, proposal_valid)

    # -- training -------------------------------------------------------------------------------
    def _training_losses(self, features, image_info, roi_features, rpn_scores, rpn_deltas, proposals, proposal_valid):
        cfg = self.config
        batch = tf.shape(image_info)[0]
        weights = features.get(F.WEIGHT)
        weights = tf.ones([batch], tf.float32) if weights is None else tf.cast(weights, tf.float32)
        gt_boxes = F.boxes_to_input_pixels(features[F.GT_BOXES], image_info)
        gt_valid = tf.cast(features[F.GT_VALID], tf.bool)
        gt_crowd = tf.cast(features[F.GT_IS_CROWD], tf.bool)
        gt_classes = tf.cast(features[F.GT_CLASSES], tf.int32)

        rpn_targets = tf.cast(features[F.RPN_SCORE_TARGETS], tf.int32)
        out = {
            "rpn_score_loss": losses.rpn_score_loss(rpn_scores, rpn_targets, weights),
            "rpn_box_loss": losses.rpn_box_loss(
                rpn_deltas, features[F.RPN_BOX_TARGETS], rpn_targets, weights, cfg.rpn.smooth_l1_beta
            ),
        }

        # Fast R-CNN: sample ROIs among the proposals (+ gt boxes), classify and refine them.
        sampled = sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, gt_crowd, cfg.roi_sampling)
        class_logits, class_deltas = self.box_head(
            self._roi_align(roi_features, sampled["rois"], cfg.box_head), training=True
        )
        targets = box_targets(sampled["matched_boxes"], sampled["rois"], sampled["is_fg"], cfg.box_coding_weights)
        out["frcnn_class_loss"] = losses.fast_rcnn_class_loss(
            class_logits,
            sampled["classes"],
            sampled["sample_weights"],
            weights,
            cfg.classification,
            cfg.sigmoid_loss,
            cfg.focal_alpha,
            cfg.focal_gamma,
        )
        out["frcnn_box_loss"] = losses.fast_rcnn_box_loss(
            select_class_boxes(class_deltas, sampled["classes"]),
            targets,
            sampled["classes"],
            sampled["sample_weights"],
            weights,
            cfg.box_head.smooth_l1_beta,
        )

        picked = mask_training_rois(sampled, cfg.roi_sampling, cfg.mask_head.max_rois)
        mask_rois, mask_classes, mask_fg = picked["rois"], picked["classes"], picked["is_fg"]
        if F.GT_MASK_VALID in features:  # box-only instances teach boxes, never masks
            gt_mask_valid = tf.cast(features[F.GT_MASK_VALID], tf.bool)
            mask_fg &= tf.gather(gt_mask_valid, picked["matched_index"], batch_dims=1)
        mask_logits = self.mask_head(self._roi_align(roi_features, mask_rois, cfg.mask_head), training=True)
        mask_targets = crop_mask_targets(
            features[F.GT_MASKS], gt_boxes, picked["matched_index"], mask_rois, cfg.mask_head.mask_size
        )
        out["mask_loss"] = losses.mask_loss(
            select_class_masks(mask_logits, mask_classes), mask_targets, mask_fg, weights
        )
        out["total_loss"] = (
            cfg.rpn.score_loss_weight * out["rpn_score_loss"]
            + cfg.rpn.box_loss_weight * out["rpn_box_loss"]
            + cfg.box_head.class_loss_weight * out["frcnn_class_loss"]
            + cfg.box_head.box_loss_weight * out["frcnn_box_loss"]
            + cfg.mask_head.loss_weight * out["mask_loss"]
        )
        return {key: out[key] for key in LOSS_KEYS}

    # -- inference ------------------------------------------------------------------------------
    def _inference_outputs(self, image_info, image_hw, roi_features, proposals, proposal_valid):
        cfg = self.config
        class_logits, class_deltas = self.box_head(self._roi_align(roi_features, proposals, cfg.box_head))
        det = detect(
            class_logits,
            class_deltas,
            proposals,
            proposal_valid,
            image_hw,
            cfg.detection,
            cfg.classification,
            cfg.box_coding_weights,
        )
        mask_logits = self.mask_head(self._roi_align(roi_features, det["boxes"], cfg.mask_head))
        masks = tf.sigmoid(select_class_masks(mask_logits, det["classes"]))
        masks = tf.where(det["valid"][..., None, None], masks, 0.0)
        return {
            F.DET_BOXES: F.input_pixels_to_original(det["boxes"], image_info)
            * tf.cast(det["valid"][..., None], tf.float32),
            F.DET_CLASSES: det["classes"],
            F.DET_SCORES: det["scores"],
            F.DET_MASKS: masks,
            F.NUM_DETECTIONS: det["num_detections"],
        }
