"""Mask R-CNN model: loss/inference shapes on the tiny config, XLA compilation, graph size vs classes, overfit."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import DetectionConfig, ModelConfig
from hierseg.features import input_pixels_to_original as boxes_to_original
from hierseg.input.anchor_targets import assign_rpn_targets
from hierseg.input.transforms import crop_masks_to_boxes
from hierseg.models import losses as losses_lib
from hierseg.models.mask_rcnn import LOSS_KEYS, MaskRCNN
from hierseg.models.postprocess import detect
from hierseg.ops.anchors import generate_anchors
from hierseg.ops.iou import pairwise_iou_numpy
from hierseg.ops.mask_paste import paste_masks

IMAGE_SIZE = 128
COLORS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (50, 70, 230)}  # class -> RGB; 2 is an ellipse
FULL_MASKS: dict[int, list[np.ndarray]] = {}  # seed -> per image [N, size, size] bool (see synthetic_batch)


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
    """A training feature dict as the input pipeline makes it (same target code: hierseg.input).

    The full-image instance masks ``[B, N, size, size]`` bool are kept in ``FULL_MASKS[seed]`` for checks.
    """
    rng = np.random.default_rng(seed)
    anchors = generate_anchors(config.anchor, size)
    out: dict[str, list] = {k: [] for k in (F.IMAGE, F.IMAGE_INFO, F.GT_BOXES, F.GT_CLASSES, F.GT_VALID)}
    out.update({F.GT_IS_CROWD: [], F.GT_MASKS: [], F.RPN_SCORE_TARGETS: [], F.RPN_BOX_TARGETS: [], F.WEIGHT: []})
    FULL_MASKS[seed] = []
    for _ in range(batch):
        image, boxes, classes, masks, n = synthetic_scene(rng, size, max_instances)
        FULL_MASKS[seed].append(masks)
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


@pytest.fixture(scope="module")
def tiny():
    """One tiny 3-class model (built eagerly once; ~10 s) shared by the fast tests."""
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    model(synthetic_batch(0, 2, config), training=True)
    return model, config


def test_training_losses_are_finite_scalars(tiny):
    model, config = tiny
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


def test_mask_head_runs_on_a_capped_set_of_foreground_rois(tiny):
    """mask_head.max_rois: the loss stays the mean over real foreground ROIs, so a cap above the foreground
    count changes nothing; a tight cap still gives a finite mean over its subset."""
    import dataclasses

    model, config = tiny
    batch = synthetic_batch(3, 2, config)
    slots = int(config.roi_sampling.num_samples * config.roi_sampling.fg_fraction)
    results = {}
    try:
        for cap in (0, slots - 1, 2):
            model.config = dataclasses.replace(config, mask_head=dataclasses.replace(config.mask_head, max_rois=cap))
            tf.keras.utils.set_random_seed(5)  # the same ROI sample for every cap
            results[cap] = {k: float(v) for k, v in model(batch, training=True).items()}
    finally:
        model.config = config
    assert results[0]["frcnn_class_loss"] == results[2]["frcnn_class_loss"]  # same ROI sample
    assert np.isfinite(results[2]["mask_loss"]) and results[2]["mask_loss"] > 0
    assert results[slots - 1]["mask_loss"] == pytest.approx(results[0]["mask_loss"], rel=1e-5)


def test_example_weights_scale_losses(tiny):
    model, config = tiny
    batch = synthetic_batch(1, 2, config)
    base = model(batch, training=True)
    batch[F.WEIGHT] = tf.constant([0.0, 0.0])
    zero = model(batch, training=True)
    assert all(float(zero[k]) == 0.0 for k in LOSS_KEYS)
    assert float(base["total_loss"]) > 0.0


def test_inference_outputs(tiny):
    model, config = tiny
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


def test_boxes_to_original_inverts_the_input_scaling():
    """Input pixels -> original pixels = (pixels + offset) / scale, then / original size."""
    info = tf.constant([[[200, 100], [128, 64], [0.64, 0.64], [0, 0]]], tf.float32)
    boxes = tf.constant([[[64.0, 32.0, 128.0, 64.0], [0.0, 0.0, 200.0, 200.0]]])
    got = boxes_to_original(boxes, info).numpy()
    np.testing.assert_allclose(got[0, 0], [0.5, 0.5, 1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(got[0, 1], [0.0, 0.0, 1.0, 1.0])  # clipped


def test_detect_is_class_aware_without_class_loop():
    """Two overlapping ROIs: same class -> one detection; different classes -> both survive NMS."""
    num_classes = 300
    rois = tf.constant([[[10.0, 10.0, 50.0, 50.0], [12.0, 12.0, 52.0, 52.0], [80.0, 80.0, 90.0, 90.0]]])
    deltas = tf.zeros([1, 3, num_classes, 4])
    config = DetectionConfig(pre_nms_topk=50, max_detections=5, nms_iou=0.5, score_threshold=0.3)
    hw = tf.constant([[128.0, 128.0]])
    valid = tf.constant([[True, True, False]])

    def logits_for(classes):
        x = np.full((1, 3, num_classes), -10.0, np.float32)
        for r, c in enumerate(classes):
            x[0, r, c - 1] = 5.0 - r
        return tf.constant(x)

    same = detect(logits_for([7, 7, 9]), deltas, rois, valid, hw, config, "sigmoid")
    assert int(same["num_detections"][0]) == 1 and int(same["classes"][0, 0]) == 7
    both = detect(logits_for([7, 250, 9]), deltas, rois, valid, hw, config, "sigmoid")
    assert int(both["num_detections"][0]) == 2, "the invalid third ROI never becomes a detection"
    assert both["classes"][0, :2].numpy().tolist() == [7, 250]
    np.testing.assert_allclose(both["boxes"][0, :2].numpy(), rois[0, :2].numpy(), atol=1e-4)
    assert (both["scores"][0, 2:].numpy() == 0).all() and (both["classes"][0, 2:].numpy() == 0).all()


def test_per_class_topk_keeps_a_low_scoring_class_that_a_global_topk_drops():
    """300 classes, 20 disjoint ROIs: class 1 scores 0.9 on all of them, class 300 only 0.5 on ROI 0. The 10
    best (ROI, class) pairs overall are all class 1; per class, class 300 keeps its candidate and detection."""
    num_classes, num_rois = 300, 20
    rois = tf.constant([[[8.0 * i, 0.0, 8.0 * i + 6.0, 6.0] for i in range(num_rois)]])
    probs = np.full((1, num_rois, num_classes), 1e-4, np.float32)
    probs[0, :, 0] = 0.9
    probs[0, 0, 299] = 0.5
    logits = tf.constant(np.log(probs / (1 - probs)))
    config = DetectionConfig(pre_nms_topk=10, max_detections=20, nms_iou=0.5, score_threshold=0.05)
    global_top = np.argsort(-probs.reshape(-1), kind="stable")[: config.pre_nms_topk] % num_classes + 1
    assert 300 not in global_top  # what a global top-k of (ROI, class) pairs would keep
    out = detect(
        logits, tf.zeros([1, num_rois, num_classes, 4]), rois, tf.ones([1, num_rois], bool),
        tf.constant([[256.0, 256.0]]), config, "sigmoid",
    )  # fmt: skip
    classes = out["classes"][0].numpy()[: int(out["num_detections"][0])].tolist()
    assert classes.count(1) == 10 and classes.count(300) == 1
    assert classes[-1] == 300 and out["scores"][0, 10].numpy() == pytest.approx(0.5, abs=1e-4)
    np.testing.assert_allclose(out["boxes"][0, 10].numpy(), rois[0, 0].numpy(), atol=1e-3)


def _inference_graph_size(num_classes: int) -> int:
    model, config = tiny_model(num_classes, classification="sigmoid")
    spec = {  # unknown batch, as in a serving signature
        F.IMAGE: tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
        F.IMAGE_INFO: tf.TensorSpec([None, 4, 2], tf.float32),
    }
    fn = tf.function(lambda f: model(f, training=False))
    concrete = fn.get_concrete_function(spec)
    assert concrete.structured_outputs[F.DET_MASKS].shape[1:] == (config.detection.max_detections, 28, 28)
    return len(concrete.graph.get_operations())


@pytest.mark.slow
def test_300_classes_do_not_grow_the_graph():
    small, large = _inference_graph_size(10), _inference_graph_size(300)
    assert abs(large - small) <= 0.02 * small, (small, large)


@pytest.mark.slow
def test_xla_train_step_compiles_and_overfits_synthetic_images():
    """The XLA-compiled train step (the TPU stand-in) runs; 120 Adam steps on 2 images make it find them."""
    tf.keras.utils.set_random_seed(0)
    model, config = tiny_model()
    batch = synthetic_batch(10, 2, config)
    model(batch, training=True)
    optimizer = tf.keras.optimizers.Adam(2e-3)

    @tf.function(jit_compile=True)
    def step(features):
        with tf.GradientTape() as tape:
            losses = model(features, training=True)
        grads = tape.gradient(losses["total_loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return losses, grads

    first, grads = step(batch)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert model.backbone.trainable_variables, "the backbone holds the ResNet weights"
    start = time.perf_counter()
    for _ in range(120):
        last, _ = step(batch)
    print(f"tiny XLA train step: {(time.perf_counter() - start) / 120 * 1000:.0f} ms (batch 2, 128 px)")
    for key in LOSS_KEYS:
        assert np.isfinite(float(last[key])), key
    assert float(last["total_loss"]) < 0.2 * float(first["total_loss"])
    assert float(last["mask_loss"]) < 0.3

    out = model({F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: batch[F.IMAGE_INFO]}, training=False)
    found = total = 0
    for b in range(2):
        valid = batch[F.GT_VALID][b].numpy()
        gt_boxes, gt_classes = batch[F.GT_BOXES][b].numpy()[valid], batch[F.GT_CLASSES][b].numpy()[valid]
        keep = out[F.DET_SCORES][b].numpy() > 0.5
        det_boxes, det_classes = out[F.DET_BOXES][b].numpy()[keep], out[F.DET_CLASSES][b].numpy()[keep]
        det_masks = paste_masks(out[F.DET_MASKS][b][keep], det_boxes, IMAGE_SIZE, IMAGE_SIZE).numpy() >= 0.5
        gt_masks = FULL_MASKS[10][b][valid]
        iou = pairwise_iou_numpy(gt_boxes, det_boxes)
        for g in range(len(gt_boxes)):
            total += 1
            hits = np.flatnonzero((iou[g] >= 0.5) & (det_classes == gt_classes[g]))
            if len(hits):
                mask_iou = (det_masks[hits[0]] & gt_masks[g]).sum() / max((det_masks[hits[0]] | gt_masks[g]).sum(), 1)
                found += bool(mask_iou >= 0.5)
    assert found >= 0.8 * total, (found, total)


def test_losses_match_numpy_formulas():
    rng = np.random.default_rng(0)
    weights = np.asarray([1.0, 2.0], np.float32)
    # RPN: BCE over sampled anchors per image, mean over the batch with example weights.
    logits = rng.normal(size=(2, 6)).astype(np.float32)
    targets = np.asarray([[1, 0, -1, 0, -1, -1], [0, 0, 0, 1, 1, -1]], np.int32)
    bce = np.log1p(np.exp(-np.abs(logits))) + np.maximum(logits, 0) - logits * (targets > 0)
    per_image = [(bce[b] * (targets[b] >= 0)).sum() / (targets[b] >= 0).sum() for b in range(2)]
    want = (np.asarray(per_image) * weights).sum() / 2
    assert float(losses_lib.rpn_score_loss(logits, targets, weights)) == pytest.approx(want, rel=1e-5)
    # RPN box: smooth L1 (beta) summed over coordinates of positives / sampled count.
    deltas = rng.normal(size=(2, 6, 4)).astype(np.float32)
    box_t = np.where((targets > 0)[..., None], rng.normal(size=(2, 6, 4)), 0.0).astype(np.float32)
    x = np.abs(deltas - box_t)
    sl1 = np.where(x < 0.1, 0.5 * x**2 / 0.1, x - 0.05).sum(-1)
    per_image = [(sl1[b] * (targets[b] > 0)).sum() / (targets[b] >= 0).sum() for b in range(2)]
    want = (np.asarray(per_image) * weights).sum() / 2
    got = losses_lib.rpn_box_loss(deltas, box_t, targets, weights, beta=0.1)
    assert float(got) == pytest.approx(want, rel=1e-5)
    # Fast R-CNN softmax CE over sampled ROIs (filler rows weigh 0).
    cls_logits = rng.normal(size=(2, 5, 4)).astype(np.float32)
    classes = np.asarray([[1, 0, 3, 0, 0], [2, 2, 0, 0, 0]], np.int32)
    sample_w = np.asarray([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], np.float32)
    logp = cls_logits - np.log(np.exp(cls_logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, classes[..., None], -1)[..., 0]
    want = sum(weights[b] * (ce[b] * sample_w[b]).sum() / sample_w[b].sum() for b in range(2)) / 2
    assert float(losses_lib.fast_rcnn_class_loss(cls_logits, classes, sample_w, weights)) == pytest.approx(
        want, rel=1e-5
    )
    # Sigmoid focal: summed over classes and ROIs, divided by the foreground count.
    sig_logits = cls_logits[..., 1:]
    onehot = np.eye(4)[classes][..., 1:]
    p = 1 / (1 + np.exp(-sig_logits))
    p_t = onehot * p + (1 - onehot) * (1 - p)
    alpha = onehot * 0.25 + (1 - onehot) * 0.75
    focal = (alpha * (1 - p_t) ** 2 * -np.log(p_t)).sum(-1)
    fg = (classes > 0) & (sample_w > 0)
    want = sum(weights[b] * (focal[b] * sample_w[b]).sum() / fg[b].sum() for b in range(2)) / 2
    got = losses_lib.fast_rcnn_class_loss(sig_logits, classes, sample_w, weights, "sigmoid", "focal")
    assert float(got) == pytest.approx(want, rel=1e-4)
    # Mask: mean pixel BCE over foreground ROIs only.
    mask_logits = rng.normal(size=(2, 5, 3, 3)).astype(np.float32)
    mask_t = (rng.uniform(size=(2, 5, 3, 3)) > 0.5).astype(np.float32)
    pix = np.log1p(np.exp(-np.abs(mask_logits))) + np.maximum(mask_logits, 0) - mask_logits * mask_t
    want = sum(weights[b] * pix[b][fg[b]].mean() for b in range(2)) / 2
    assert float(losses_lib.mask_loss(mask_logits, mask_t, fg, weights)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_frozen_norm_is_fixed_and_levels_have_strides(depth):
    from hierseg.config.model import BackboneConfig
    from hierseg.models.resnet import ResNet

    net = ResNet(BackboneConfig(depth=depth, width_multiplier=0.125, norm="frozen"))
    images = tf.random.normal([1, 64, 64, 3])
    out = net(images, training=True)
    for level, channels in net.channels.items():
        assert out[level].shape == (1, 64 // 2**level, 64 // 2**level, channels)
    assert all("kernel" in v.path for v in net.trainable_variables), "no trainable batch-norm parameters"
    before = [v.numpy().copy() for v in net.non_trainable_variables]
    net(images * 3.0 + 1.0, training=True)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, net.non_trainable_variables))


def test_mixed_bfloat16_policy_gives_float32_losses():
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model, config = tiny_model(classification="sigmoid", sigmoid_loss="focal")
        batch = synthetic_batch(4, 1, config)
        losses = model(batch, training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.backbone.compute_dtype == "bfloat16"
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in losses.values())


def test_tf_checkpoint_restores_every_variable(tiny, tmp_path):
    """tf.train.Checkpoint must reach layers kept in lists (blocks, FPN convs, head fcs), model and backbone."""
    model, config = tiny
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "full"))
    backbone_path = tf.train.Checkpoint(backbone=model.backbone).save(str(tmp_path / "backbone"))
    tf.keras.utils.set_random_seed(1)
    other, _ = tiny_model()
    other(synthetic_batch(0, 1, config), training=True)
    tf.train.Checkpoint(backbone=other.backbone).restore(backbone_path).assert_existing_objects_matched()
    for a, b in zip(model.backbone.variables, other.backbone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert not np.array_equal(model.box_head.fcs[0].kernel.numpy(), other.box_head.fcs[0].kernel.numpy())
    tf.train.Checkpoint(model=other).restore(path).assert_consumed()
    assert len(model.variables) == len(other.variables)
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_freeze_at_2_fixes_the_stem_and_res2_and_is_auto_with_a_pretrained_start():
    from hierseg.config import merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.config.model import BackboneConfig
    from hierseg.models.resnet import ResNet
    from hierseg.training.optimizer import resolve_freeze_at, trainable_variables

    net = ResNet(BackboneConfig(depth=18, width_multiplier=0.25, norm="frozen", freeze_at=2), name="backbone")
    images = tf.random.normal([1, 64, 64, 3])
    with tf.GradientTape() as tape:
        out = net(images, training=True)
        loss = tf.reduce_sum(out[2]) + tf.reduce_sum(out[5])
    grads = dict(zip([v.path for v in net.trainable_variables], tape.gradient(loss, net.trainable_variables)))
    frozen = [p for p in grads if "/stem_" in p or "/stage2_" in p]
    assert frozen and all(grads[p] is None for p in frozen)
    assert all(grads[p] is not None for p in grads if "/stage3_" in p)
    kept = {v.path for v in trainable_variables(net, "", freeze_at=2)}
    assert kept == set(grads) - set(frozen)
    assert {v.path for v in trainable_variables(net, "", freeze_at=0)} == set(grads)
    auto = ExperimentConfig()
    assert resolve_freeze_at(auto).model.backbone.freeze_at == 0  # random init: everything trains
    pretrained = merge(auto, {"train": {"init": {"path": "/ckpt/resnet50"}}})
    assert resolve_freeze_at(pretrained).model.backbone.freeze_at == 2  # Detectron's default from ImageNet
    explicit = merge(pretrained, {"model": {"backbone": {"freeze_at": 0}}})
    assert resolve_freeze_at(explicit).model.backbone.freeze_at == 0
