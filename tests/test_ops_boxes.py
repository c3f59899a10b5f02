"""Anchors, box coding and IoU against their numpy references on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hierseg.config.model import AnchorConfig
from hierseg.ops.anchors import (
    anchors_per_location,
    generate_anchors,
    generate_anchors_numpy,
    level_shapes,
    num_anchors,
)
from hierseg.ops.box_coding import (
    BBOX_XFORM_CLIP,
    decode_boxes,
    decode_boxes_numpy,
    encode_boxes,
    encode_boxes_numpy,
)
from hierseg.ops.iou import pairwise_iou, pairwise_iou_numpy


def random_boxes(rng, shape, low=0.0, high=100.0, min_side=1.0, max_side=60.0):
    yx = rng.uniform(low, high, shape + (2,))
    hw = rng.uniform(min_side, max_side, shape + (2,))
    return np.concatenate([yx, yx + hw], axis=-1).astype(np.float32)


@pytest.mark.parametrize(
    "config",
    [AnchorConfig(), AnchorConfig(min_level=3, max_level=5, num_scales=3, aspect_ratios=[1.0, 2.0], anchor_size=4.0)],
)
def test_anchors_match_reference(config):
    size = 128
    got = generate_anchors(config, size).numpy()
    np.testing.assert_allclose(got, generate_anchors_numpy(config, size), atol=1e-4)
    assert got.shape == (num_anchors(config, size), 4)
    k = anchors_per_location(config)
    shapes = level_shapes(config, size)
    # First anchors: the top-left location of the finest level, centred on half its stride.
    stride = 2**config.min_level
    np.testing.assert_allclose((got[:k, 0] + got[:k, 2]) / 2, stride / 2)
    # Ratio r = width / height; area = (anchor_size * stride)^2 at scale 0.
    first = got[0]
    h, w = first[2] - first[0], first[3] - first[1]
    assert w / h == pytest.approx(config.aspect_ratios[0], rel=1e-5)
    assert h * w == pytest.approx((config.anchor_size * stride) ** 2, rel=1e-5)
    # (y, x, anchor) order: anchor k of the next x location follows anchor k-1 of this one.
    assert got[k, 1] + got[k, 3] > got[0, 1] + got[0, 3]
    assert sum(hh * ww * k for hh, ww in shapes.values()) == len(got)


def test_level_shapes_rejects_bad_size():
    with pytest.raises(ValueError, match="multiple"):
        level_shapes(AnchorConfig(max_level=6), 96)


@pytest.mark.parametrize("weights", [(10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)])
def test_box_coding_matches_reference_and_round_trips(weights):
    rng = np.random.default_rng(0)
    boxes, anchors = random_boxes(rng, (200,)), random_boxes(rng, (200,))
    deltas = encode_boxes(boxes, anchors, weights).numpy()
    np.testing.assert_allclose(deltas, encode_boxes_numpy(boxes, anchors, weights), rtol=1e-4, atol=1e-4)
    back = decode_boxes(deltas, anchors, weights).numpy()
    np.testing.assert_allclose(back, boxes, rtol=1e-4, atol=1e-3)
    random_deltas = rng.normal(0, 2, (200, 4)).astype(np.float32)
    np.testing.assert_allclose(
        decode_boxes(random_deltas, anchors, weights).numpy(),
        decode_boxes_numpy(random_deltas, anchors, weights),
        rtol=1e-4,
        atol=1e-2,
    )


def test_decode_clips_huge_sizes_and_broadcasts():
    anchors = np.asarray([[0.0, 0.0, 16.0, 16.0]], np.float32)
    deltas = np.asarray([[[0.0, 0.0, 1e4, 1e4]], [[0.0, 0.0, 0.0, 0.0]]], np.float32)  # [2, 1, 4]
    out = decode_boxes(deltas, anchors, (1.0, 1.0, 1.0, 1.0)).numpy()
    assert out.shape == (2, 1, 4)
    assert np.isfinite(out).all()
    assert out[0, 0, 2] - out[0, 0, 0] == pytest.approx(16 * np.exp(BBOX_XFORM_CLIP), rel=1e-4)
    np.testing.assert_allclose(out[1, 0], anchors[0])


def test_pairwise_iou_matches_reference_batched_with_padding():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, (3, 7)), random_boxes(rng, (3, 5))
    b[:, 3:] = 0.0  # padding rows
    got = pairwise_iou(a, b).numpy()
    assert got.shape == (3, 7, 5)
    for i in range(3):
        np.testing.assert_allclose(got[i], pairwise_iou_numpy(a[i], b[i]), atol=1e-6)
    assert (got[:, :, 3:] == 0).all()
    np.testing.assert_allclose(np.diagonal(pairwise_iou(a[0], a[0]).numpy()), 1.0, rtol=1e-6)
    assert pairwise_iou(tf.zeros([2, 4]), tf.zeros([3, 4])).numpy().sum() == 0.0


def test_paste_masks_traced_with_unknown_mask_size_matches_reference():
    # Callers that trace with relaxed shapes (reduce_retracing, serving signatures) give a [None, None, None] mask.
    import numpy as np
    import tensorflow as tf

    from hierseg.ops.mask_paste import paste_masks, paste_masks_numpy

    spec = [
        tf.TensorSpec([None, None, None]),
        tf.TensorSpec([None, 4]),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32),
    ]
    traced = tf.function(paste_masks, input_signature=spec)
    rng = np.random.default_rng(3)
    masks = rng.random([3, 9, 9]).astype(np.float32)
    boxes = np.array([[0.1, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0], [0.5, 0.4, 0.55, 0.45]], np.float32)
    np.testing.assert_allclose(traced(masks, boxes, 17, 13).numpy(), paste_masks_numpy(masks, boxes, 17, 13), atol=1e-5)
