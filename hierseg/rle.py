"""COCO run-length encoded masks: every operation the host side needs, in one place.

A **COCO RLE** is ``{"size": [H, W], "counts": bytes}``: column-major (Fortran order) run lengths,
starting with a (possibly empty) run of zeros, in pycocotools' compressed string form. Masks of the
host side (:class:`~hierseg.detections.Detections`, the challenge metric's ground truth) are kept in
this form, at the original image size; nothing here decodes a mask to a dense array unless its name
says so (:func:`decode_rle`, :func:`decode_rles`).

pycocotools does the run-length work in C. Two of its traps are handled here:

* ``mask.area`` fails for 256 or more masks at once under NumPy 2 (it builds a uint8 array holding
  the count): :func:`rle_areas` calls it in chunks of 255.
* its decoder does not bounds-check the runs: :func:`checked_rle` validates a counts string
  (alphabet, truncation, negative runs, total ``H * W``) before pycocotools sees it.

The challenge's ``EncodedMask`` (base64 + zlib around the counts) is in :mod:`hierseg.oid.mask_codec`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as coco_mask

from hierseg.errors import UsageError

_AREA_CHUNK = 255  # pycocotools' area() keeps its mask count in a uint8 array


class RleError(UsageError):
    """An RLE that cannot be decoded (bad characters, runs not covering the size, ...): a ValueError,
    reported by the `hierseg` command as one line (bad input, :class:`hierseg.errors.UsageError`).

    ``index``: for the functions checking many strings at once, the position of the first bad one.
    """

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


# ------------------------------------------------------------------------------------ encode
def encode_rle(mask: np.ndarray) -> dict:
    """[H, W] mask (bool or 0/1) -> COCO RLE ``{"size": [H, W], "counts": bytes}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_rle: expected a [H, W] mask, got shape {mask.shape}")
    return encode_rles(mask[None])[0]


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


