"""`generate_annotations_only`: the training CSVs at full challenge scale, without pixels.

For benchmarks of everything that reads the annotation CSVs (readers, balancing, manifests): the real
2019 training set has 2,125,530 masks on 848,512 images over all 300 classes. This writes, for any
``num_masks >= num_images``:

* ``challenge-2019-train-segmentation-masks.csv``: ``num_masks`` rows on exactly ``num_images`` images;
  masks per class apportioned from the real per-class counts (exactly the real counts at full scale;
  every class at least once when ``num_masks >= 300``); random boxes, BoxIDs, PredictedIoU and Clicks
  in the real text formats. Masks per image are long-tailed (every image has at least one).
* ``challenge-2019-train-segmentation-bbox.csv``: the same boxes with identical coordinate text, plus
  box-only rows (IsGroupOf 0) and group-of rows (IsGroupOf 1) that have no mask.
* ``challenge-2019-train-segmentation-labels.csv``: Confidence 1 for each (image, class) with a box,
  Confidence 0 for random absent classes unrelated (not ancestor, descendant or same) to any present one.
* the real 300-class hierarchy JSON and class-description CSV.

No mask PNGs or images are written (the zips are not created). Everything is vectorized numpy and
pyarrow, formatted and written in chunks of rows, so memory stays bounded and the full scale takes
seconds. All rows are sorted by ImageID.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from hierseg.hierarchy import Hierarchy
from hierseg.oid import layout
from hierseg.synth import formats
from hierseg.synth.classes import read_real_counts
from hierseg.synth.writer import BBOX_CSV_HEADER, LABELS_CSV_HEADER, MASKS_CSV_HEADER, ChunkedCsv, write_metadata

CHUNK_ROWS = 1 << 18
MAX_CLICKS = 12


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Splits ``total`` into int64 parts proportional to ``weights`` (largest remainder, ties to the
    lower index); when ``total >= len(weights)`` every part is at least 1, taken from the largest parts.
    The parts sum to ``total`` exactly."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    parts = np.floor(exact).astype(np.int64)
    rest = total - int(parts.sum())
    parts[np.argsort(-(exact - parts), kind="stable")[:rest]] += 1
    if total >= len(w):
        for i in np.flatnonzero(parts == 0):
            parts[np.argmax(parts)] -= 1
            parts[i] = 1
    return parts


def _coord_strings(q: np.ndarray) -> pa.Array:
    return formats.decimal_strings(q, 6)


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """int64 ``[n, 4]`` quantized (6-decimal) boxes ``xmin, xmax, ymin, ymax`` inside [0, 1], non-empty."""
    size = np.clip(rng.lognormal(np.log(0.25), 0.8, size=(n, 2)), 0.005, 1.0)
    lo = rng.uniform(0, 1, size=(n, 2)) * (1 - size)
    qlo = formats.quantize(lo, 6)
    qhi = np.minimum(qlo + np.maximum(formats.quantize(size, 6), 1), 10**6)
    return np.stack([qlo[:, 0], qhi[:, 0], qlo[:, 1], qhi[:, 1]], axis=1)


def _unique_box_ids(rng: np.random.Generator, image_index: np.ndarray) -> np.ndarray:
    """uint64 ``[M]`` random 32-bit BoxIDs, distinct within each image (so MaskPaths are unique)."""
    box = rng.integers(0, 2**32, size=image_index.size, dtype=np.uint64)
    while True:
        key = (image_index.astype(np.uint64) << np.uint64(32)) | box
        order = np.argsort(key, kind="stable")
        dup = np.zeros(key.size, dtype=bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        if not dup.any():
            return box
        box[dup] = rng.integers(0, 2**32, size=int(dup.sum()), dtype=np.uint64)


@dataclass(frozen=True)
class _MaskRows:
    """The masks CSV as arrays, one entry per row, rows grouped by image (hence sorted by ImageID)."""

    image: np.ndarray  # int64 [M] index into the sorted ImageIDs
    cls: np.ndarray  # int64 [M] index into the hierarchy's classes
    boxes: np.ndarray  # int64 [M, 4] 6-decimal quantized xmin, xmax, ymin, ymax
    box_ids: np.ndarray  # uint64 [M] 32-bit BoxIDs, distinct within an image
    iou_q: np.ndarray  # int64 [M] PredictedIoU quantized to 5 decimals


@dataclass(frozen=True)
class _ExtraBoxes:
    """bbox CSV rows without a mask: ``n_box_only`` box-only rows, then ``n_group`` group-of rows."""

    image: np.ndarray  # int64 [n_box_only + n_group] image index (unsorted)
    cls: np.ndarray  # int64 [n_box_only + n_group] class index
    boxes: np.ndarray  # int64 [n_box_only + n_group, 4] as in _MaskRows.boxes
    n_box_only: int
    n_group: int


@dataclass(frozen=True)
class _Labels:
    """The labels CSV rows; a key is ``image * num_classes + class``."""

    keys: np.ndarray  # int64 [L] positives (sorted) then negatives (sorted)
    confidence: np.ndarray  # int64 [L] 1 for positives, 0 for verified negatives
    order: np.ndarray  # int64 [L] row order: by image, positives first
    num_positive: int
    num_negative: int


@dataclass(frozen=True)
class _TextColumns:
    """Text looked up by index when a chunk is formatted."""

    image_ids: pa.Array  # [num_images] sorted 16-hex ImageIDs
    mids: pa.Array  # [K] class MIDs
    mask_tokens: pa.Array  # [K] MIDs without '/', as they appear in MaskPath


def _draw_mask_rows(rng: np.random.Generator, num_masks: int, num_images: int, per_class: np.ndarray) -> _MaskRows:
    """Every image gets one mask, the rest go to images drawn with long-tailed weights; classes are the
    exact ``per_class`` counts in random order."""
    image_weight = rng.lognormal(0.0, 1.0, size=num_images)
    image = np.concatenate(
        [
            np.arange(num_images),
            rng.choice(num_images, size=num_masks - num_images, p=image_weight / image_weight.sum()),
        ]
    )
    image.sort()  # rows grouped by image; ImageIDs are sorted, so rows sort by ImageID
    cls = rng.permutation(np.repeat(np.arange(per_class.size), per_class))
    boxes = _random_boxes(rng, num_masks)
    box_ids = _unique_box_ids(rng, image)
    iou_q = formats.quantize(rng.uniform(0.3, 0.99, size=num_masks), 5)
    return _MaskRows(image=image, cls=cls, boxes=boxes, box_ids=box_ids, iou_q=iou_q)


def _text_columns(rng: np.random.Generator, num_images: int, mids: list[str]) -> _TextColumns:
    """Draws ``num_images`` distinct random 16-hex ImageIDs (kept in ascending order, so rows grouped
    by image index come out sorted by ImageID) and spells the classes."""
    id_chars = formats.random_image_ids(rng, num_images)
    id_chars = id_chars[np.argsort(id_chars.view("S16").reshape(-1), kind="stable")]
    return _TextColumns(
        image_ids=formats.chars_to_strings(id_chars, np.full(num_images, 16)),
        mids=pa.array(mids),
        mask_tokens=pa.array([m.replace("/", "") for m in mids]),
    )


def _train_csv_paths(out_dir: str) -> dict[str, str]:
    """``{"masks", "bbox", "labels"}`` -> the train split's CSV path in ``out_dir``."""
    return {
        kind: os.path.join(out_dir, name.format(split="train"))
        for kind, name in (
            ("masks", layout.MASKS_CSV_NAME),
            ("bbox", layout.BBOX_CSV_NAME),
            ("labels", layout.LABELS_CSV_NAME),
        )
    }


