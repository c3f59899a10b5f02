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
from collections.abc import Sequence

import numpy as np

from hierseg.rle import RleError, check_counts_many, checked_rle, decode_counts, decode_rle, encode_rle

__all__ = [
    "MaskCodecError",
    "decode_counts",
    "decode_oid_mask",
    "decode_rle",
    "encode_oid_mask",
    "encode_rle",
    "oid_mask_from_rle",
    "rle_from_oid_mask",
    "rles_from_oid_masks",
    "counts_from_oid_masks_unchecked",
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


def _preview(encoded: bytes) -> str:
    return encoded[:24].decode("ascii", errors="replace") + ("..." if len(encoded) > 24 else "")


def counts_from_oid_mask(encoded: str | bytes) -> bytes:
    """Challenge EncodedMask -> the COCO counts string inside it (not yet checked against a size).

    Raises:
      MaskCodecError: if the string is not base64 or not a zlib stream.
    """
    if isinstance(encoded, str):
        encoded = encoded.strip().encode("ascii", errors="replace")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MaskCodecError(f"EncodedMask {_preview(encoded)!r} is not base64: {e}") from None
    try:
        return zlib.decompress(raw)
    except zlib.error as e:
        raise MaskCodecError(f"EncodedMask {_preview(encoded)!r} is not a zlib stream: {e}") from None


def rles_from_oid_masks(encoded: Sequence[str | bytes], height: int, width: int) -> list[dict]:
    """Many EncodedMasks of one image -> validated COCO RLEs, checked in one vectorized pass.

    Raises:
      MaskCodecError: as :func:`rle_from_oid_mask`, with ``index`` the first bad mask.
    """
    counts = []
    for i, e in enumerate(encoded):
        try:
            counts.append(counts_from_oid_mask(e))
        except MaskCodecError as err:
            raise MaskCodecError(str(err), i) from None
    try:
        check_counts_many(counts, height, width)
    except MaskCodecError as err:
        e = encoded[err.index]
        preview = _preview(e.encode("ascii", errors="replace") if isinstance(e, str) else e)
        raise MaskCodecError(f"EncodedMask {preview!r} with size [{height}, {width}]: {err}", err.index) from None
    return [{"size": [int(height), int(width)], "counts": c} for c in counts]


def counts_from_oid_masks_unchecked(encoded: Sequence[str | bytes]) -> list[bytes] | None:
    """The counts strings of many EncodedMasks, or None if any is not base64 of a zlib stream (the
    caller then decodes them one by one for the message). Their runs are not checked here."""
    try:
        return [zlib.decompress(base64.b64decode(e, validate=True)) for e in encoded]
    except (binascii.Error, ValueError, zlib.error):
        return None


def rle_from_oid_mask(encoded: str | bytes, height: int, width: int) -> dict:
    """Challenge EncodedMask + image size -> validated COCO RLE (no dense decode).

    Raises:
      MaskCodecError: if the string is not base64, not a zlib stream, or its runs do not cover
        exactly ``height * width`` pixels (e.g. it was decoded with the wrong image size).
    """
    try:
        return rles_from_oid_masks([encoded], height, width)[0]
    except MaskCodecError as e:
        raise MaskCodecError(str(e)) from None


def decode_oid_mask(encoded: str | bytes, height: int, width: int) -> np.ndarray:
    """Challenge EncodedMask + image size -> [height, width] bool."""
    return decode_rle(rle_from_oid_mask(encoded, height, width))