def encode_rles(masks: np.ndarray) -> list[dict]:
    """[N, H, W] masks (bool or 0/1) -> N COCO RLEs (bytes counts, ``size`` as a list of ints)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode_rles: expected [N, H, W] masks, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    m = np.asfortranarray(masks.astype(bool, copy=False).astype(np.uint8).transpose(1, 2, 0))
    return [{"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"]} for r in coco_mask.encode(m)]


def rle_from_runs(runs: np.ndarray, height: int, width: int) -> dict:
    """Column-major run lengths (zeros first, summing to ``height * width``) -> COCO RLE."""
    runs = np.asarray(runs, np.int64).reshape([-1])
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise RleError(f"runs add up to {int(runs.sum())} pixels, size {[height, width]} has {height * width}")
    rle = coco_mask.frPyObjects({"size": [int(height), int(width)], "counts": runs.tolist()}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"]}


def encode_resampled(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> dict:
    """RLE of ``mask[rows][:, cols]`` without building that (large) array.

    For nearest-neighbour upscaling of low-resolution masks (:func:`hierseg.oid.mask_zip.nearest_indices`):
    the work is proportional to the small mask's size plus the number of runs of the result.

    Args:
      mask: [h, w] bool, the source.
      rows: [H] int, non-decreasing: the source row of each output row, in [0, h]; ``h`` (outside
        the source) gives zeros.
      cols: [W] int in [0, w]: the source column of each output column; ``w`` gives zeros.
    Returns:
      The COCO RLE of the [H, W] result.
    """
    mask = np.asarray(mask, bool)
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    height, width = len(rows), len(cols)
    if height * width == 0:
        return {"size": [height, width], "counts": b""}
    step = np.diff(rows)
    if (step < 0).any():
        raise ValueError("encode_resampled: rows must be non-decreasing")
    h, w = mask.shape
    if rows[-1] >= h or (len(cols) and cols.max() >= w):  # indices h / w read a zero row / column
        padded = np.zeros((h + 1, w + 1), bool)
        padded[:h, :w] = mask
        mask = padded
    first_y = np.concatenate([[0], np.flatnonzero(step) + 1])  # first output row of each used source row
    used = rows[first_y]
    sub_t = np.ascontiguousarray((mask if len(used) == mask.shape[0] else mask[used]).T)  # [w', U] column-major
    flat = np.flatnonzero(sub_t[:, 1:] != sub_t[:, :-1])  # value changes down each column, by column then row
    src_col, k = np.divmod(flat, max(len(used) - 1, 1))
    change_row = first_y[k + 1]
    per_col = np.bincount(src_col, minlength=sub_t.shape[0])
    first = np.concatenate([[0], np.cumsum(per_col)])
    n = per_col[cols]  # changes inside each output column
    rank = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # rank of a change in its column
    changes = change_row[np.repeat(first[cols], n) + rank] + np.repeat(np.arange(width) * height, n)
    top, bottom = sub_t[cols, 0], sub_t[cols, -1]
    joins = (np.flatnonzero(top[1:] != bottom[:-1]) + 1) * height  # value changes across a column edge
    starts = [0] if top[0] else []  # a mask starting with 1 has an empty first run of zeros
    edges = np.sort(np.concatenate([np.asarray(starts, np.int64), changes, joins]))
    return rle_from_runs(np.diff(np.concatenate([[0], edges, [height * width]])), height, width)


# ------------------------------------------------------------------------------------ decode
def _ascii(counts: bytes | str) -> bytes:
    if isinstance(counts, str):
        try:
            return counts.encode("ascii")
        except UnicodeEncodeError as e:
            raise RleError(f"RLE counts contain non-ASCII characters: {e}") from None
    return bytes(counts)


def _segmented_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sums of ``values`` restarting where ``segment`` (non-decreasing) changes."""
    total = np.cumsum(values)
    if not len(values):
        return total
    start = np.concatenate([[True], segment[1:] != segment[:-1]])
    before = (total - values)[start]  # the running sum just before each segment
    return total - np.repeat(before, np.diff(np.concatenate([np.flatnonzero(start), [len(values)]])))


def decode_counts_many(counts: Sequence[bytes | str]) -> tuple[np.ndarray, np.ndarray]:
    """Many COCO compressed counts strings -> their run lengths, in one vectorized pass.

    Vectorized port of pycocotools' ``rleFrString``: each run is a little-endian sequence of 5-bit
    groups in characters ``48 + v`` (bit 0x20 = more groups follow, bit 0x10 of the last = negative);
    from the fourth run of a string on, each value is a delta to the run two places before.

    Returns:
      (runs [R] int64, string [R] int64: the index in ``counts`` of each run), strings in order.
    Raises:
      RleError: with ``index`` the first bad string, for characters outside the alphabet, a
        truncated run, a run of more than 12 characters or a negative run.
    """
    raw = [_ascii(x) for x in counts]
    lengths = np.fromiter((len(x) for x in raw), np.int64, len(raw))

    def fail(index: int, what: str) -> RleError:
        return RleError(f"RLE counts {what}", index)

    c = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros([0], np.int64), np.zeros([0], np.int64)
    string_of_char = np.repeat(np.arange(len(raw)), lengths)
    bad = np.flatnonzero((c < 0) | (c > 63))
    if len(bad):
        raise fail(int(string_of_char[bad[0]]), "contain characters outside the COCO alphabet ('0'..'o')")
    more = (c & 0x20) != 0
    last = np.cumsum(lengths)[lengths > 0] - 1
    truncated = last[more[last]]
    if len(truncated):
        raise fail(int(string_of_char[truncated[0]]), "string ends inside a run")
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    sizes = ends - starts + 1
    if sizes.max() > 12:
        raise fail(int(string_of_char[ends[np.argmax(sizes > 12)]]), "have a run longer than 12 characters")
    k = np.arange(c.size) - np.repeat(starts, sizes)  # position of each character inside its run
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] |= -1 << (5 * (k[ends][negative] + 1))
    string = string_of_char[ends]
    per_string = np.bincount(string, minlength=len(raw))
    rank = np.arange(len(x)) - (np.cumsum(per_string) - per_string)[string]  # run index inside its string
    # runs[i] = x[i] + runs[i - 2] for ranks i > 2: cumulative sums over odd ranks and even ranks >= 2.
    runs = x.copy()
    for pick in (rank % 2 == 1, (rank % 2 == 0) & (rank >= 2)):
        runs[pick] = _segmented_cumsum(x[pick], string[pick])
    negative_runs = np.flatnonzero(runs < 0)
    if len(negative_runs):
        raise fail(int(string[negative_runs[0]]), "decode to a negative run length")
    return runs, string


