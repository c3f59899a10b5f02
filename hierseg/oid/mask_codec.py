"""Mask codecs: COCO run-length encoding and the Open Images challenge ``EncodedMask``.

* A **COCO RLE** is ``{"size": [H, W], "counts": bytes}``: column-major (Fortran order) run lengths,
  starting with a run of zeros, in pycocotools' compressed string form.
* The challenge **EncodedMask** (submission ``PredictionString`` and ground-truth CSVs of the official
  metric) is ``base64(zlib.compress(COCO compressed counts, level 9))`` as ASCII text. It carries no
  size: decode it with the image's ``[height, width]`` (the submission CSV lists ImageWidth *before*
  ImageHeight; the size order here is always ``[H, W]``).

Everything undecodable (bad base64, bad zlib stream, counts that are not a COCO counts string, runs
that do not add up to ``H * W``) raises :class:`MaskCodecError` before pycocotools sees it: its C
decoder does not bounds-check the runs, so an unchecked string could write past the output buffer.
"""

from __future__ import annotations

import base64
import binascii
import zlib

import numpy as np
from pycocotools import mask as coco_mask

from hierseg.oid.errors import OidFormatError


class MaskCodecError(OidFormatError):
    """An RLE or EncodedMask that cannot be decoded."""


def encode_rle(mask: np.ndarray) -> dict:
    """[H, W] mask (bool or 0/1) -> COCO RLE ``{"size": [H, W], "counts": bytes}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_rle: expected a [H, W] mask, got shape {mask.shape}")
    m = np.asfortranarray(mask.astype(bool, copy=False).astype(np.uint8)[:, :, None])
    rle = coco_mask.encode(m)[0]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"]}


def encode_rle_window(window: np.ndarray, top: int, left: int, height: int, width: int) -> dict:
    """The COCO RLE of a ``height x width`` mask that is zero outside ``window`` placed at (top, left).

    Memory is proportional to the window, not the image: the runs are found inside the window and
    offset to the image's column-major order, so a 10000 x 8000 image never needs a full-size array.
    The result is exactly :func:`encode_rle` of the full mask.

    Args:
      window: [h, w] bool, inside the image (top + h <= height, left + w <= width).
    """
    window = np.asarray(window, dtype=bool)
    h, w = window.shape
    if top < 0 or left < 0 or top + h > height or left + w > width:
        raise ValueError(f"encode_rle_window: window {h}x{w} at ({top}, {left}) is outside {height}x{width}")
    # Per window column (image order is column-major), +1 where a run of ones starts, -1 past its end.
    cols = np.zeros((w, h + 2), np.int8)
    cols[:, 1:-1] = window.T
    col, pos = np.nonzero(np.diff(cols, axis=1))  # row-major over [w, h + 1]: image order
    flat = (left + col).astype(np.int64) * height + top + pos  # start and end (exclusive) of each run
    starts, ends = flat[0::2], flat[1::2]
    if len(starts):
        joined = starts[1:] == ends[:-1]  # a run ending at a column's bottom going on at the next top
        starts, ends = starts[np.r_[True, ~joined]], ends[np.r_[~joined, True]]
    bounds = np.stack([starts, ends], axis=1).reshape(-1)
    counts = np.diff(np.concatenate([[0], bounds, [height * width]]))
    if len(counts) > 1 and counts[-1] == 0:  # ones up to the last pixel: pycocotools ends on that run
        counts = counts[:-1]
    rle = coco_mask.frPyObjects({"counts": counts.tolist(), "size": [height, width]}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"]}


def decode_counts(counts: bytes | str) -> np.ndarray:
    """A COCO compressed counts string -> its run lengths, int64 ``[R]`` (zeros run first).

    Vectorized port of pycocotools' ``rleFrString``: each run is a little-endian sequence of 5-bit
    groups in characters ``48 + v`` (bit 0x20 = more groups follow, bit 0x10 of the last = negative);
    from the fourth run on, each value is a delta to the run two places before.

    Raises:
      MaskCodecError: for characters outside the alphabet, a truncated run, or a negative run.
    """
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError as e:
            raise MaskCodecError(f"RLE counts contain non-ASCII characters: {e}") from None
    c = np.frombuffer(bytes(counts), dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros([0], np.int64)
    if (c < 0).any() or (c > 63).any():
        raise MaskCodecError("RLE counts contain characters outside the COCO alphabet ('0'..'o')")
    more = (c & 0x20) != 0
    if more[-1]:
        raise MaskCodecError("RLE counts string ends inside a run")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    group = np.repeat(np.arange(len(ends)), ends - starts + 1)
    k = np.arange(c.size) - starts[group]  # position of each character inside its run
    if k.max() > 11:
        raise MaskCodecError("RLE counts string has a run longer than 12 characters")
    x = np.zeros(len(ends), np.int64)
    np.add.at(x, group, (c & 0x1F) << (5 * k))
    negative = (c[ends] & 0x10) != 0
    x[negative] |= -1 << (5 * (k[ends][negative] + 1))
    # runs[i] = x[i] + runs[i - 2] for i > 2: cumulative sums over odd indices and over even ones from 2.
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    if len(x) > 2:
        runs[2::2] = np.cumsum(x[2::2])
    if (runs < 0).any():
        raise MaskCodecError("RLE counts decode to a negative run length")
    return runs


def _checked_rle(rle: dict) -> dict:
    """Validates an RLE dict (compressed counts, or an uncompressed list) and returns bytes counts."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise MaskCodecError(f"not a COCO RLE dict with 'size' [H, W] and 'counts': {e}") from None
    if h < 0 or w < 0:
        raise MaskCodecError(f"RLE size must be non-negative, got {[h, w]}")
    if isinstance(counts, (list, tuple, np.ndarray)):
        runs = np.asarray(counts, np.int64).reshape([-1])
        if (runs < 0).any():
            raise MaskCodecError("RLE counts contain a negative run length")
        if runs.sum() != h * w:
            raise MaskCodecError(f"RLE runs add up to {runs.sum()} pixels, size {[h, w]} has {h * w}")
        counts = coco_mask.frPyObjects({"size": [h, w], "counts": [int(v) for v in runs]}, h, w)["counts"]
        return {"size": [h, w], "counts": counts}
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    total = int(decode_counts(counts).sum())
    if total != h * w:
        raise MaskCodecError(f"RLE runs add up to {total} pixels, size {[h, w]} has {h * w}")
    return {"size": [h, w], "counts": bytes(counts)}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE (bytes or str compressed counts, or a list of runs) -> [H, W] bool."""
    rle = _checked_rle(rle)
    h, w = rle["size"]
    if h * w == 0:
        return np.zeros([h, w], bool)
    return coco_mask.decode(rle).astype(bool)


def encode_oid_mask(mask: np.ndarray) -> str:
    """[H, W] mask -> challenge EncodedMask (ASCII ``base64(zlib(counts, level 9))``)."""
    return oid_mask_from_rle(encode_rle(mask))


def oid_mask_from_rle(rle: dict) -> str:
    """COCO RLE -> challenge EncodedMask, without decoding the mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    elif not isinstance(counts, bytes):
        counts = _checked_rle(rle)["counts"]
    return base64.b64encode(zlib.compress(counts, zlib.Z_BEST_COMPRESSION)).decode("ascii")


def rle_from_oid_mask(encoded: str | bytes, height: int, width: int) -> dict:
    """Challenge EncodedMask + image size -> validated COCO RLE (no dense decode).

    Raises:
      MaskCodecError: if the string is not base64, not a zlib stream, or its runs do not cover
        exactly ``height * width`` pixels (e.g. it was decoded with the wrong image size).
    """
    if isinstance(encoded, str):
        encoded = encoded.strip().encode("ascii", errors="replace")
    preview = encoded[:24].decode("ascii", errors="replace") + ("..." if len(encoded) > 24 else "")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MaskCodecError(f"EncodedMask {preview!r} is not base64: {e}") from None
    try:
        counts = zlib.decompress(raw)
    except zlib.error as e:
        raise MaskCodecError(f"EncodedMask {preview!r} is not a zlib stream: {e}") from None
    try:
        return _checked_rle({"size": [height, width], "counts": counts})
    except MaskCodecError as e:
        raise MaskCodecError(f"EncodedMask {preview!r} with size [{height}, {width}]: {e}") from None


def decode_oid_mask(encoded: str | bytes, height: int, width: int) -> np.ndarray:
    """Challenge EncodedMask + image size -> [height, width] bool."""
    return decode_rle(rle_from_oid_mask(encoded, height, width))
