"""COCO RLE and challenge EncodedMask codecs against pycocotools and slow numpy references."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from hierseg.oid.mask_codec import (
    MaskCodecError,
    decode_counts,
    decode_oid_mask,
    decode_rle,
    encode_oid_mask,
    encode_rle,
    oid_mask_from_rle,
    rle_from_oid_mask,
)


def runs_reference(mask: np.ndarray) -> list[int]:
    """Slow reference: column-major run lengths starting with a (possibly empty) run of zeros."""
    flat = mask.T.reshape(-1).astype(bool)
    runs, value, n = [], False, 0
    for v in flat:
        if v == value:
            n += 1
        else:
            runs.append(n)
            value, n = v, 1
    runs.append(n)
    return runs


def random_masks(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        kind = i % 5
        if kind == 0:
            m = np.zeros((h, w), bool)
        elif kind == 1:
            m = np.ones((h, w), bool)
        elif kind == 2:  # blobs: long runs, large deltas between runs
            m = np.zeros((h, w), bool)
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
        else:  # noise at random density
            m = rng.random((h, w)) < rng.random()
        yield m


def test_encode_rle_matches_pycocotools_and_round_trips():
    for m in random_masks(0, 300):
        rle = encode_rle(m)
        ref = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
        assert rle["size"] == [m.shape[0], m.shape[1]]
        assert rle["counts"] == ref["counts"]
        assert isinstance(rle["counts"], bytes)
        np.testing.assert_array_equal(decode_rle(rle), m)
        np.testing.assert_array_equal(decode_rle({"size": rle["size"], "counts": rle["counts"].decode()}), m)
        assert decode_rle(rle).dtype == bool


def test_decode_counts_matches_slow_reference():
    for m in random_masks(1, 300):
        np.testing.assert_array_equal(decode_counts(encode_rle(m)["counts"]), runs_reference(m))


def test_decode_counts_large_runs_and_big_deltas():
    # Runs long enough to need several 5-bit groups, with negative deltas between them.
    m = np.zeros((300, 400), bool)
    m[:, 3:350] = True
    m[10:290, 370:371] = True
    runs = decode_counts(encode_rle(m)["counts"])
    assert runs.sum() == m.size
    np.testing.assert_array_equal(runs, runs_reference(m[:, :]))


def test_uncompressed_counts_accepted():
    m = np.zeros((3, 4), bool)
    m[1:, 2] = True
    rle = {"size": [3, 4], "counts": runs_reference(m)}
    np.testing.assert_array_equal(decode_rle(rle), m)


def test_oid_encoded_mask_is_the_official_format():
    for m in random_masks(2, 100):
        s = encode_oid_mask(m)
        assert isinstance(s, str) and s.isascii()
        # The official decoder (oid_challenge_evaluation_utils): base64 -> zlib -> COCO counts, size [H, W].
        official = coco_mask.decode({"size": list(m.shape), "counts": zlib.decompress(base64.b64decode(s))})
        np.testing.assert_array_equal(official.astype(bool), m)
        # The Kaggle reference encoder gives the same string.
        counts = coco_mask.encode(np.asfortranarray(m.reshape(*m.shape, 1).astype(np.uint8)))[0]["counts"]
        assert s == base64.b64encode(zlib.compress(counts, zlib.Z_BEST_COMPRESSION)).decode("ascii")
        np.testing.assert_array_equal(decode_oid_mask(s, *m.shape), m)
        rle = rle_from_oid_mask(s, *m.shape)
        assert rle == encode_rle(m)
        assert oid_mask_from_rle(rle) == s
        assert oid_mask_from_rle({"size": rle["size"], "counts": rle["counts"].decode()}) == s


def test_size_order_is_height_width():
    m = np.zeros((5, 9), bool)
    m[0, 8] = True  # top-right corner
    m[4, 0] = True  # bottom-left corner
    s = encode_oid_mask(m)
    out = decode_oid_mask(s, 5, 9)
    assert out.shape == (5, 9)
    np.testing.assert_array_equal(out, m)
    # [W, H] has the same pixel count, so only the order tells them apart: it gives a different mask.
    assert not np.array_equal(decode_oid_mask(s, 9, 5), m.T)
    with pytest.raises(MaskCodecError):  # a wrong pixel count is caught, never decoded out of bounds
        decode_oid_mask(s, 5, 10)


@pytest.mark.parametrize(
    "bad, what",
    [
        ("not base64 !!", "not base64"),
        (base64.b64encode(b"plain, not zlib").decode(), "not a zlib stream"),
        (base64.b64encode(zlib.compress(b"\x01\x02")).decode(), "outside the COCO alphabet"),
        (base64.b64encode(zlib.compress(b"0o")).decode(), "ends inside a run"),  # 'o' = 63 has the 'more' bit
    ],
)
def test_undecodable_strings_raise(bad, what):
    with pytest.raises(MaskCodecError, match=what):
        decode_oid_mask(bad, 4, 4)


def test_wrong_pixel_count_raises_before_decoding():
    s = encode_oid_mask(np.ones((10, 10), bool))
    with pytest.raises(MaskCodecError, match="100 pixels.*size \\[20, 20\\]"):
        rle_from_oid_mask(s, 20, 20)
    with pytest.raises(MaskCodecError, match="add up"):
        decode_rle({"size": [2, 2], "counts": [1, 1]})
    with pytest.raises(MaskCodecError, match="'size'"):
        decode_rle({"counts": b"0"})


def test_encode_rejects_non_2d():
    with pytest.raises(ValueError, match="\\[H, W\\]"):
        encode_rle(np.zeros((2, 3, 1), bool))
