"""`generate_dataset`: the built-in synthetic Open Images dataset, in the challenge 2019 folder layout.

Output (``DIR`` = ``out_dir``), exactly the published layout and formats (see ``hierseg.oid.layout``):

* ``{train,validation,test}/<ImageID>.jpg``: RGB JPEGs, each side uniform in [min_size, max_size];
  ImageIDs are 16 hex characters, some all digits, some with leading zeros.
* ``challenge-2019-{split}-segmentation-masks.csv``: one row per masked object; MaskPath is
  ``{ImageID}_{MID without '/'}_{BoxID}.png``; the box is the tight box of the mask at image
  resolution; PredictedIoU and Clicks in the real text format.
* ``challenge-2019-{split}-masks/challenge-2019-{split}-masks-{0..f}.zip``: the mask PNGs at half the
  image resolution (mode L 0/255, about a quarter of them 1-bit), in the shard named by
  ``MaskPath[0]``; all 16 shards exist.
* ``challenge-2019-{split}-segmentation-bbox.csv``: a row per masked object with the very same
  coordinate text, plus box-only rows (IsGroupOf 0, no mask) and group-of rows (IsGroupOf 1, no mask).
* ``challenge-2019-{split}-segmentation-labels.csv``: Confidence 1 for every class with a box in the
  image, and verified negatives (Confidence 0) for absent classes unrelated to any present one.
* the hierarchy JSON (the chosen subset of the real 300-class hierarchy) and the class CSV.

The test split has images only. The same arguments give byte-identical files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from hierseg.oid import layout
from hierseg.synth import formats
from hierseg.synth.classes import SynthClasses, synth_classes
from hierseg.synth.render import downsample_mask, tight_box
from hierseg.synth.scene import BOX_ONLY, GROUP_OF, MASK, SceneObject, plan_split, render_scene
from hierseg.synth.writer import (
    BBOX_CSV_HEADER,
    LABELS_CSV_HEADER,
    MASKS_CSV_HEADER,
    atomic_write_bytes,
    csv_bytes,
    jpeg_bytes,
    png_bytes,
    remove_stale_images,
    write_mask_zips,
    write_metadata,
)

MIN_VISIBLE_PIXELS = 16  # an object hidden below this is not annotated (practically never happens)
ONE_BIT_FRACTION = 0.25  # share of mask PNGs written as 1-bit images (the rest mode L 0/255)


def split_sizes(num_images: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Images per split: rounded fractions, train taking the remainder; each split gets at least one
    image when ``num_images >= 3``."""
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers, got {fractions!r}")
    f = np.asarray(fractions, dtype=np.float64) / sum(fractions)
    val, test = (int(round(num_images * x)) for x in f[1:])
    if num_images >= 3:
        val, test = max(val, 1 if f[1] > 0 else 0), max(test, 1 if f[2] > 0 else 0)
    return {"train": num_images - val - test, "validation": val, "test": test}


# The per-split counters of the summary, in the order they appear there.
_COUNT_KEYS = (
    "mask_boxes",
    "box_only_boxes",
    "group_of_boxes",
    "positive_labels",
    "negative_labels",
    "hidden_objects",
)


@dataclass
class _SplitAnnotations:
    """One split's annotation rows and mask PNGs, accumulated image by image in ImageID order."""

    masks: list[list[str]] = field(default_factory=list)  # masks CSV rows (MASKS_CSV_HEADER order)
    bbox: list[list[str]] = field(default_factory=list)  # bbox CSV rows (BBOX_CSV_HEADER order)
    labels: list[list[str]] = field(default_factory=list)  # labels CSV rows (LABELS_CSV_HEADER order)
    pngs: dict[str, bytes] = field(default_factory=dict)  # MaskPath -> PNG bytes
    masks_per_class: dict[str, int] = field(default_factory=dict)  # MID -> masks (every class present)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNT_KEYS, 0))

    def summary(self, num_images: int) -> dict:
        """The split's entry in :func:`generate_dataset`'s summary."""
        return {
            "images": num_images,
            "masks": len(self.masks),
            **self.counts,
            "masks_per_class": self.masks_per_class,
        }


