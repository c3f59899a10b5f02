"""Mask R-CNN model: loss/inference shapes on the tiny config, XLA compilation, graph size vs classes, overfit."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.input.anchor_targets import assign_rpn_targets
from hierseg.input.transforms import crop_masks_to_boxes
from hierseg.models.mask_rcnn import LOSS_KEYS, MaskRCNN
from hierseg.ops.anchors import generate_anchors
from hierseg.ops.iou import pairwise_iou_numpy

IMAGE_SIZE = 128
COLORS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (50, 70, 230)}  # class -> RGB; 2 is an ellipse


def synthetic_scene(rng: np.random.Generator, size: int, max_instances: int):
    """One image [size, size, 3] uint8 with 2-3 coloured shapes, their boxes (normalized), classes, masks."""
    image = np.full((size, size, 3), 110, np.float32) + rng.normal(0, 8, (size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    boxes, classes, masks = [], [], []
    for _ in range(rng.integers(2, 4)):
        cls = int(rng.integers(1, 4))
        h, w = rng.uniform(0.18, 0.5, 2) * size
        y0, x0 = rng.uniform(0, size - h), rng.uniform(0, size - w)
        if cls == 2:
            cy, cx = y0 + h / 2, x0 + w / 2
            mask = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / (w / 2)) ** 2 <= 1.0
        else:
            mask = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        for m in masks:  # later shapes occlude earlier ones
            m &= ~mask
        image[mask] = COLORS[cls]
        masks.append(mask)
        boxes.append((y0 / size, x0 / size, (y0 + h) / size, (x0 + w) / size))
        classes.append(cls)
    n = len(boxes)
    pad = max_instances - n
    return (
        np.clip(image, 0, 255),
        np.pad(np.asarray(boxes, np.float32), [[0, pad], [0, 0]]),
        np.pad(np.asarray(classes, np.int32), [0, pad]),
        np.pad(np.stack(masks), [[0, pad], [0, 0], [0, 0]]),
        n,
    )


def synthetic_batch(seed: int, batch: int, config: ModelConfig, size: int = IMAGE_SIZE, max_instances: int = 4):
    """A training feature dict as the input pipeline makes it (same target code: hierseg.input)."""
    rng = np.random.default_rng(seed)
    anchors = generate_anchors(config.anchor, size)
    out: dict[str, list] = {k: [] for k in (F.IMAGE, F.IMAGE_INFO, F.GT_BOXES, F.GT_CLASSES, F.GT_VALID)}
    out.update({F.GT_IS_CROWD: [], F.GT_MASKS: [], F.RPN_SCORE_TARGETS: [], F.RPN_BOX_TARGETS: [], F.WEIGHT: []})
    for _ in range(batch):
        image, boxes, classes, masks, n = synthetic_scene(rng, size, max_instances)
        valid = np.arange(max_instances) < n
        out[F.IMAGE].append((image - np.asarray(F.IMAGE_MEAN)) / np.asarray(F.IMAGE_STD))
        out[F.IMAGE_INFO].append(np.asarray([[size, size], [size, size], [1, 1], [0, 0]], np.float32))
        out[F.GT_BOXES].append(boxes)
        out[F.GT_CLASSES].append(classes)
        out[F.GT_VALID].append(valid)
        out[F.GT_IS_CROWD].append(np.zeros(max_instances, bool))
        out[F.GT_MASKS].append(crop_masks_to_boxes(tf.constant(masks, tf.uint8), tf.constant(boxes), 28).numpy())
        scores, deltas = assign_rpn_targets(anchors, boxes * size, valid, config.rpn)
        out[F.RPN_SCORE_TARGETS].append(scores.numpy())
        out[F.RPN_BOX_TARGETS].append(deltas.numpy())
        out[F.WEIGHT].append(1.0)
    features = {k: tf.constant(np.stack(v)) for k, v in out.items()}
    features[F.IMAGE] = tf.cast(features[F.IMAGE], tf.float32)
    features[F.GT_MASKS] = tf.cast(features[F.GT_MASKS], tf.float32)
    features[F.WEIGHT] = tf.cast(features[F.WEIGHT], tf.float32)
    return features


def tiny_model(num_classes: int = 3, **overrides) -> tuple[MaskRCNN, ModelConfig]:
    config = ModelConfig.tiny(num_classes)
    for k, v in overrides.items():
        setattr(config, k, v)
    return MaskRCNN(config, num_classes, IMAGE_SIZE), config


def test_training_losses_are_finite_scalars():
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    losses = model(synthetic_batch(0, 2, config), training=True)
    assert sorted(losses) == sorted(LOSS_KEYS)
    for key, value in losses.items():
        assert value.shape == () and value.dtype == tf.float32, key
        assert np.isfinite(value.numpy()) and value.numpy() >= 0.0, key
    parts = sum(float(losses[k]) for k in LOSS_KEYS if k != "total_loss")
    assert float(losses["total_loss"]) == pytest.approx(parts, rel=1e-5)
    # At initialisation the heads are near-uniform: softmax over K + 1 = 4 classes, masks at p = 0.5.
    assert float(losses["frcnn_class_loss"]) == pytest.approx(np.log(4.0), abs=0.3)
    assert float(losses["mask_loss"]) == pytest.approx(np.log(2.0), abs=0.05)


def test_example_weights_scale_losses():
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(1, 2, config)
    base = model(batch, training=True)
    batch[F.WEIGHT] = tf.constant([0.0, 0.0])
    zero = model(batch, training=True)
    assert all(float(zero[k]) == 0.0 for k in LOSS_KEYS)
    assert float(base["total_loss"]) > 0.0


def test_inference_outputs():
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(2, 2, config)
    inputs = {F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: batch[F.IMAGE_INFO]}
    out = model(inputs, training=False)
    d, m = config.detection.max_detections, config.mask_head.mask_size
    assert out[F.DET_BOXES].shape == (2, d, 4)
    assert out[F.DET_CLASSES].shape == (2, d) and out[F.DET_CLASSES].dtype == tf.int32
    assert out[F.DET_SCORES].shape == (2, d)
    assert out[F.DET_MASKS].shape == (2, d, m, m) and out[F.DET_MASKS].dtype == tf.float32
    assert out[F.NUM_DETECTIONS].shape == (2,) and out[F.NUM_DETECTIONS].dtype == tf.int32
    boxes = out[F.DET_BOXES].numpy()
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    for b in range(2):
        n = int(out[F.NUM_DETECTIONS][b])
        classes = out[F.DET_CLASSES][b].numpy()
        assert (classes[:n] >= 1).all() and (classes[:n] <= 3).all() and (classes[n:] == 0).all()
        scores = out[F.DET_SCORES][b].numpy()
        assert (np.diff(scores[:n]) <= 1e-6).all() and (scores[n:] == 0).all()


def test_boxes_are_normalized_to_the_original_image():
    """image_info's scale maps input pixels back to the original image (here 2x downscaled, 256 -> 128)."""
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(2, 1, config)
    info_identity = batch[F.IMAGE_INFO]
    info_half = tf.constant([[[256, 200], [128, 100], [0.5, 0.5], [0, 0]]], tf.float32)
    a = model({F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: info_identity}, training=False)
    b = model({F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: info_half}, training=False)
    n = min(int(a[F.NUM_DETECTIONS][0]), int(b[F.NUM_DETECTIONS][0]))
    assert n > 0
    # Same pixels in the input; clipping to 100 px wide content may change x, y must agree.
    ya, yb = a[F.DET_BOXES][0, :n, 0::2].numpy(), b[F.DET_BOXES][0, :n, 0::2].numpy()
    assert np.isin(np.round(yb, 4), np.round(ya, 4)).mean() > 0.5


def test_xla_compiled_train_step_runs():
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(3, 2, config)
    model(batch, training=True)  # build
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function(jit_compile=True)
    def step(features):
        with tf.GradientTape() as tape:
            losses = model(features, training=True)
        grads = tape.gradient(losses["total_loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return losses, grads

    losses, grads = step(batch)
    assert np.isfinite(float(losses["total_loss"]))
    assert all(g is not None for g in grads)
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert model.backbone.trainable_variables, "the backbone holds the ResNet weights"


def _inference_graph_size(num_classes: int) -> int:
    model, config = tiny_model(num_classes)
    spec = {
        F.IMAGE: tf.TensorSpec([1, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
        F.IMAGE_INFO: tf.TensorSpec([1, 4, 2], tf.float32),
    }
    fn = tf.function(lambda f: model(f, training=False))
    graph = fn.get_concrete_function(spec).graph
    return len(graph.get_operations())


def test_300_classes_do_not_grow_the_graph():
    small, large = _inference_graph_size(10), _inference_graph_size(300)
    assert abs(large - small) <= 0.02 * small, (small, large)


@pytest.mark.slow
def test_tiny_model_overfits_synthetic_images():
    """~200 Adam steps on 4 images: the losses fall and inference finds the objects with masks."""
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(10, 4, config)
    model(batch, training=True)
    optimizer = tf.keras.optimizers.Adam(2e-3)

    @tf.function(jit_compile=True)
    def step(features):
        with tf.GradientTape() as tape:
            losses = model(features, training=True)
        grads = tape.gradient(losses["total_loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return losses

    first = step(batch)
    start = time.perf_counter()
    for _ in range(200):
        last = step(batch)
    print(f"tiny train step: {(time.perf_counter() - start) / 200 * 1000:.0f} ms (batch 4, 128 px)")
    assert float(last["total_loss"]) < 0.35 * float(first["total_loss"])

    out = model({F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: batch[F.IMAGE_INFO]}, training=False)
    found = 0
    total = 0
    for b in range(4):
        valid = batch[F.GT_VALID][b].numpy()
        gt_boxes, gt_classes = batch[F.GT_BOXES][b].numpy()[valid], batch[F.GT_CLASSES][b].numpy()[valid]
        keep = out[F.DET_SCORES][b].numpy() > 0.5
        det_boxes, det_classes = out[F.DET_BOXES][b].numpy()[keep], out[F.DET_CLASSES][b].numpy()[keep]
        iou = pairwise_iou_numpy(gt_boxes, det_boxes)
        for g in range(len(gt_boxes)):
            total += 1
            found += bool(((iou[g] >= 0.5) & (det_classes == gt_classes[g])).any())
    assert found >= 0.8 * total, (found, total)