def decode_counts(counts: bytes | str) -> np.ndarray:
    """A COCO compressed counts string -> its run lengths, int64 ``[R]`` (zeros run first).

    Raises:
      RleError: as :func:`decode_counts_many`.
    """
    return decode_counts_many([counts])[0]


def count_pixels_many(counts: Sequence[bytes | str]) -> np.ndarray:
    """The pixels covered by each of many compressed counts strings (sum of its runs): [N] int64.

    Raises:
      RleError: as :func:`decode_counts_many`.
    """
    runs, string = decode_counts_many(counts)
    return np.bincount(string, weights=runs, minlength=len(counts)).astype(np.int64)


def check_counts_many(counts: Sequence[bytes | str], height: int, width: int) -> None:
    """Validates many compressed counts strings of masks of one size at once.

    Raises:
      RleError: as :func:`decode_counts_many`, or when a string's runs do not add up to
        ``height * width``; ``index`` is the first bad string.
    """
    totals = count_pixels_many(counts)
    wrong = np.flatnonzero(totals != height * width)
    if len(wrong):
        i = int(wrong[0])
        raise RleError(f"RLE runs add up to {int(totals[i])} pixels, size {[height, width]} has {height * width}", i)


def checked_rle(rle: dict) -> dict:
    """Validates an RLE dict (compressed counts, or an uncompressed list of runs) -> bytes counts.

    Raises:
      RleError: for a missing size or counts, a bad counts string, or runs not covering ``H * W``.
    """
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise RleError(f"not a COCO RLE dict with 'size' [H, W] and 'counts': {e}") from None
    if h < 0 or w < 0:
        raise RleError(f"RLE size must be non-negative, got {[h, w]}")
    if isinstance(counts, (list, tuple, np.ndarray)):
        runs = np.asarray(counts, np.int64).reshape([-1])
        if (runs < 0).any():
            raise RleError("RLE counts contain a negative run length")
        return rle_from_runs(runs, h, w)
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    check_counts_many([counts], h, w)
    return {"size": [h, w], "counts": bytes(counts)}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE (bytes or str compressed counts, or a list of runs), validated -> [H, W] bool."""
    rle = checked_rle(rle)
    h, w = rle["size"]
    if h * w == 0:
        return np.zeros([h, w], bool)
    return coco_mask.decode(rle).astype(bool)


def decode_rles(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """N trusted RLEs of size [height, width] (e.g. made by :func:`encode_rles`) -> [N, H, W] bool."""
    if not rles:
        return np.zeros([0, height, width], bool)
    return coco_mask.decode(list(rles)).transpose(2, 0, 1).astype(bool)


# ------------------------------------------------------------------------------ measurements
def rle_areas(rles: Sequence[dict]) -> np.ndarray:
    """N RLEs -> [N] int64 pixel counts (any N: pycocotools is called in chunks of 255)."""
    if not rles:
        return np.zeros([0], np.int64)
    rles = list(rles)
    return np.concatenate(
        [
            np.asarray(coco_mask.area(rles[i : i + _AREA_CHUNK]), np.int64).reshape([-1])
            for i in range(0, len(rles), _AREA_CHUNK)
        ]
    )


def rle_boxes(rles: Sequence[dict]) -> np.ndarray:
    """Tight boxes of RLE masks: [N, 4] float64 normalized (ymin, xmin, ymax, xmax); zeros when empty.

    Pixel edges as :func:`tight_boxes` (and the official metric's ``_to_normalized_box``): a mask
    covering rows y0..y1 has ymin = y0 / H, ymax = (y1 + 1) / H.
    """
    if not rles:
        return np.zeros([0, 4], np.float64)
    xywh = np.asarray(coco_mask.toBbox(list(rles)), np.float64).reshape([-1, 4])
    hw = np.array([[int(r["size"][0]), int(r["size"][1])] for r in rles], np.float64)
    h, w = hw[:, 0], hw[:, 1]
    return np.stack(
        [xywh[:, 1] / h, xywh[:, 0] / w, (xywh[:, 1] + xywh[:, 3]) / h, (xywh[:, 0] + xywh[:, 2]) / w], axis=1
    )


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] dense masks -> [N, 4] float32 normalized (ymin, xmin, ymax, xmax); zeros when empty."""
    masks = np.asarray(masks).astype(bool)
    n, h, w = masks.shape
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    out = np.zeros([n, 4], np.float32)
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(ys):
            out[i] = [ys[0] / h, xs[0] / w, (ys[-1] + 1) / h, (xs[-1] + 1) / w]
    return out


def _check_sizes(rles_a: Sequence[dict], rles_b: Sequence[dict]) -> None:
    sizes = {(int(r["size"][0]), int(r["size"][1])) for r in (*rles_a, *rles_b)}
    if len(sizes) > 1:
        raise ValueError(f"masks of different sizes cannot be compared: {sorted(sizes)}")


def pairwise_intersections(
    rles_a: Sequence[dict], rles_b: Sequence[dict], *, areas_a: np.ndarray | None = None, check_sizes: bool = True
) -> np.ndarray:
    """Pixel counts of ``a_i AND b_j``: [A, B] int64.

    pycocotools' crowd IoU is ``|a ∩ b| / |a|``, so the intersection is that ratio times ``|a|``,
    rounded (the ratio of two integers below 2**31 is exact to far better than half a pixel).

    Args:
      areas_a: the areas of ``rles_a`` when the caller has them (saves a pass over the runs).
    Raises:
      ValueError: if the masks do not all have the same size (unless ``check_sizes`` is False because
        the caller checked them: pycocotools itself returns -1 for such pairs).
    """
    n_a, n_b = len(rles_a), len(rles_b)
    if n_a == 0 or n_b == 0:
        return np.zeros([n_a, n_b], np.int64)
    if check_sizes:
        _check_sizes(rles_a, rles_b)
    if areas_a is None:
        areas_a = rle_areas(rles_a)
    ratio = np.asarray(coco_mask.iou(list(rles_a), list(rles_b), [1] * n_b), np.float64).reshape([n_a, n_b])
    return np.rint(ratio * np.asarray(areas_a, np.float64)[:, None]).astype(np.int64)


def pairwise_iou(rles_a: Sequence[dict], rles_b: Sequence[dict]) -> np.ndarray:
    """Mask IoU ``|a ∩ b| / |a ∪ b|`` for every pair: [A, B] float64 in [0, 1] (0 when both are empty)."""
    areas_a, areas_b = rle_areas(rles_a), rle_areas(rles_b)
    inter = pairwise_intersections(rles_a, rles_b, areas_a=areas_a)
    union = areas_a[:, None] + areas_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def merge_rles(rles: Sequence[dict], *, intersect: bool = False) -> dict:
    """Union (or intersection) of RLEs of one size -> one RLE."""
    out = coco_mask.merge(list(rles), intersect=intersect)
    return {"size": [int(out["size"][0]), int(out["size"][1])], "counts": out["counts"]}