def _draw_extra_boxes(
    rng: np.random.Generator, n_box_only: int, n_group: int, num_images: int, probs: np.ndarray
) -> _ExtraBoxes:
    """Box-only and group-of rows on uniform images, classes drawn with the real frequencies."""
    n = n_box_only + n_group
    image = rng.integers(0, num_images, size=n)
    cls = rng.choice(probs.size, size=n, p=probs)
    boxes = _random_boxes(rng, n)
    return _ExtraBoxes(image=image, cls=cls, boxes=boxes, n_box_only=n_box_only, n_group=n_group)


def _related_pairs(hierarchy: Hierarchy, mids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CSR form of the "related" relation (ancestor, descendant or same class) over class indices:
    ``(rel_start [K + 1], rel_to [R])``, the classes related to ``i`` being
    ``rel_to[rel_start[i]:rel_start[i + 1]]``."""
    k = len(mids)
    related = np.zeros((k, k), dtype=bool)
    index = {m: i for i, m in enumerate(mids)}
    for i, m in enumerate(mids):
        for r in hierarchy.ancestors(m) | hierarchy.descendants(m) | {m}:
            related[i, index[r]] = True
    rel_from, rel_to = np.nonzero(related)
    return np.searchsorted(rel_from, np.arange(k + 1)), rel_to


def _draw_labels(
    rng: np.random.Generator,
    hierarchy: Hierarchy,
    mids: list[str],
    masks: _MaskRows,
    extra: _ExtraBoxes,
    num_images: int,
    negative_fraction: float,
) -> _Labels:
    """Positives for every (image, class) with a box; one random negative on a ``negative_fraction``
    share of images, dropped when it is related to a class present in that image (a verified negative
    must not contradict a positive through the hierarchy)."""
    k = len(mids)
    present = np.unique(np.concatenate([masks.image * k + masks.cls, extra.image * k + extra.cls]))
    rel_start, rel_to = _related_pairs(hierarchy, mids)
    p_img, p_cls = present // k, present % k
    n_rel = rel_start[p_cls + 1] - rel_start[p_cls]
    # For every present (image, class): all (image, related class) keys a negative must avoid.
    pos = np.repeat(rel_start[p_cls] - np.cumsum(n_rel) + n_rel, n_rel) + np.arange(int(n_rel.sum()))
    forbidden = np.repeat(p_img, n_rel) * k + rel_to[pos]
    neg_img = np.flatnonzero(rng.random(num_images) < negative_fraction)
    negatives = np.unique(neg_img * k + rng.integers(0, k, size=neg_img.size))
    negatives = negatives[~np.isin(negatives, forbidden)]
    keys = np.concatenate([present, negatives])
    confidence = np.concatenate([np.ones(present.size, np.int64), np.zeros(negatives.size, np.int64)])
    order = np.lexsort((-confidence, keys // k))  # by image, positives first
    return _Labels(
        keys=keys, confidence=confidence, order=order, num_positive=int(present.size), num_negative=int(negatives.size)
    )


def _random_clicks(rng: np.random.Generator, boxes: np.ndarray) -> pa.Array:
    """Clicks text for ``boxes`` (int64 ``[n, 4]`` as in _MaskRows.boxes): 4-12 points inside the box,
    labeled 1 (on the object) about 60% of the time."""
    n = boxes.shape[0]
    u = rng.random((n, MAX_CLICKS, 2))
    cx = formats.quantize((boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 1] - boxes[:, None, 0])) / 1e6, 5)
    cy = formats.quantize((boxes[:, None, 2] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 2])) / 1e6, 5)
    labels = (rng.random((n, MAX_CLICKS)) < 0.6).astype(np.int64)
    return formats.clicks_strings(cx, cy, labels, rng.integers(4, MAX_CLICKS + 1, size=n))


def _write_masks_csv(path: str, rng: np.random.Generator, masks: _MaskRows, text: _TextColumns, bar: tqdm) -> None:
    """Writes the masks CSV chunk by chunk; Clicks are drawn from ``rng`` per chunk, in row order."""
    num_masks = masks.image.size
    with ChunkedCsv(path, MASKS_CSV_HEADER) as out:
        for s in range(0, num_masks, CHUNK_ROWS):
            sl = slice(s, min(s + CHUNK_ROWS, num_masks))
            ids = text.image_ids.take(pa.array(masks.image[sl]))
            cls = pa.array(masks.cls[sl])
            box_hex = formats.hex_strings(masks.box_ids[sl], 8)
            mask_path = pc.binary_join_element_wise(
                pc.binary_join_element_wise(ids, text.mask_tokens.take(cls), box_hex, "_"), ".png", ""
            )
            b = masks.boxes[sl]
            out.write(
                {
                    "MaskPath": mask_path,
                    "ImageID": ids,
                    "LabelName": text.mids.take(cls),
                    "BoxID": box_hex,
                    "BoxXMin": _coord_strings(b[:, 0]),
                    "BoxXMax": _coord_strings(b[:, 1]),
                    "BoxYMin": _coord_strings(b[:, 2]),
                    "BoxYMax": _coord_strings(b[:, 3]),
                    "PredictedIoU": formats.decimal_strings(masks.iou_q[sl], 5),
                    "Clicks": _random_clicks(rng, b),
                }
            )
            bar.update(1)


def _write_bbox_csv(path: str, masks: _MaskRows, extra: _ExtraBoxes, text: _TextColumns, bar: tqdm) -> None:
    """Writes the bbox CSV by image: masked boxes first within an image, then box-only, then group-of."""
    num_masked = masks.image.size
    is_group = np.concatenate([np.zeros(num_masked + extra.n_box_only, np.int64), np.ones(extra.n_group, np.int64)])
    image = np.concatenate([masks.image, extra.image])
    order = np.argsort(image, kind="stable")  # masked rows first within an image
    boxes = np.concatenate([masks.boxes, extra.boxes])
    cls = np.concatenate([masks.cls, extra.cls])
    with ChunkedCsv(path, BBOX_CSV_HEADER) as out:
        for s in range(0, order.size, CHUNK_ROWS):
            rows = order[s : s + CHUNK_ROWS]
            b = boxes[rows]
            out.write(
                {
                    "ImageID": text.image_ids.take(pa.array(image[rows])),
                    "LabelName": text.mids.take(pa.array(cls[rows])),
                    "XMin": _coord_strings(b[:, 0]),
                    "XMax": _coord_strings(b[:, 1]),
                    "YMin": _coord_strings(b[:, 2]),
                    "YMax": _coord_strings(b[:, 3]),
                    "IsGroupOf": pa.array(is_group[rows]),
                }
            )
            bar.update(1)


def _write_labels_csv(path: str, labels: _Labels, text: _TextColumns, bar: tqdm) -> None:
    """Writes the labels CSV in ``labels.order``."""
    k = len(text.mids)
    with ChunkedCsv(path, LABELS_CSV_HEADER) as out:
        for s in range(0, labels.order.size, CHUNK_ROWS):
            rows = labels.order[s : s + CHUNK_ROWS]
            out.write(
                {
                    "ImageID": text.image_ids.take(pa.array(labels.keys[rows] // k)),
                    "LabelName": text.mids.take(pa.array(labels.keys[rows] % k)),
                    "Confidence": pa.array(labels.confidence[rows]),
                }
            )
            bar.update(1)


def _real_class_probabilities(hierarchy: Hierarchy) -> tuple[list[str], np.ndarray]:
    """The hierarchy's MIDs and their float64 share of the real 2019 training masks (sums to 1)."""
    real = read_real_counts()
    mids = list(hierarchy.classes)
    missing = [m for m in mids if m not in real]
    if missing:
        raise KeyError(f"no real mask count for {missing[:5]}")
    probs = np.array([real[m] for m in mids], dtype=np.float64)
    return mids, probs / probs.sum()


def generate_annotations_only(
    out_dir: str,
    num_masks: int = 2_125_530,
    num_images: int = 848_512,
    seed: int = 0,
    *,
    box_only_fraction: float = 0.08,
    group_of_fraction: float = 0.03,
    negative_fraction: float = 0.6,
    show_progress: bool = False,
) -> dict:
    """Writes the train masks, bbox and labels CSVs plus hierarchy and class files (no pixels).

    Args:
      out_dir: dataset folder (created).
      num_masks, num_images: masks CSV rows and distinct ImageIDs; ``num_masks >= num_images >= 1``.
      seed: the files are a pure function of the arguments.
      box_only_fraction: extra bbox rows without a mask, as a fraction of ``num_masks``.
      group_of_fraction: IsGroupOf=1 bbox rows, as a fraction of ``num_images``.
      negative_fraction: share of images given one verified-negative label (kept only when unrelated
        to every class present in the image).
      show_progress: a tqdm bar over written chunks.

    Returns:
      ``{"out_dir", "seed", "images", "masks", "bbox_rows", "box_only_boxes", "group_of_boxes",
      "positive_labels", "negative_labels", "masks_per_class": {MID: n}, "classes": {MID: name},
      "seconds", "files": [paths]}``.
    """
    if not 1 <= num_images <= num_masks:
        raise ValueError(f"need 1 <= num_images <= num_masks, got num_images={num_images}, num_masks={num_masks}")
    start = time.perf_counter()
    hierarchy = Hierarchy.builtin()
    mids, probs = _real_class_probabilities(hierarchy)
    rng = np.random.default_rng(seed)
    # One generator drawn in a fixed order (masks, ImageIDs, extra boxes, labels, then Clicks per chunk)
    # keeps the files byte-identical for a seed; reordering these calls changes every file.
    per_class = apportion(num_masks, probs)
    masks = _draw_mask_rows(rng, num_masks, num_images, per_class)
    text = _text_columns(rng, num_images, mids)
    n_box_only = int(round(box_only_fraction * num_masks))
    n_group = int(round(group_of_fraction * num_images))
    extra = _draw_extra_boxes(rng, n_box_only, n_group, num_images, probs)
    labels = _draw_labels(rng, hierarchy, mids, masks, extra, num_images, negative_fraction)

    os.makedirs(out_dir, exist_ok=True)
    write_metadata(out_dir, hierarchy)
    paths = _train_csv_paths(out_dir)
    num_bbox_rows = num_masks + n_box_only + n_group
    total_chunks = sum(-(-n // CHUNK_ROWS) for n in (num_masks, num_bbox_rows, labels.order.size))
    with tqdm(total=total_chunks, desc="annotations", unit="chunk", disable=not show_progress) as bar:
        _write_masks_csv(paths["masks"], rng, masks, text, bar)
        _write_bbox_csv(paths["bbox"], masks, extra, text, bar)
        _write_labels_csv(paths["labels"], labels, text, bar)

    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "images": num_images,
        "masks": num_masks,
        "bbox_rows": num_bbox_rows,
        "box_only_boxes": n_box_only,
        "group_of_boxes": n_group,
        "positive_labels": labels.num_positive,
        "negative_labels": labels.num_negative,
        "masks_per_class": {m: int(c) for m, c in zip(mids, per_class)},
        "classes": {m: hierarchy.name(m) for m in mids},
        "seconds": round(time.perf_counter() - start, 3),
        "files": [
            os.path.join(out_dir, layout.HIERARCHY_JSON_NAME),
            os.path.join(out_dir, layout.CLASSES_CSV_NAME),
            *paths.values(),
        ],
    }
