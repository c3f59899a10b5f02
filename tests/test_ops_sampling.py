"""NMS, ROIAlign, mask pasting and ROI/mask target sampling against numpy references and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hierseg.config.model import ROISamplingConfig
from hierseg.ops.iou import pairwise_iou_numpy
from hierseg.ops.mask_paste import paste_masks, paste_masks_numpy
from hierseg.ops.nms import batched_nms, nms_numpy, offset_boxes_by_class
from hierseg.ops.roi_align import multilevel_roi_align, multilevel_roi_align_numpy
from hierseg.ops.target_sampling import (
    crop_mask_target_numpy,
    crop_mask_targets,
    mask_training_rois,
    sample_rois,
    select_foreground,
)


def random_boxes(rng, shape, low=0.0, high=100.0, min_side=2.0, max_side=40.0):
    yx = rng.uniform(low, high, shape + (2,))
    hw = rng.uniform(min_side, max_side, shape + (2,))
    return np.concatenate([yx, yx + hw], axis=-1).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_nms_matches_greedy_reference(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, (2, 300))
    scores = rng.uniform(0, 1, (2, 300)).astype(np.float32)
    for max_out, iou, thresh in [(50, 0.5, 0.1), (400, 0.7, float("-inf"))]:
        idx, valid = batched_nms(boxes, scores, max_out, iou, thresh)
        assert idx.shape == (2, max_out) and valid.shape == (2, max_out)
        for b in range(2):
            want = nms_numpy(boxes[b], scores[b], max_out, iou, thresh)
            np.testing.assert_array_equal(idx[b].numpy()[valid[b].numpy()], want)
            assert not valid[b].numpy()[len(want) :].any()


def test_class_offset_makes_nms_class_aware():
    boxes = np.asarray([[[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]], np.float32)
    scores = np.asarray([[0.9, 0.8, 0.7]], np.float32)
    classes = np.asarray([[0, 1, 0]])
    idx, valid = batched_nms(offset_boxes_by_class(boxes, classes, 10.0), scores, 3, 0.5)
    assert idx[0].numpy()[valid[0].numpy()].tolist() == [0, 1]


def test_multilevel_roi_align_matches_reference():
    rng = np.random.default_rng(0)
    size = 64
    feats = {lv: rng.normal(size=(2, size // 2**lv, size // 2**lv, 3)).astype(np.float32) for lv in range(2, 6)}
    # Sizes from 1 to 120 px cover every level; some boxes stick out of the image.
    boxes = random_boxes(rng, (2, 24), low=-10, high=60, min_side=1, max_side=120)
    for out_size, ratio in [(7, 2), (4, 1)]:
        got = multilevel_roi_align(feats, boxes, out_size, ratio).numpy()
        np.testing.assert_allclose(got, multilevel_roi_align_numpy(feats, boxes, out_size, ratio), atol=1e-4)


def test_roi_align_of_a_constant_map_is_constant_inside():
    feats = {2: np.full((1, 16, 16, 2), 3.0, np.float32), 3: np.full((1, 8, 8, 2), 3.0, np.float32)}
    got = multilevel_roi_align(feats, np.asarray([[[4.0, 4.0, 40.0, 60.0]]], np.float32), 5).numpy()
    np.testing.assert_allclose(got, 3.0, rtol=1e-6)


def test_paste_masks_matches_reference():
    rng = np.random.default_rng(0)
    masks = rng.uniform(0, 1, (3, 6, 6)).astype(np.float32)
    boxes = np.asarray([[0.1, 0.2, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0], [0.5, 0.7, 0.9, 1.2]], np.float32)
    got = paste_masks(masks, boxes, 20, 17).numpy()
    assert got.shape == (3, 20, 17)
    np.testing.assert_allclose(got, paste_masks_numpy(masks, boxes, 20, 17), atol=1e-5)
    # A full mask on the whole image is ~1 everywhere except half a mask pixel at the border.
    full = paste_masks(np.ones((1, 28, 28), np.float32), np.asarray([[0, 0, 1, 1]], np.float32), 56, 56).numpy()
    np.testing.assert_allclose(full[0, 1:-1, 1:-1], 1.0, atol=1e-6)
    # Dynamic output size (the exporter passes the original image size as a tensor).
    dyn = paste_masks(masks, boxes, tf.constant(20), tf.constant(17)).numpy()
    np.testing.assert_allclose(dyn, got, atol=1e-6)


def _sampling_case(seed):
    rng = np.random.default_rng(seed)
    batch, num_props, num_gt = 2, 80, 6
    gt = random_boxes(rng, (batch, num_gt), min_side=10)
    gt_valid = np.arange(num_gt)[None, :] < np.asarray([[5], [3]])
    gt[~gt_valid] = 0.0
    crowd = np.zeros((batch, num_gt), bool)
    crowd[0, 4] = True
    classes = np.where(gt_valid, rng.integers(1, 5, (batch, num_gt)), 0).astype(np.int32)
    # Half the proposals are jittered gt boxes (foreground), half random.
    jitter = gt[:, rng.integers(0, 3, num_props // 2)] + rng.normal(0, 2, (batch, num_props // 2, 4))
    props = np.concatenate([jitter, random_boxes(rng, (batch, num_props // 2))], axis=1).astype(np.float32)
    props_valid = np.ones((batch, num_props), bool)
    props_valid[:, -5:] = False
    return props, props_valid, gt, classes, gt_valid, crowd


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_rois_invariants(seed):
    props, props_valid, gt, classes, gt_valid, crowd = _sampling_case(seed)
    config = ROISamplingConfig(num_samples=32, fg_fraction=0.25)
    out = sample_rois(props, props_valid, gt, classes, gt_valid, crowd, config)
    rois, is_fg = out["rois"].numpy(), out["is_fg"].numpy()
    weights, matched = out["sample_weights"].numpy(), out["matched_index"].numpy()
    assert rois.shape == (2, 32, 4) and out["classes"].shape == (2, 32)
    candidates = np.concatenate([props, gt], axis=1)
    cand_valid = np.concatenate([props_valid, gt_valid & ~crowd], axis=1)
    for b in range(2):
        n_fg = is_fg[b].sum()
        assert 0 < n_fg <= 8, "at most fg_fraction foreground"
        assert is_fg[b, :n_fg].all() and not is_fg[b, n_fg:].any(), "foreground first"
        assert weights[b].sum() == 32, "enough candidates: no filler"
        usable = gt_valid[b] & ~crowd[b]
        iou = np.where(usable[None], pairwise_iou_numpy(rois[b], gt[b]), -1.0)
        assert (iou.max(1)[is_fg[b]] >= 0.5).all()
        assert (iou.max(1)[~is_fg[b]] < 0.5).all()
        np.testing.assert_array_equal(matched[b][is_fg[b]], iou.argmax(1)[is_fg[b]])
        assert (out["classes"].numpy()[b][is_fg[b]] == classes[b][matched[b][is_fg[b]]]).all()
        assert (out["classes"].numpy()[b][~is_fg[b]] == 0).all()
        # Every sampled ROI is a valid candidate; crowd boxes are never foreground.
        valid_rows = {tuple(np.round(r, 3)) for r in candidates[b][cand_valid[b]]}
        assert all(tuple(np.round(r, 3)) in valid_rows for r in rois[b])
        assert not np.isin(matched[b][is_fg[b]], np.flatnonzero(crowd[b])).any()


def test_sample_rois_pads_with_zero_weight_when_short_and_compiles():
    props, props_valid, gt, classes, gt_valid, crowd = _sampling_case(0)
    props_valid[:] = False
    config = ROISamplingConfig(num_samples=64, fg_fraction=0.25, add_gt_boxes=True)
    fn = tf.function(lambda *a: sample_rois(*a, config), jit_compile=True, autograph=False)
    out = fn(props, props_valid, gt, classes, gt_valid, crowd)
    # Only the usable gt boxes themselves remain: 4 (one crowd excluded) and 3, all foreground.
    np.testing.assert_array_equal(out["sample_weights"].numpy().sum(1), [4, 3])
    np.testing.assert_array_equal(out["is_fg"].numpy().sum(1), [4, 3])


def test_crop_mask_targets_matches_reference():
    rng = np.random.default_rng(0)
    masks = (rng.uniform(0, 1, (1, 3, 12, 12)) > 0.4).astype(np.float32)
    gt = np.asarray([[[10, 10, 50, 40], [0, 0, 20, 20], [30, 5, 90, 70]]], np.float32)
    matched = np.asarray([[0, 2, 1, 0]], np.int32)
    rois = np.asarray([[[12, 8, 45, 44], [30, 5, 90, 70], [5, 5, 15, 25], [10, 10, 50, 40]]], np.float32)
    got = crop_mask_targets(masks, gt, matched, rois, 8).numpy()
    assert got.shape == (1, 4, 8, 8)
    for r in range(4):
        want = crop_mask_target_numpy(masks[0, matched[0, r]], gt[0, matched[0, r]], rois[0, r], 8)
        np.testing.assert_array_equal(got[0, r], want)
    # A ROI equal to its gt box sees the whole (box-cropped) mask resampled.
    full = crop_mask_targets(np.ones((1, 1, 12, 12), np.float32), gt[:, :1], np.zeros((1, 1), np.int32), gt[:, :1], 6)
    assert full.numpy().all()


def test_select_foreground_caps_to_a_random_subset_and_pads():
    is_fg = tf.constant([[True] * 6 + [False] * 4, [False, True, False, False, True] + [False] * 5])
    picks = []
    for seed in range(6):
        index, chosen = select_foreground(is_fg, 3, seed=seed)
        index, chosen = index.numpy(), chosen.numpy()
        assert chosen[0].all() and set(index[0]) <= set(range(6)) and len(set(index[0])) == 3
        assert chosen[1].tolist() == [True, True, False] and set(index[1][:2]) == {1, 4}
        assert not is_fg.numpy()[1, index[1][2]]  # the padding row is not foreground
        picks.append(tuple(sorted(index[0])))
    assert len(set(picks)) > 1  # a random subset, not always the first rows


def test_mask_training_rois_default_is_32_of_the_128_foreground_slots():
    """Issue 16: by default the mask head trains on at most 32 foreground ROIs per image (of the 128 slots
    of 512 samples at 1/4 foreground), every one of them when there are fewer, padding rows not foreground;
    max_rois 0 keeps every slot (the seed's behaviour)."""
    from hierseg.config.model import MaskHeadConfig, ROISamplingConfig

    sampling, cap = ROISamplingConfig(), MaskHeadConfig().max_rois
    assert (sampling.num_samples, sampling.fg_fraction, cap) == (512, 0.25, 32)
    n_fg = [10, 90]  # image 0 below the cap, image 1 above it
    is_fg = np.zeros((2, 512), bool)
    for b, n in enumerate(n_fg):
        is_fg[b, :n] = True
    rows = np.tile(np.arange(512, dtype=np.int32), (2, 1))
    sampled = {
        "rois": tf.constant(np.stack([rows] * 4, -1).astype(np.float32)),
        "classes": tf.constant(np.where(is_fg, rows % 7 + 1, 0)),
        "is_fg": tf.constant(is_fg),
        "matched_index": tf.constant(rows % 5),
    }
    got = {k: v.numpy() for k, v in mask_training_rois(sampled, sampling, cap).items()}
    assert got["rois"].shape == (2, 32, 4) and got["is_fg"].shape == (2, 32)
    picked = got["rois"][..., 0].astype(int)
    assert set(picked[0][got["is_fg"][0]]) == set(range(10))  # all 10 foreground ROIs of image 0
    assert got["is_fg"][1].all() and set(picked[1]) <= set(range(90)) and len(set(picked[1])) == 32
    np.testing.assert_array_equal(got["classes"], np.where(got["is_fg"], picked % 7 + 1, 0))
    np.testing.assert_array_equal(got["matched_index"], picked % 5)
    every = mask_training_rois(sampled, sampling, 0)
    assert every["rois"].shape == (2, 128, 4) and int(tf.reduce_sum(tf.cast(every["is_fg"], tf.int32))) == 100