def _annotate_object(
    rng: np.random.Generator,
    image_id: str,
    obj: SceneObject,
    height: int,
    width: int,
    box_ids: set[int],
    out: _SplitAnnotations,
) -> bool:
    """Appends one object's bbox row (and mask row and PNG when it is a MASK object) to ``out``;
    returns False, counting it hidden, when too little of it is visible to annotate. ``box_ids`` holds
    the image's BoxIDs so far (a new one is drawn until it is unused, keeping MaskPaths unique)."""
    vis = obj.visible
    if vis is None or int(vis.sum()) < MIN_VISIBLE_PIXELS:
        out.counts["hidden_objects"] += 1
        return False
    x0, x1, y0, y1 = tight_box(vis)
    q = formats.quantize(np.array([x0 / width, x1 / width, y0 / height, y1 / height]), 6)
    coords = [formats.format_decimal(v, 6) for v in q.tolist()]
    if obj.kind == MASK:
        small = downsample_mask(vis, max(1, height // 2), max(1, width // 2))
        if not small.any():
            out.counts["hidden_objects"] += 1
            return False
        box_id = int(rng.integers(0, 2**32))
        while box_id in box_ids:
            box_id = int(rng.integers(0, 2**32))
        box_ids.add(box_id)
        box_hex = f"{box_id:08x}"
        mask_path = f"{image_id}_{obj.mid.replace('/', '')}_{box_hex}.png"
        out.pngs[mask_path] = png_bytes(small, one_bit=bool(rng.random() < ONE_BIT_FRACTION))
        iou = formats.format_decimal(int(formats.quantize(rng.uniform(0.45, 0.99), 5)), 5)
        # Clicks: points in the box, labeled by whether they fall on the object (as annotators did).
        k = int(rng.integers(4, 13))
        cx = rng.uniform(x0, x1, k)
        cy = rng.uniform(y0, y1, k)
        lab = vis[np.clip(cy.astype(int), 0, height - 1), np.clip(cx.astype(int), 0, width - 1)]
        clicks = formats.format_clicks(formats.quantize(cx / width, 5), formats.quantize(cy / height, 5), lab)
        out.masks.append([mask_path, image_id, obj.mid, box_hex, *coords, iou, clicks])
        out.masks_per_class[obj.mid] += 1
    out.bbox.append([image_id, obj.mid, *coords, "1" if obj.kind == GROUP_OF else "0"])
    out.counts[
        "group_of_boxes" if obj.kind == GROUP_OF else "box_only_boxes" if obj.kind == BOX_ONLY else "mask_boxes"
    ] += 1
    return True


def _annotate(
    rng: np.random.Generator,
    classes: SynthClasses,
    image_id: str,
    objects: list[SceneObject],
    height: int,
    width: int,
    out: _SplitAnnotations,
) -> None:
    """Appends one image's CSV rows and mask PNGs to ``out`` and counts them: its objects' rows, a
    positive label per class annotated, then 0-2 verified negatives unrelated to every positive."""
    present: list[str] = []
    box_ids: set[int] = set()
    for obj in objects:
        if _annotate_object(rng, image_id, obj, height, width, box_ids, out) and obj.mid not in present:
            present.append(obj.mid)
    present.sort(key=classes.index)
    out.labels.extend([image_id, m, "1"] for m in present)
    related = set().union(*(classes.related(m) for m in present)) if present else set()
    candidates = [m for m in classes.mids if m not in related]
    n_neg = min(len(candidates), int(rng.choice([0, 1, 1, 2])))
    negatives = sorted(rng.choice(len(candidates), size=n_neg, replace=False).tolist()) if n_neg else []
    out.labels.extend([image_id, candidates[i], "0"] for i in negatives)
    out.counts["positive_labels"] += len(present)
    out.counts["negative_labels"] += n_neg


def _write_split_files(out_dir: str, split: str, out: _SplitAnnotations) -> None:
    """Writes one annotated split's mask zips and its masks, bbox and labels CSVs."""
    write_mask_zips(out_dir, split, out.pngs)
    for name, header, rows in (
        (layout.MASKS_CSV_NAME, MASKS_CSV_HEADER, out.masks),
        (layout.BBOX_CSV_NAME, BBOX_CSV_HEADER, out.bbox),
        (layout.LABELS_CSV_NAME, LABELS_CSV_HEADER, out.labels),
    ):
        atomic_write_bytes(os.path.join(out_dir, name.format(split=split)), csv_bytes(header, rows))


def _generate_split(
    out_dir: str,
    split: str,
    ids: list[str],
    plans: list[list[SceneObject]],
    classes: SynthClasses,
    seed: int,
    size_range: tuple[int, int],
    bar: tqdm,
) -> dict:
    """Renders and writes one split's images (and, for an annotated split, its masks and CSVs);
    returns the split's summary. ``ids`` are sorted so that CSV rows come out ordered by ImageID."""
    split_index = layout.SPLITS.index(split)
    out = _SplitAnnotations(masks_per_class=dict.fromkeys(classes.mids, 0))
    image_dir = os.path.join(out_dir, layout.IMAGE_DIR_NAME.format(split=split))
    os.makedirs(image_dir, exist_ok=True)
    for i, (image_id, objects) in enumerate(zip(ids, plans)):
        rng = np.random.default_rng([seed, split_index, i])  # per image: independent of other images
        height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
        pixels = render_scene(rng, classes, height, width, objects)
        atomic_write_bytes(os.path.join(image_dir, image_id + layout.IMAGE_EXT), jpeg_bytes(pixels))
        if split in layout.ANNOTATED_SPLITS:
            _annotate(rng, classes, image_id, objects, height, width, out)
        bar.update(1)
    remove_stale_images(image_dir, {i + layout.IMAGE_EXT for i in ids})
    if split not in layout.ANNOTATED_SPLITS:
        return {"images": len(ids)}
    _write_split_files(out_dir, split, out)
    return out.summary(len(ids))


def generate_dataset(
    out_dir: str,
    num_images: int = 200,
    seed: int = 0,
    *,
    min_size: int = 128,
    max_size: int = 256,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    show_progress: bool = False,
) -> dict:
    """Writes the synthetic dataset to ``out_dir`` and returns its summary.

    Args:
      out_dir: dataset folder (created; an earlier run's extra ``<ImageID>.jpg`` files are removed).
      num_images: images over all three splits.
      seed: the dataset is a pure function of (num_images, seed, min_size, max_size, split_fractions).
      min_size, max_size: image width and height are drawn independently in [min_size, max_size].
      split_fractions: (train, validation, test) shares of the images.
      show_progress: a tqdm bar over images.

    Returns:
      ``{"out_dir", "seed", "num_images", "classes": {MID: name}, "seconds", "splits": {split:
      {"images", "masks", "mask_boxes", "box_only_boxes", "group_of_boxes", "positive_labels",
      "negative_labels", "hidden_objects", "masks_per_class": {MID: n}}}}`` (the test split has
      "images" only).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if not 16 <= min_size <= max_size:
        raise ValueError(f"need 16 <= min_size <= max_size, got {min_size}, {max_size}")
    start = time.perf_counter()
    classes = synth_classes()
    sizes = split_sizes(num_images, tuple(split_fractions))
    id_seq, plan_seq = np.random.SeedSequence(seed).spawn(2)
    all_ids = formats.ids_as_str(formats.random_image_ids(np.random.default_rng(id_seq), num_images))
    # One plan generator shared by the splits in order; each image then draws from its own generator.
    plan_rng = np.random.default_rng(plan_seq)
    os.makedirs(out_dir, exist_ok=True)
    write_metadata(out_dir, classes.hierarchy)

    summary: dict = {
        "out_dir": str(out_dir),
        "seed": seed,
        "num_images": num_images,
        "classes": {m: classes.name(m) for m in classes.mids},
        "splits": {},
    }
    with tqdm(total=num_images, desc="synth images", unit="img", disable=not show_progress) as bar:
        offset = 0
        for split in layout.SPLITS:
            ids = sorted(all_ids[offset : offset + sizes[split]])
            offset += sizes[split]
            plans = plan_split(plan_rng, classes, len(ids))
            summary["splits"][split] = _generate_split(
                out_dir, split, ids, plans, classes, seed, (min_size, max_size), bar
            )
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary
