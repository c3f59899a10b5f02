"""The Open Images challenge ``EncodedMask``: a COCO RLE's counts, zlib-compressed and base64-encoded.

The challenge **EncodedMask** (submission ``PredictionString`` and ground-truth CSVs of the official
metric) is ``base64(zlib.compress(COCO compressed counts, level 9))`` as ASCII text. It carries no
size: decode it with the image's ``[height, width]`` (the submission CSV lists ImageWidth *before*
ImageHeight; the size order here is always ``[H, W]``).

Everything undecodable (bad base64, bad zlib stream, counts that are not a COCO counts string, runs
that do not add up to ``H * W``) raises :class:`MaskCodecError` before pycocotools sees it.

COCO RLEs themselves (encode, decode, areas, overlaps) are :mod:`hierseg.rle`; ``encode_rle``,
``decode_rle`` and ``decode_counts`` are re-exported here for the readers of this package.
"""

from __future__ import annotations

import base64
import binascii
import zlib

import numpy as np

from hierseg.rle import RleError, checked_rle, decode_counts, decode_rle, encode_rle

__all__ = [
    "MaskCodecError",
    "decode_counts",
    "decode_oid_mask",
    "decode_rle",
    "encode_oid_mask",
    "encode_rle",
    "oid_mask_from_rle",
    "rle_from_oid_mask",
]

MaskCodecError = RleError  # an RLE or EncodedMask that cannot be decoded (one error type for both)


def encode_oid_mask(mask: np.ndarray) -> str:
    """[H, W] mask -> challenge EncodedMask (ASCII ``base64(zlib(counts, level 9))``)."""
    return oid_mask_from_rle(encode_rle(mask))


def oid_mask_from_rle(rle: dict) -> str:
    """COCO RLE -> challenge EncodedMask, without decoding the mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    elif not isinstance(counts, bytes):
        counts = checked_rle(rle)["counts"]
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
        return checked_rle({"size": [height, width], "counts": counts})
    except MaskCodecError as e:
        raise MaskCodecError(f"EncodedMask {preview!r} with size [{height}, {width}]: {e}") from None


def decode_oid_mask(encoded: str | bytes, height: int, width: int) -> np.ndarray:
    """Challenge EncodedMask + image size -> [height, width] bool."""
    return decode_rle(rle_from_oid_mask(encoded, height, width))
