"""ShapeMask: the mask resampling op and the losses against numpy, the mask-branch targets (sampling with
repetition, jitter, outer boxes), the heads' use of the priors, and the model's call contract (the
XLA-compiled train step is slow)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from xla_step import xla_train_step

from hierseg import features as F
from hierseg.config import ConfigError, merge
from hierseg.config.model import ModelConfig
from hierseg.config.shapemask import ShapeMaskConfig
from hierseg.models.shapemask_losses import mask_bce_loss, prior_mse_loss
from hierseg.models.shapemask_targets import add_mask_targets, jitter_boxes, outer_boxes, sample_instances
from hierseg.ops.mask_resample import resample_box_mask_numpy, resample_box_masks

SIZE = 128
SMALL_HEADS = {"num_downsample_channels": 16, "num_convs": 2, "mask_crop_size": 16, "upsample_factor": 2}


def tiny_shapemask_config(num_classes: int = 3, **shapemask) -> ModelConfig:
    from test_retinanet import tiny_model_config

    return merge(tiny_model_config(num_classes), {"shapemask": {**SMALL_HEADS, "num_sampled_masks": 4, **shapemask}})


def synthetic_example(seed: int, num_instances: int = 2, max_instances: int = 8) -> dict:
    """One training example as the input pipeline makes it: a 96 x 128 content, full-box gt masks."""
    rng = np.random.default_rng(seed)
    boxes = np.zeros([max_instances, 4], np.float32)
    for i in range(num_instances):
        y0, x0 = rng.uniform(0, 0.5, 2)
        boxes[i] = [y0, x0, y0 + rng.uniform(0.2, 0.5), x0 + rng.uniform(0.2, 0.5)]
    masks = np.zeros([max_instances, 28, 28], np.float32)
    masks[:num_instances, 4:24, 6:20] = 1.0
    return {
        F.IMAGE: tf.constant(rng.normal(size=[SIZE, SIZE, 3]), tf.float32),
        F.IMAGE_INFO: tf.constant([[96, 128], [96, 128], [1, 1], [0, 0]], tf.float32),
        F.GT_BOXES: tf.constant(boxes),
        F.GT_CLASSES: tf.constant([(i % 3) + 1 if i < num_instances else 0 for i in range(max_instances)], tf.int32),
        F.GT_VALID: tf.range(max_instances) < num_instances,
        F.GT_IS_CROWD: tf.zeros([max_instances], tf.bool),
        F.GT_MASKS: tf.constant(masks),
        F.WEIGHT: tf.constant(1.0),
    }


def synthetic_batch(config: ModelConfig, with_masks: bool = True) -> dict:
    """A batch of 2 synthetic examples with RetinaNet anchor targets (and ShapeMask mask targets)."""
    from hierseg.models.retinanet_targets import add_anchor_targets
    from hierseg.ops.anchors import generate_anchors

    anchors = generate_anchors(config.anchor, SIZE)
    examples = []
    for i in range(2):
        ex = add_anchor_targets(synthetic_example(i, num_instances=2 + i), anchors, config.retinanet)
        if with_masks:
            ex = add_mask_targets(ex, config.shapemask, seed=tf.constant([i, 7]))
        examples.append(ex)
    return {k: tf.stack([e[k] for e in examples]) for k in examples[0]}


def test_resample_box_masks_matches_numpy():
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=[2, 3, 6, 6]).astype(np.float32)
    boxes = np.sort(rng.uniform(0, 40, [2, 3, 2, 2]), axis=2).transpose(0, 1, 3, 2).reshape(2, 3, 4)
    boxes = boxes[..., [0, 2, 1, 3]].astype(np.float32)  # (ymin, xmin, ymax, xmax)
    targets = boxes + rng.normal(0, 5, boxes.shape).astype(np.float32)
    targets[..., 2:] = np.maximum(targets[..., 2:], targets[..., :2] + 1)
    boxes[1, 2] = [5, 5, 5, 9]  # degenerate source box -> zeros
    got = resample_box_masks(masks, boxes, targets, 9).numpy()
    for b in range(2):
        for r in range(3):
            want = resample_box_mask_numpy(masks[b, r], boxes[b, r], targets[b, r], 9)
            np.testing.assert_allclose(got[b, r], want, atol=1e-5)
    assert np.all(got[1, 2] == 0)


def test_resample_into_the_same_box_is_identity_and_outside_is_zero():
    mask = np.random.default_rng(1).uniform(size=[1, 1, 8, 8]).astype(np.float32)
    box = np.array([[[10, 20, 50, 60]]], np.float32)
    np.testing.assert_allclose(resample_box_masks(mask, box, box, 8).numpy(), mask, atol=1e-6)
    far = np.array([[[100, 100, 120, 120]]], np.float32)
    assert np.all(resample_box_masks(mask, box, far, 8).numpy() == 0)


def test_losses_match_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, [2, 3, 5, 5]).astype(np.float32)
    targets = (rng.uniform(size=[2, 3, 5, 5]) > 0.5).astype(np.float32)
    valid = np.array([[True, False, True], [False, False, False]])
    weights = np.array([2.0, 1.0], np.float32)
    bce = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    probs = 1 / (1 + np.exp(-logits))
    want_bce, want_mse = 0.0, 0.0
    for b in range(2):
        fg = max(sum(targets[b, r].sum() for r in range(3) if valid[b, r]), 1.0)
        want_bce += weights[b] * sum(bce[b, r].sum() for r in range(3) if valid[b, r]) / fg
        want_mse += (
            weights[b] * sum(0.5 * ((targets[b, r] - probs[b, r]) ** 2).sum() for r in range(3) if valid[b, r]) / fg
        )
    assert float(mask_bce_loss(logits, targets, valid, weights)) == pytest.approx(want_bce / 2, rel=1e-5)
    assert float(prior_mse_loss(probs, targets, valid, weights)) == pytest.approx(want_mse / 2, rel=1e-5)


def test_sample_instances_repeats_cyclically_and_marks_empty_images_invalid():
    index, valid = sample_instances(tf.constant([False, True, True, False, True]), 8, seed=tf.constant([3, 4]))
    index = index.numpy()
    assert (
        valid.numpy().all() and sorted(index[:3]) == [1, 2, 4] and list(index[3:]) == list(index[:3]) + list(index[:2])
    )
    index, valid = sample_instances(tf.zeros([4], tf.bool), 3, seed=tf.constant([3, 4]))
    assert not valid.numpy().any() and index.numpy().tolist() == [0, 0, 0]


def test_jitter_and_outer_boxes():
    boxes = tf.constant([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_allclose(jitter_boxes(boxes, tf.zeros([1, 4])).numpy(), boxes.numpy())
    moved = jitter_boxes(boxes, tf.constant([[0.1, -0.1, np.log(2.0), 0.0]], tf.float32)).numpy()[0]
    np.testing.assert_allclose(moved, [2.0 + 0, 16.0, 42.0, 56.0], atol=1e-5)  # centre (22, 36), h 40, w 40
    outer = outer_boxes(boxes, 1.5, tf.constant([100.0, 70.0])).numpy()[0]
    np.testing.assert_allclose(outer, [5.0, 10.0, 35.0, 70.0])  # x clipped at the content width 70


def test_mask_targets_of_full_box_masks():
    config = ShapeMaskConfig(**SMALL_HEADS, num_sampled_masks=5, box_jitter_scale=0.0, outer_box_scale=1.25)
    ex = synthetic_example(0, num_instances=2)
    ex[F.GT_MASKS] = tf.concat([tf.ones([2, 28, 28]), tf.zeros([6, 28, 28])], axis=0)
    out = add_mask_targets(ex, config, seed=tf.constant([1, 2]))
    assert out[F.MASK_TARGETS].shape == (5, 16, 16) and out[F.FINE_MASK_TARGETS].shape == (5, 32, 32)
    assert out[F.MASK_VALID].numpy().all() and set(out[F.MASK_CLASSES].numpy()) == {1, 2}
    pixels = ex[F.GT_BOXES].numpy()[:2] * np.array([96, 128, 96, 128])
    for row in range(5):  # no jitter: the mask box is a gt box, the target its box inside the outer box
        box = out[F.MASK_BOXES].numpy()[row]
        assert any(np.allclose(box, p, atol=1e-4) for p in pixels)
        expected = resample_box_masks(
            tf.ones([1, 1, 28, 28]), box[None, None], out[F.MASK_OUTER_BOXES][None, row : row + 1], 16
        )
        np.testing.assert_array_equal(
            out[F.MASK_TARGETS].numpy()[row], (expected.numpy()[0, 0] >= 0.5).astype(np.float32)
        )
        assert 0.3 < out[F.MASK_TARGETS].numpy()[row].mean() < 0.9
    empty = add_mask_targets(synthetic_example(0, num_instances=0), config, seed=tf.constant([1, 2]))
    assert not empty[F.MASK_VALID].numpy().any() and empty[F.MASK_TARGETS].numpy().sum() == 0


def test_config_checks():
    with pytest.raises(ConfigError, match="outer_box_scale"):
        merge(ModelConfig(), {"shapemask": {"outer_box_scale": 0.5}})
    from hierseg.models.shapemask import ShapeMask

    with pytest.raises(ValueError, match="mask levels 3..5 must lie within the pyramid 4..7"):
        ShapeMask(merge(tiny_shapemask_config(), {"anchor": {"min_level": 4}}), 3, SIZE)


@pytest.fixture(scope="module")
def tiny_batch():
    return synthetic_batch(tiny_shapemask_config())


def test_prior_head_uses_the_class_priors(tmp_path):
    """With one prior per class (K = 1) the detection prior is exactly that class's prior resampled into the
    outer box, whatever the features."""
    from hierseg.models.shapemask_heads import ShapePriorHead
    from hierseg.priors import write_priors

    priors = np.zeros([3, 1, 16, 16], np.float32)
    priors[0, 0, :8], priors[1, 0, :, :8], priors[2, 0] = 1.0, 1.0, 0.5
    head = ShapePriorHead(ShapeMaskConfig(**SMALL_HEADS), priors)
    pyramid = {lv: tf.random.normal([1, SIZE // 2**lv, SIZE // 2**lv, 8]) for lv in (3, 4, 5)}
    boxes = tf.constant([[[10.0, 10.0, 50.0, 70.0]] * 3])
    outer = outer_boxes(boxes, 1.25, tf.constant([[SIZE, SIZE]], tf.float32))
    _, prior = head(pyramid, boxes, outer, tf.constant([[1, 2, 3]]))
    want = resample_box_masks(priors[None, :, 0], boxes, outer, 16)
    np.testing.assert_allclose(prior.numpy(), want.numpy(), atol=1e-6)
    write_priors(priors, str(tmp_path / "p.npy"))
    from hierseg.models.shapemask import initial_priors

    cfg = tiny_shapemask_config(shape_prior_path=str(tmp_path / "p.npy"))
    np.testing.assert_array_equal(initial_priors(cfg, 3), priors)
    with pytest.raises(ValueError, match="priors for 3 classes, the model has 4"):
        initial_priors(cfg, 4)
    agnostic = merge(cfg, {"shapemask": {"use_category_for_mask": False}})
    assert initial_priors(agnostic, 4).shape == (1, 3, 16, 16)


def test_model_contract_inference_outputs(tiny_batch):
    from hierseg.models.shapemask import ShapeMask

    model = ShapeMask(tiny_shapemask_config(), 3, SIZE)
    out = model({F.IMAGE: tiny_batch[F.IMAGE], F.IMAGE_INFO: tiny_batch[F.IMAGE_INFO]}, training=False)
    assert model.output_kind == "masks" and "total_loss" in model.loss_keys and model.backbone is not None
    assert sorted(out) == sorted([F.DET_BOXES, F.DET_CLASSES, F.DET_SCORES, F.DET_MASKS, F.NUM_DETECTIONS])
    assert out[F.DET_MASKS].shape == (2, 20, 32, 32)
    masks = out[F.DET_MASKS].numpy()
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert not any(v.name.endswith("shape_priors") for v in model.trainable_variables)
    assert any("shape_priors" in v.path for v in model.non_trainable_variables)


@pytest.mark.slow
def test_train_step_compiles_with_xla(tiny_batch):
    from hierseg.models.shapemask import ShapeMask

    model = ShapeMask(tiny_shapemask_config(), 3, SIZE)
    losses, grads = xla_train_step(model, tiny_batch)
    assert sorted(losses) == sorted(model.loss_keys)
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert float(losses["shapemask_prior_loss"]) == pytest.approx(0.5)  # all-zero priors: 0.5 sum(t^2) / sum(t)
    assert float(losses["shapemask_fine_loss"]) > 0 and all(g is not None for g in grads)


@pytest.mark.parametrize("tpu", ["v3-8", "v3-32", "v3-128", "v3-256"])
@pytest.mark.parametrize("layer", [0, 1])
def test_layer_configs_take_the_seed_tpu_schedules(layer, tpu):
    from pathlib import Path

    from hierseg.config import load
    from hierseg.config.experiment import ExperimentConfig

    configs = Path(__file__).resolve().parents[1] / "configs"
    schedule = str(configs / "tpu" / f"{tpu}.yaml")
    shapemask = load(ExperimentConfig, str(configs / f"layer{layer}_shapemask_r101_fpn.yaml"), schedule)
    maskrcnn = load(ExperimentConfig, str(configs / f"layer{layer}_maskrcnn_r101_fpn.yaml"), schedule)
    retinanet = load(ExperimentConfig, str(configs / f"layer{layer}_retinanet_r50_fpn.yaml"), schedule)
    for cfg in (shapemask, retinanet):
        assert (cfg.train.global_batch_size, cfg.train.total_steps) == (
            maskrcnn.train.global_batch_size,
            maskrcnn.train.total_steps,
        )
        assert cfg.train.learning_rate == maskrcnn.train.learning_rate and cfg.data.output_size == 1024
    assert shapemask.model.type == "shapemask" and shapemask.model.backbone.depth == 101
    assert retinanet.model.type == "retinanet" and retinanet.model.backbone.depth == 50
    assert shapemask.model.shapemask.shape_prior_path.endswith(f"layer{layer}/shape_priors.npy")
    assert (shapemask.model.retinanet.focal_alpha, shapemask.model.retinanet.huber_delta) == (0.4, 0.15)
    if tpu == "v3-8":  # the files themselves hold the v3-8 schedule
        assert shapemask == load(ExperimentConfig, str(configs / f"layer{layer}_shapemask_r101_fpn.yaml"))


def test_demo_model_flag_names_shipped_configs_of_that_type():
    from hierseg.config import load
    from hierseg.config.experiment import ExperimentConfig
    from hierseg_cli.commands.demo import DEMO_CONFIGS
    from hierseg_cli.main import build_parser
    from hierseg_cli.workflows.demo import find_config

    assert build_parser("demo").parse_args(["--model", "shapemask"]).model == "shapemask"
    for model, name in DEMO_CONFIGS.items():
        assert load(ExperimentConfig, find_config(name)).model.type == model
