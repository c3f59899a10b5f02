"""hierseg.rle (the one RLE module) and the PIL nearest-neighbour resize, against dense numpy
references and PIL itself on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hierseg.mask_resize import nearest_indices, resize_nearest, resize_rle
from hierseg.rle import (
    decode_rles,
    encode_resampled,
    encode_rle,
    encode_rles,
    pairwise_intersections,
    pairwise_iou,
    rle_areas,
    rle_boxes,
    tight_boxes,
)


def dense_intersections(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """Reference: [A, H, W] and [B, H, W] bool -> [A, B] int64 intersections."""
    a = np.asarray(masks_a, bool).reshape(len(masks_a), -1).astype(np.int64)
    b = np.asarray(masks_b, bool).reshape(len(masks_b), -1).astype(np.int64)
    return a @ b.T


def dense_mask_iou(masks_a: np.ndarray, masks_b: np.ndarray) -> np.ndarray:
    """Reference: [A, H, W] and [B, H, W] bool -> [A, B] float64 IoU (0 when both are empty)."""
    inter = dense_intersections(masks_a, masks_b)
    area_a = np.asarray(masks_a, bool).reshape(len(masks_a), -1).sum(1)
    area_b = np.asarray(masks_b, bool).reshape(len(masks_b), -1).sum(1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def test_rle_overlaps_match_dense_reference():
    rng = np.random.default_rng(0)
    a = rng.random([7, 13, 17]) < 0.4
    b = rng.random([5, 13, 17]) < 0.3
    a[2] = False  # an empty mask
    ra, rb = [encode_rle(m) for m in a], [encode_rle(m) for m in b]
    np.testing.assert_array_equal(pairwise_intersections(ra, rb), dense_intersections(a, b))
    np.testing.assert_allclose(pairwise_iou(ra, rb), dense_mask_iou(a, b), rtol=1e-12)
    np.testing.assert_allclose(rle_boxes(ra), tight_boxes(a), rtol=1e-6)
    assert pairwise_iou(ra, []).shape == (7, 0)
    with pytest.raises(ValueError, match="different sizes"):
        pairwise_iou(ra, [encode_rle(np.ones([4, 4], bool))])


def test_areas_of_300_masks_do_not_overflow():
    # pycocotools' mask.area raises OverflowError for >= 256 masks under NumPy 2 (issue 10 case 4).
    masks = np.zeros([300, 20, 30], bool)
    for k in range(300):
        masks[k, : 1 + k % 20, : 1 + k % 30] = True
    areas = rle_areas(encode_rles(masks))
    np.testing.assert_array_equal(areas, masks.reshape(300, -1).sum(1))
    assert areas[299] == (1 + 299 % 20) * (1 + 299 % 30)
    np.testing.assert_array_equal(decode_rles(encode_rles(masks), 20, 30), masks)


def test_encode_resampled_matches_dense_indexing():
    rng = np.random.default_rng(1)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 70, 2))
        m = rng.random((h, w)) < rng.random()
        rows = np.sort(rng.integers(0, h + 1, out_h))  # h: outside, reads 0
        cols = rng.integers(0, w + 1, out_w)
        padded = np.zeros((h + 1, w + 1), bool)
        padded[:h, :w] = m
        assert encode_resampled(m, rows, cols) == encode_rle(padded[rows][:, cols])


def test_resize_nearest_is_pil_nearest_bit_for_bit():
    rng = np.random.default_rng(2)
    for k in range(150):
        h, w = (int(v) for v in rng.integers(1, 400, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 1100, 2))
        m = rng.random((h, w)) < 0.5
        pil = np.array(Image.fromarray(m.astype(np.uint8) * 255).resize((out_w, out_h), Image.NEAREST)) > 127
        np.testing.assert_array_equal(resize_nearest(m, out_h, out_w), pil, err_msg=f"{(h, w)} -> {(out_h, out_w)}")
        if k < 40:  # the RLE paths (the metric's ground truth, evaluation) give the same mask
            rle = encode_resampled(m, nearest_indices(h, out_h), nearest_indices(w, out_w))
            assert rle == encode_rle(pil) == resize_rle(encode_rle(m), out_h, out_w)


def test_nearest_indices_differ_from_exact_centres_where_pil_rounds():
    # PIL accumulates the step in doubles, so on exact pixel boundaries it may pick another pixel than
    # floor((i + 0.5) * src / dst) (the exact pixel centre), on random sizes as on small ones.
    assert nearest_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    assert nearest_indices(4, 2).tolist() == [1, 3]
    differs = 0
    for src in range(1, 200):
        for dst in range(1, 200, 7):
            pil = np.array(Image.fromarray(np.arange(src, dtype=np.int32)[None]).resize((dst, 1), Image.NEAREST))[0]
            np.testing.assert_array_equal(nearest_indices(src, dst), pil)
            differs += not np.array_equal(pil, (2 * np.arange(dst) + 1) * src // (2 * dst))
    assert differs > 0  # the exact-centre formula used before is not PIL's


def test_decode_counts_many_matches_one_by_one_and_names_the_bad_string():
    from hierseg.rle import RleError, check_counts_many, decode_counts, decode_counts_many

    rng = np.random.default_rng(3)
    masks = [rng.random((int(rng.integers(1, 30)), 9)) < rng.random() for _ in range(50)]
    counts = [encode_rle(m)["counts"] for m in masks] + [b""]
    runs, string = decode_counts_many(counts)
    for i, c in enumerate(counts):
        np.testing.assert_array_equal(runs[string == i], decode_counts(c))
        if i < len(masks):
            assert runs[string == i].sum() == masks[i].size
    same = [encode_rle(rng.random((7, 5)) < 0.5)["counts"] for _ in range(4)]
    check_counts_many(same, 7, 5)
    with pytest.raises(RleError, match="add up to 35 pixels, size \\[5, 5\\]") as e:
        check_counts_many(same, 5, 5)
    assert e.value.index == 0
    with pytest.raises(RleError, match="outside the COCO alphabet") as e:
        check_counts_many([*same[:2], b"3{", same[3]], 7, 5)
    assert e.value.index == 2
    with pytest.raises(RleError, match="ends inside a run") as e:
        decode_counts_many([same[0], b"0P"])  # 'P' has the continuation bit set
    assert e.value.index == 1
