"""Nearest-neighbour resizing of masks, exactly as PIL's ``Image.resize(size, NEAREST)``: one convention.

Open Images stores masks below image resolution; data preparation, the challenge metric's ground
truth and evaluation all bring them to the image size here, so that every stage (and a user who
builds the official metric's ground-truth CSV with PIL) sees the same pixels. Bit-for-bit equality
with PIL on random sizes is tested (tests/test_rle.py).
"""

from __future__ import annotations

import functools

import numpy as np

from hierseg.rle import decode_rle, encode_resampled


@functools.lru_cache(maxsize=4096)  # images share sizes: the tables are reused (returned read-only)
def nearest_indices(source_size: int, target_size: int) -> np.ndarray:
    """The source pixel of each target pixel along one axis, exactly as PIL's ``Image.resize(NEAREST)``.

    PIL (``ImagingScaleAffine`` in libImaging/Geometry.c) steps a double ``pos`` from ``scale / 2`` by
    ``scale = source_size / target_size`` and truncates it, adding the steps one by one; on a pixel
    boundary the rounding of that running sum, not the exact centre ``(i + 0.5) * scale``, decides the
    pixel. ``np.cumsum`` adds in the same order, so the indices are PIL's bit for bit. An index that
    lands outside the source (possible only through rounding) is returned as ``source_size``, which
    :func:`resize_nearest` reads as 0, as PIL fills such pixels with 0.

    Returns:
      [target_size] int64, non-decreasing, in [0, source_size].
    """
    if target_size <= 0:
        return np.zeros([0], np.int64)
    scale = float(source_size) / float(target_size)
    steps = np.full(target_size, scale, np.float64)
    steps[0] = scale * 0.5
    idx = np.minimum(np.cumsum(steps).astype(np.int64), source_size)  # >= 0: truncation is PIL's COORD()
    idx.flags.writeable = False
    return idx


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w] -> [height, width] nearest-neighbour resize, equal to PIL's ``resize((width, height), NEAREST)``.

    The indices are :func:`nearest_indices` (PIL's convention: pixel centres, which keeps a mask
    centred; OpenCV's ``INTER_NEAREST`` shifts it by up to half a source pixel towards the top-left).
    Data preparation (:meth:`~hierseg.oid.mask_zip.MaskZipReader.read_resized`) and the challenge
    metric's ground truth (:meth:`~hierseg.oid.mask_zip.MaskZipReader.read_resized_rle`) both resize
    this way, so ground truth built with PIL by a user (as the official metric's CSV usually is) is
    the same mask.
    """
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    if (h, w) == (height, width):
        return mask
    rows, cols = nearest_indices(h, height), nearest_indices(w, width)
    padded = np.zeros((h + 1, w + 1, *mask.shape[2:]), mask.dtype)
    padded[:h, :w] = mask  # index h / w reads zeros
    return padded[rows[:, None], cols[None, :]]


def resize_rle(rle: dict, height: int, width: int) -> dict:
    """A COCO RLE mask resized to [height, width] as :func:`resize_nearest` does (bytes counts); the
    full-size mask is never built (:func:`hierseg.rle.encode_resampled`)."""
    mask = decode_rle(rle)
    return encode_resampled(mask, nearest_indices(mask.shape[0], height), nearest_indices(mask.shape[1], width))
