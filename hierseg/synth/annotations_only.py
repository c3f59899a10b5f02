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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from hierseg import atomic_write
from hierseg.hierarchy import Hierarchy
from hierseg.oid import layout
from hierseg.synth import formats
from hierseg.synth.classes import read_real_counts
from hierseg.synth.writer import BBOX_CSV_HEADER, LABELS_CSV_HEADER, MASKS_CSV_HEADER, write_metadata

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


class _ChunkedCsv:
    """A CSV written chunk by chunk, atomically: ``with _ChunkedCsv(path, header) as out: out.write(...)``."""

    def __init__(self, path: str, header: tuple[str, ...]):
        self.path, self.header = path, header
        self.options = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def __enter__(self) -> _ChunkedCsv:
        self._open = atomic_write.atomic_open(self.path, "wb")
        self.file = self._open.__enter__()
        self.file.write((",".join(self.header) + "\n").encode("ascii"))
        return self

    def __exit__(self, *exc) -> None:
        self._open.__exit__(*exc)  # renames into place, or removes the temporary file on an error

    def write(self, columns: dict[str, pa.Array]) -> None:
        pacsv.write_csv(pa.table(columns), self.file, self.options)


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
    real = read_real_counts()
    mids = list(hierarchy.classes)
    missing = [m for m in mids if m not in real]
    if missing:
        raise KeyError(f"no real mask count for {missing[:5]}")
    k = len(mids)
    probs = np.array([real[m] for m in mids], dtype=np.float64)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)

    # ---------------------------------------------------------------------- masks: class and image
    per_class = apportion(num_masks, probs)
    image_weight = rng.lognormal(0.0, 1.0, size=num_images)
    image_of_mask = np.concatenate(
        [
            np.arange(num_images),
            rng.choice(num_images, size=num_masks - num_images, p=image_weight / image_weight.sum()),
        ]
    )
    image_of_mask.sort()  # rows grouped by image; ImageIDs are sorted below, so rows sort by ImageID
    class_of_mask = rng.permutation(np.repeat(np.arange(k), per_class))
    mask_boxes = _random_boxes(rng, num_masks)
    box_ids = _unique_box_ids(rng, image_of_mask)
    iou_q = formats.quantize(rng.uniform(0.3, 0.99, size=num_masks), 5)
    id_chars = formats.random_image_ids(rng, num_images)
    id_chars = id_chars[np.argsort(id_chars.view("S16").reshape(-1), kind="stable")]
    image_ids = formats.chars_to_strings(id_chars, np.full(num_images, 16))
    mid_arr = pa.array(mids)
    token_arr = pa.array([m.replace("/", "") for m in mids])

    # -------------------------------------------------------------------- extra boxes and labels
    n_box_only = int(round(box_only_fraction * num_masks))
    n_group = int(round(group_of_fraction * num_images))
    extra_image = rng.integers(0, num_images, size=n_box_only + n_group)
    extra_class = rng.choice(k, size=n_box_only + n_group, p=probs)
    extra_boxes = _random_boxes(rng, n_box_only + n_group)
    is_group = np.concatenate([np.zeros(num_masks + n_box_only, np.int64), np.ones(n_group, np.int64)])
    bbox_image = np.concatenate([image_of_mask, extra_image])
    bbox_order = np.argsort(bbox_image, kind="stable")  # masked rows first within an image

    present = np.unique(np.concatenate([image_of_mask * k + class_of_mask, extra_image * k + extra_class]))
    related = np.zeros((k, k), dtype=bool)
    index = {m: i for i, m in enumerate(mids)}
    for i, m in enumerate(mids):
        for r in hierarchy.ancestors(m) | hierarchy.descendants(m) | {m}:
            related[i, index[r]] = True
    rel_from, rel_to = np.nonzero(related)
    rel_start = np.searchsorted(rel_from, np.arange(k + 1))
    p_img, p_cls = present // k, present % k
    n_rel = rel_start[p_cls + 1] - rel_start[p_cls]
    # For every present (image, class): all (image, related class) keys a negative must avoid.
    pos = np.repeat(rel_start[p_cls] - np.cumsum(n_rel) + n_rel, n_rel) + np.arange(int(n_rel.sum()))
    forbidden = np.repeat(p_img, n_rel) * k + rel_to[pos]
    neg_img = np.flatnonzero(rng.random(num_images) < negative_fraction)
    negatives = np.unique(neg_img * k + rng.integers(0, k, size=neg_img.size))
    negatives = negatives[~np.isin(negatives, forbidden)]
    label_keys = np.concatenate([present, negatives])
    label_conf = np.concatenate([np.ones(present.size, np.int64), np.zeros(negatives.size, np.int64)])
    label_order = np.lexsort((-label_conf, label_keys // k))  # by image, positives first

    # ---------------------------------------------------------------------------------- writing
    os.makedirs(out_dir, exist_ok=True)
    write_metadata(out_dir, hierarchy)
    paths = {
        kind: os.path.join(out_dir, name.format(split="train"))
        for kind, name in (
            ("masks", layout.MASKS_CSV_NAME),
            ("bbox", layout.BBOX_CSV_NAME),
            ("labels", layout.LABELS_CSV_NAME),
        )
    }
    total_chunks = sum(-(-n // CHUNK_ROWS) for n in (num_masks, bbox_order.size, label_order.size))
    bar = tqdm(total=total_chunks, desc="annotations", unit="chunk", disable=not show_progress)

    with _ChunkedCsv(paths["masks"], MASKS_CSV_HEADER) as out:
        for s in range(0, num_masks, CHUNK_ROWS):
            sl = slice(s, min(s + CHUNK_ROWS, num_masks))
            n = sl.stop - sl.start
            ids = image_ids.take(pa.array(image_of_mask[sl]))
            labels = mid_arr.take(pa.array(class_of_mask[sl]))
            box_hex = formats.hex_strings(box_ids[sl], 8)
            mask_path = pc.binary_join_element_wise(
                pc.binary_join_element_wise(ids, token_arr.take(pa.array(class_of_mask[sl])), box_hex, "_"), ".png", ""
            )
            b = mask_boxes[sl]
            # Clicks: 4-12 points inside the box, labeled 1 (on the object) about 60% of the time.
            u = rng.random((n, MAX_CLICKS, 2))
            cx = formats.quantize((b[:, None, 0] + u[..., 0] * (b[:, None, 1] - b[:, None, 0])) / 1e6, 5)
            cy = formats.quantize((b[:, None, 2] + u[..., 1] * (b[:, None, 3] - b[:, None, 2])) / 1e6, 5)
            clicks = formats.clicks_strings(
                cx, cy, (rng.random((n, MAX_CLICKS)) < 0.6).astype(np.int64), rng.integers(4, MAX_CLICKS + 1, size=n)
            )
            out.write(
                {
                    "MaskPath": mask_path,
                    "ImageID": ids,
                    "LabelName": labels,
                    "BoxID": box_hex,
                    "BoxXMin": _coord_strings(b[:, 0]),
                    "BoxXMax": _coord_strings(b[:, 1]),
                    "BoxYMin": _coord_strings(b[:, 2]),
                    "BoxYMax": _coord_strings(b[:, 3]),
                    "PredictedIoU": formats.decimal_strings(iou_q[sl], 5),
                    "Clicks": clicks,
                }
            )
            bar.update(1)

    all_boxes = np.concatenate([mask_boxes, extra_boxes])
    all_class = np.concatenate([class_of_mask, extra_class])
    with _ChunkedCsv(paths["bbox"], BBOX_CSV_HEADER) as out:
        for s in range(0, bbox_order.size, CHUNK_ROWS):
            rows = bbox_order[s : s + CHUNK_ROWS]
            b = all_boxes[rows]
            out.write(
                {
                    "ImageID": image_ids.take(pa.array(bbox_image[rows])),
                    "LabelName": mid_arr.take(pa.array(all_class[rows])),
                    "XMin": _coord_strings(b[:, 0]),
                    "XMax": _coord_strings(b[:, 1]),
                    "YMin": _coord_strings(b[:, 2]),
                    "YMax": _coord_strings(b[:, 3]),
                    "IsGroupOf": pa.array(is_group[rows]),
                }
            )
            bar.update(1)

    with _ChunkedCsv(paths["labels"], LABELS_CSV_HEADER) as out:
        for s in range(0, label_order.size, CHUNK_ROWS):
            rows = label_order[s : s + CHUNK_ROWS]
            out.write(
                {
                    "ImageID": image_ids.take(pa.array(label_keys[rows] // k)),
                    "LabelName": mid_arr.take(pa.array(label_keys[rows] % k)),
                    "Confidence": pa.array(label_conf[rows]),
                }
            )
            bar.update(1)
    bar.close()

    return {
        "out_dir": str(out_dir),
        "seed": seed,
        "images": num_images,
        "masks": num_masks,
        "bbox_rows": int(bbox_order.size),
        "box_only_boxes": n_box_only,
        "group_of_boxes": n_group,
        "positive_labels": int(present.size),
        "negative_labels": int(negatives.size),
        "masks_per_class": {m: int(c) for m, c in zip(mids, per_class)},
        "classes": {m: hierarchy.name(m) for m in mids},
        "seconds": round(time.perf_counter() - start, 3),
        "files": [
            os.path.join(out_dir, layout.HIERARCHY_JSON_NAME),
            os.path.join(out_dir, layout.CLASSES_CSV_NAME),
            *paths.values(),
        ],
    }
