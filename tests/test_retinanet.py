"""RetinaNet: focal and Huber losses against numpy, anchor targets, the dense detector's class-aware NMS, and
the model's call contract (the XLA-compiled train step is slow)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from xla_step import xla_train_step

from hierseg import features as F
from hierseg.config import ConfigError, merge
from hierseg.config.model import ModelConfig
from hierseg.config.retinanet import RetinaNetConfig
from hierseg.models.retinanet_losses import focal_class_loss, huber_box_loss, sigmoid_focal_loss
from hierseg.models.retinanet_targets import assign_anchor_targets

TINY_ANCHORS = {"min_level": 3, "max_level": 7, "num_scales": 3, "aspect_ratios": [1.0, 2.0, 0.5], "anchor_size": 4.0}


def tiny_model_config(num_classes: int = 3) -> ModelConfig:
    return merge(
        ModelConfig.tiny(num_classes),
        {
            "anchor": TINY_ANCHORS,
            "retinanet": {"head": {"num_convs": 2, "num_filters": 32}, "pre_nms_topk": 200, "max_detections": 20},
        },
    )


def focal_numpy(logits, targets, weights, alpha, gamma):
    """Per-anchor loop: sum over classes of alpha_t (1 - p_t)^gamma CE, per image / max(#pos, 1), weighted mean."""
    batch, anchors, classes = logits.shape
    total = 0.0
    for b in range(batch):
        loss = 0.0
        for a in range(anchors):
            if targets[b, a] < 0:
                continue
            for k in range(classes):
                z = 1.0 if targets[b, a] == k + 1 else 0.0
                p = 1.0 / (1.0 + np.exp(-float(logits[b, a, k])))
                p_t = p if z else 1.0 - p
                w = alpha if z else 1.0 - alpha
                loss += w * (1.0 - p_t) ** gamma * -np.log(max(p_t, 1e-300))
        total += weights[b] * loss / max(int(np.sum(targets[b] > 0)), 1)
    return total / batch


def huber_numpy(deltas, box_targets, targets, weights, delta):
    total = 0.0
    for b in range(deltas.shape[0]):
        loss = 0.0
        for a in range(deltas.shape[1]):
            if targets[b, a] > 0:
                for x in deltas[b, a] - box_targets[b, a]:
                    x = abs(float(x))
                    loss += 0.5 * x * x if x <= delta else delta * (x - 0.5 * delta)
        total += weights[b] * loss / (4.0 * max(int(np.sum(targets[b] > 0)), 1))
    return total / deltas.shape[0]


@pytest.mark.parametrize("alpha, gamma", [(0.25, 1.5), (0.4, 2.0), (0.5, 0.0)])
def test_focal_loss_matches_numpy(alpha, gamma):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, [3, 40, 5]).astype(np.float32)
    targets = rng.integers(-1, 6, [3, 40]).astype(np.int32)
    targets[2] = np.minimum(targets[2], 0)  # an image without positives: normalized by 1
    weights = np.array([1.0, 2.0, 0.5], np.float32)
    got = float(focal_class_loss(logits, targets, weights, alpha, gamma))
    assert got == pytest.approx(focal_numpy(logits, targets, weights, alpha, gamma), rel=1e-5)


def test_focal_modulator_is_stable_and_gamma_zero_is_weighted_bce():
    x = tf.constant([-80.0, -3.0, 0.0, 3.0, 80.0])
    for z in (0.0, 1.0):
        labels = tf.fill([5], z)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(sigmoid_focal_loss(x, labels, 0.25, 0.5))
        assert np.all(np.isfinite(tape.gradient(loss, x).numpy()))
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=x)
        w = 0.25 if z else 0.75
        np.testing.assert_allclose(sigmoid_focal_loss(x, labels, 0.25, 0.0).numpy(), w * bce.numpy(), rtol=1e-6)


def test_huber_box_loss_matches_numpy():
    rng = np.random.default_rng(1)
    deltas = rng.normal(0, 0.3, [2, 30, 4]).astype(np.float32)
    box_targets = rng.normal(0, 0.3, [2, 30, 4]).astype(np.float32)
    targets = rng.integers(-1, 3, [2, 30]).astype(np.int32)
    weights = np.array([1.0, 3.0], np.float32)
    got = float(huber_box_loss(deltas, box_targets, targets, weights, 0.1))
    assert got == pytest.approx(huber_numpy(deltas, box_targets, targets, weights, 0.1), rel=1e-5)


def test_anchor_targets_positive_negative_ignored_and_forced_match():
    config = RetinaNetConfig(match_iou=0.5, unmatched_iou=0.4)
    anchors = tf.constant(
        [
            [0, 0, 10, 10],
            [0, 0, 10, 8],
            [0, 0, 10, 5.5],
            [20, 20, 30, 30],
            [50, 50, 60, 60],
            [0, 0, 10, 2],
            [0, 0, 10, 4.5],
        ],
        tf.float32,
    )
    gt = tf.constant([[0, 0, 10, 10], [50, 50, 70, 70], [0, 0, 0, 0]], tf.float32)
    usable = tf.constant([True, True, False])
    classes, boxes = assign_anchor_targets(anchors, gt, tf.constant([2, 3, 1]), usable, config)
    # IoUs with gt 0: 1, 0.8, 0.55, 0, 0, 0.2, 0.45 (ignored); anchor 4 has IoU 0.25 with gt 1 but is its best anchor.
    np.testing.assert_array_equal(classes.numpy(), [2, 2, 2, 0, 3, 0, -1])
    assert np.all(boxes.numpy()[[3, 5, 6]] == 0) and np.allclose(boxes.numpy()[0], 0, atol=1e-6)
    classes, _ = assign_anchor_targets(anchors[2:3], gt, tf.constant([2, 3, 1]), usable, RetinaNetConfig(0.6, 0.5))
    assert classes.numpy().tolist() == [2]  # IoU 0.55 in [0.5, 0.6) but the best anchor of gt 0: forced
    classes, _ = assign_anchor_targets(anchors, gt, tf.constant([2, 3, 1]), tf.zeros([3], tf.bool), config)
    assert classes.numpy().tolist() == [0] * 7  # no usable gt: every anchor negative


