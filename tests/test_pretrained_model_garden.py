"""The Model Garden reader on a Mask R-CNN checkpoint written by TF Model Garden's own code.

``tests/data/pretrained/model_garden_maskrcnn`` was written by ``tools/make_model_garden_fixture.py``
(tf-models-official 2.20, see its docstring): a shrunk ``maskrcnn_resnetfpn_coco`` with random
variables, and MG's outputs on fixed inputs. hierseg, built with Model Garden's architecture choices
(``source_architecture("model_garden")``) and loaded with the reader, must reproduce backbone, FPN,
raw RPN outputs, ROIAlign features and both heads' logits to 1e-4 (relative to the tensor's scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import (
    AnchorConfig,
    BackboneConfig,
    BoxHeadConfig,
    FPNConfig,
    MaskHeadConfig,
    ModelConfig,
    RPNConfig,
)
from hierseg.models.mask_rcnn import MaskRCNN
from hierseg.models.roi_heads import select_class_masks
from hierseg.training.checkpoint_readers import initialize
from hierseg.training.checkpoint_readers.init import apply_source_architecture

FIXTURE = Path(__file__).parent / "data" / "pretrained" / "model_garden_maskrcnn"
CKPT = str(FIXTURE / "ckpt-1")
SIZE = 128
TOLERANCE = 1e-4


def mg_like_config(num_classes: int = 3) -> ModelConfig:
    """The fixture's shrunk architecture in hierseg terms (widths and counts; MG's choices added below)."""
    config = ModelConfig(
        num_classes=num_classes,
        anchor=AnchorConfig(min_level=2, max_level=6),
        backbone=BackboneConfig(depth=50, width_multiplier=0.125, norm="frozen"),
        fpn=FPNConfig(num_filters=32),
        rpn=RPNConfig(num_convs=1, pre_nms_topk_test=100, post_nms_topk_test=50),
        box_head=BoxHeadConfig(conv_dims=32, fc_dims=64),
        mask_head=MaskHeadConfig(num_filters=16),
    )
    apply_source_architecture(config, "model_garden")
    return config


def build(config: ModelConfig) -> MaskRCNN:
    model = MaskRCNN(config, config.num_classes, SIZE)
    info = tf.constant([[[SIZE, SIZE], [SIZE, SIZE], [1.0, 1.0], [0.0, 0.0]]], tf.float32)
    model({F.IMAGE: tf.zeros([1, SIZE, SIZE, 3]), F.IMAGE_INFO: info}, training=False)
    return model


@pytest.fixture(scope="module")
def mg() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "outputs.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def loaded():
    model = build(mg_like_config())
    report = initialize(model, CKPT, "all")
    return model, report


def close(got, want, what: str) -> float:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))
    assert err <= TOLERANCE, f"{what}: max relative error {err}"
    return err


def test_whole_model_loads_every_module(loaded):
    model, report = loaded
    assert report.source == "model_garden"
    assert set(report.loaded) == {"backbone", "fpn", "rpn", "box_head", "mask_head"}
    assert not report.skipped and not report.left_random, report.table()
    assert report.num_loaded == len(model.variables)


def test_backbone_fpn_and_rpn_match_model_garden(loaded, mg):
    model, _ = loaded
    c = model.backbone(tf.constant(mg["images"]), training=False)
    for lv in (2, 3, 4, 5):
        close(c[lv], mg[f"backbone_{lv}"], f"backbone C{lv}")
    p = model.fpn(c, training=False)
    for lv in (2, 3, 4, 5, 6):
        close(p[lv], mg[f"fpn_{lv}"], f"FPN P{lv}")
    scores, deltas = model.rpn_head(p, training=False)
    batch = mg["images"].shape[0]
    want_scores = np.concatenate([mg[f"rpn_scores_{lv}"].reshape(batch, -1) for lv in range(2, 7)], axis=1)
    want_deltas = np.concatenate([mg[f"rpn_boxes_{lv}"].reshape(batch, -1, 4) for lv in range(2, 7)], axis=1)
    close(scores, want_scores, "RPN scores")
    close(deltas, want_deltas, "RPN box deltas")


def test_roi_align_and_heads_match_model_garden(loaded, mg):
    model, _ = loaded
    cfg = model.config
    pyramid = {lv: tf.constant(mg[f"fpn_{lv}"]) for lv in model.roi_levels}
    rois = tf.constant(mg["rois"])
    box_feats = model._roi_align(pyramid, rois, cfg.box_head)
    mask_feats = model._roi_align(pyramid, rois, cfg.mask_head)
    close(box_feats, mg["box_roi_features"], "box ROIAlign")
    close(mask_feats, mg["mask_roi_features"], "mask ROIAlign")
    logits, deltas = model.box_head(box_feats, training=False)
    close(logits, mg["class_logits"], "class logits")
    b, r = deltas.shape[:2]
    close(tf.reshape(deltas, [b, r, -1]), mg["box_deltas"][..., 4:], "class box deltas (background dropped)")
    masks = select_class_masks(model.mask_head(mask_feats, training=False), tf.constant(mg["roi_classes"]))
    close(masks, mg["mask_logits"], "mask logits of the ROI's class")


def test_other_class_count_skips_only_class_layers(mg):
    """A 91-class COCO checkpoint into a K-class model: the class layers are skipped and listed."""
    model = build(mg_like_config(num_classes=5))
    report = initialize(model, CKPT, "all")
    skipped = sorted(ours for _, ours, _ in report.skipped)
    assert skipped == [
        "box_head/box_deltas/bias",
        "box_head/box_deltas/kernel",
        "box_head/class_logits/bias",
        "box_head/class_logits/kernel",
        "mask_head/mask_logits/bias",
        "mask_head/mask_logits/kernel",
    ]
    assert all("class-specific" in reason for *_, reason in report.skipped)
    assert sorted(report.left_random) == ["box_head", "mask_head"] and len(report.left_random["box_head"]) == 4
    c = model.backbone(tf.constant(mg["images"]), training=False)
    close(c[5], mg["backbone_5"], "backbone C5 of the 5-class model")
    assert "skipped" in report.table() and "class-specific" in report.table()


def test_partial_modules_leave_the_rest_random():
    model = build(mg_like_config())
    before = model.box_head.fcs[0].kernel.numpy().copy()
    report = initialize(model, CKPT, "backbone,fpn")
    assert set(report.loaded) == {"backbone", "fpn"}
    assert set(report.left_random) == {"rpn", "box_head", "mask_head"}
    np.testing.assert_array_equal(model.box_head.fcs[0].kernel.numpy(), before)


def test_architecture_mismatch_is_an_error_naming_the_variable():
    config = mg_like_config()
    config.fpn.use_norm = False  # Model Garden's FPN has a batch norm per level
    model = build(config)
    with pytest.raises(
        ValueError, match=r"ckpt-1: 20 variable\(s\) of module fpn have no counterpart.*decoder/layer_with_weights-\d+/"
    ):
        initialize(model, CKPT, "fpn")
    config = mg_like_config()
    config.box_head.fc_dims = 32
    model = build(config)
    with pytest.raises(ValueError, match=r"detection_head/_fcs/0/kernel.*shape \[1568, 64\].*box_head/fc1/kernel"):
        initialize(model, CKPT, "box_head")
    with pytest.raises(ValueError, match="unknown module 'heads'"):
        initialize(model, CKPT, "backbone,heads")