def test_config_ranges_are_checked():
    with pytest.raises(ConfigError, match="unmatched_iou"):
        merge(ModelConfig(), {"retinanet": {"unmatched_iou": 0.7}})
    with pytest.raises(ConfigError, match="unknown config key 'retinanet.focal'"):
        merge(ModelConfig(), {"retinanet": {"focal": 0.7}})


def test_detector_keeps_overlapping_boxes_of_different_classes_only():
    from hierseg.models.retinanet import detect_dense

    anchors = tf.constant([[0, 0, 10, 10], [0, 0, 10, 9.5], [30, 30, 40, 40]], tf.float32)
    logits = np.full([1, 3, 2], -10.0, np.float32)
    logits[0, 0, 0], logits[0, 1, 0], logits[0, 1, 1], logits[0, 2, 1] = 4.0, 3.0, 2.0, 1.0
    cfg = RetinaNetConfig(pre_nms_topk=6, max_detections=5, nms_iou=0.5, score_threshold=0.05)
    det = detect_dense(tf.constant(logits), tf.zeros([1, 3, 4]), anchors, [3], tf.constant([[64.0, 64.0]]), cfg)
    assert int(det["num_detections"][0]) == 3  # anchor 1 / class 1 suppressed by anchor 0 / class 1
    np.testing.assert_array_equal(det["classes"].numpy()[0], [1, 2, 2, 0, 0])
    np.testing.assert_allclose(det["scores"].numpy()[0, :3], 1 / (1 + np.exp(-np.array([4.0, 2.0, 1.0]))), rtol=1e-6)
    np.testing.assert_allclose(det["boxes"].numpy()[0, 1], [0, 0, 10, 9.5])


@pytest.fixture(scope="module")
def tiny_batch():
    from test_shapemask import synthetic_batch

    return synthetic_batch(tiny_model_config())


def test_model_contract_inference_outputs(tiny_batch):
    from hierseg.models.retinanet import RetinaNet

    model = RetinaNet(tiny_model_config(), 3, 128)
    out = model({F.IMAGE: tiny_batch[F.IMAGE], F.IMAGE_INFO: tiny_batch[F.IMAGE_INFO]}, training=False)
    assert model.output_kind == "boxes" and "total_loss" in model.loss_keys and model.backbone is not None
    assert sorted(out) == sorted([F.DET_BOXES, F.DET_CLASSES, F.DET_SCORES, F.NUM_DETECTIONS])
    assert out[F.DET_BOXES].shape == (2, 20, 4) and out[F.DET_CLASSES].dtype == tf.int32


@pytest.mark.slow
def test_train_step_compiles_with_xla(tiny_batch):
    from hierseg.models.retinanet import RetinaNet

    model = RetinaNet(tiny_model_config(), 3, 128)
    model({F.IMAGE: tiny_batch[F.IMAGE], F.IMAGE_INFO: tiny_batch[F.IMAGE_INFO]}, training=False)
    eager = model(tiny_batch, training=True)
    losses, grads = xla_train_step(model, tiny_batch)
    assert sorted(losses) == sorted(model.loss_keys)
    assert float(losses["retinanet_box_loss"]) > 0 and all(g is not None for g in grads)
    # Training-mode batch norm makes eager and compiled runs agree only up to float error.
    assert float(losses["total_loss"]) == pytest.approx(float(eager["total_loss"]), rel=1e-3)


def test_box_only_outputs_become_detections_with_filled_box_masks():
    from pycocotools import mask as coco_mask

    from hierseg.evaluation.model_outputs import image_detections
    from hierseg.label_map import LabelMap

    outputs = {
        F.DET_BOXES: np.array([[[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0], [0, 0, 0, 0]]], np.float32),
        F.DET_CLASSES: np.array([[2, 1, 0]], np.int32),
        F.DET_SCORES: np.array([[0.9, 0.8, 0.0]], np.float32),
        F.NUM_DETECTIONS: np.array([2], np.int32),
    }
    det = image_detections(outputs, 0, "0000000000000001", 8, 12, LabelMap.from_classes(["/m/a", "/m/b"], ["A", "B"]))
    assert det.classes == ["/m/b", "/m/a"]
    masks = coco_mask.decode(det.rles)  # [H, W, N]
    np.testing.assert_array_equal(masks[:, :, 0], np.pad(np.ones([4, 3]), [[0, 4], [0, 9]]))
    np.testing.assert_array_equal(masks[:, :, 1], np.pad(np.ones([4, 6]), [[4, 0], [6, 0]]))
