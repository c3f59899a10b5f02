"""Ground truth of the Open Images instance segmentation metric: per image, in memory.

:class:`ImageGroundTruth` holds one image's annotations as published (classes as annotated):
instances with a normalized box, a COCO RLE mask at the image size (None for a box without a mask),
an IsGroupOf flag, and the image-level verified labels (positive and negative). Tests and benchmarks
build it directly; :func:`load_ground_truth` builds it from the dataset folder.

:meth:`ImageGroundTruth.expand` applies the official hierarchy expansion
(``oid_hierarchical_labels_expansion.py``, Subcategory edges only): every instance is copied once per
ancestor class, positive labels are copied up to all ancestors, negative labels down to all
descendants. The classes evaluated in the image are then the expanded labels (positive and negative)
and the expanded instance classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hierseg.hierarchy import Hierarchy
from hierseg.rle import rle_areas


@dataclass
class ImageGroundTruth:
    """The annotations of one image, before expansion.

    Attributes:
      image_id: the ImageID.
      height, width: the image size in pixels (the masks' size; 0 when the image has no masks).
      classes: [N] MIDs of the instances.
      boxes: [N, 4] float64 normalized (ymin, xmin, ymax, xmax) in [0, 1].
      rles: N COCO RLEs at [height, width], or None for a box without a mask (an empty mask counts
        as none, as in the official evaluator).
      is_group_of: [N] bool.
      positive_labels, negative_labels: verified image-level labels (Confidence 1 / 0).
    """

    image_id: str
    height: int
    width: int
    classes: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros([0, 4], np.float64))
    rles: list[dict | None] = field(default_factory=list)
    is_group_of: np.ndarray = field(default_factory=lambda: np.zeros([0], bool))
    positive_labels: tuple[str, ...] = ()
    negative_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape([-1, 4])
        self.is_group_of = np.asarray(self.is_group_of, bool).reshape([-1])
        self.positive_labels = tuple(self.positive_labels)
        self.negative_labels = tuple(self.negative_labels)
        n = len(self.classes)
        if not (len(self.boxes) == len(self.rles) == len(self.is_group_of) == n):
            raise ValueError(
                f"ground truth of {self.image_id}: {n} classes, {len(self.boxes)} boxes, "
                f"{len(self.rles)} masks, {len(self.is_group_of)} group-of flags"
            )
        for k, r in enumerate(self.rles):
            if r is not None and [int(v) for v in r["size"]] != [self.height, self.width]:
                raise ValueError(
                    f"ground truth of {self.image_id}: mask {k} has size {list(r['size'])}, "
                    f"the image is [{self.height}, {self.width}]"
                )

    def __len__(self) -> int:
        return len(self.classes)

    def expand(self, hierarchy: Hierarchy) -> ExpandedGroundTruth:
        """The official expansion (see the module docstring).

        Raises:
          KeyError: for a class that is not in the hierarchy.
        """
        index: list[int] = []
        classes: list[str] = []
        for k, mid in enumerate(self.classes):
            for c in hierarchy.expand_positive(mid):
                index.append(k)
                classes.append(c)
        labels: set[str] = set()
        for mid in self.positive_labels:
            labels.update(hierarchy.expand_positive(mid))
        for mid in self.negative_labels:
            labels.update(hierarchy.expand_negative(mid))
        has_mask = [r is not None for r in self.rles]
        areas = np.zeros(len(self), np.int64)
        if any(has_mask):
            areas[np.flatnonzero(has_mask)] = rle_areas([r for r in self.rles if r is not None])
        idx = np.asarray(index, np.int64)
        return ExpandedGroundTruth(
            image_id=self.image_id,
            height=self.height,
            width=self.width,
            classes=classes,
            boxes=self.boxes[idx] if len(idx) else np.zeros([0, 4], np.float64),
            rles=[self.rles[k] if areas[k] > 0 else None for k in index],
            is_group_of=self.is_group_of[idx] if len(idx) else np.zeros([0], bool),
            evaluatable=frozenset(labels) | frozenset(classes),
        )


@dataclass
class ExpandedGroundTruth:
    """One image's ground truth after the hierarchy expansion, as the per-image evaluation uses it.

    Same fields as :class:`ImageGroundTruth` (``rles[k]`` None also for empty masks), and
    ``evaluatable``: the classes whose detections are evaluated in this image.
    """

    image_id: str
    height: int
    width: int
    classes: list[str]
    boxes: np.ndarray
    rles: list[dict | None]
    is_group_of: np.ndarray
    evaluatable: frozenset[str]

    def num_gt(self, group_of_weight: float) -> dict[str, float]:
        """Per class, what the image adds to the ground-truth count: 1 per non-group-of instance with a
        mask, ``group_of_weight`` per group-of instance with a mask; boxes without a mask add nothing."""
        out: dict[str, float] = {}
        for c, r, g in zip(self.classes, self.rles, self.is_group_of):
            if r is not None:
                out[c] = out.get(c, 0.0) + (group_of_weight if g else 1.0)
        return out


# ------------------------------------------------------------------------------ the dataset folder
def _match_masks_to_boxes(masks, boxes, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs mask rows with bbox rows of the same image and class whose coordinates agree within
    ``tolerance`` (greedy by coordinate distance, one-to-one).

    The bbox CSV has no BoxID, so this is how the two files meet (the official tool merges on exact
    float equality of the coordinates, which its own comments call fragile).
    Returns (mask row positions, bbox row positions) of the pairs.
    """
    import pandas as pd

    m = pd.DataFrame(
        {
            "ImageID": masks["ImageID"].to_numpy(),
            "LabelName": masks["LabelName"].to_numpy(),
            "mi": np.arange(len(masks)),
            "mx0": masks["BoxXMin"].to_numpy(),
            "mx1": masks["BoxXMax"].to_numpy(),
            "my0": masks["BoxYMin"].to_numpy(),
            "my1": masks["BoxYMax"].to_numpy(),
        }
    )
    b = pd.DataFrame(
        {
            "ImageID": boxes["ImageID"].to_numpy(),
            "LabelName": boxes["LabelName"].to_numpy(),
            "bi": np.arange(len(boxes)),
            "bx0": boxes["XMin"].to_numpy(),
            "bx1": boxes["XMax"].to_numpy(),
            "by0": boxes["YMin"].to_numpy(),
            "by1": boxes["YMax"].to_numpy(),
        }
    )
    pairs = m.merge(b, on=["ImageID", "LabelName"])
    if pairs.empty:
        return np.zeros([0], np.int64), np.zeros([0], np.int64)
    dist = np.max(
        np.abs(
            np.stack(
                [
                    pairs["mx0"] - pairs["bx0"],
                    pairs["mx1"] - pairs["bx1"],
                    pairs["my0"] - pairs["by0"],
                    pairs["my1"] - pairs["by1"],
                ],
                axis=1,
            )
        ),
        axis=1,
    )
    keep = dist <= tolerance
    mi, bi, dist = pairs["mi"].to_numpy()[keep], pairs["bi"].to_numpy()[keep], dist[keep]
    order = np.lexsort((bi, mi, dist))
    used_m, used_b = set(), set()
    out_m, out_b = [], []
    for k in order:
        if mi[k] not in used_m and bi[k] not in used_b:
            used_m.add(mi[k])
            used_b.add(bi[k])
            out_m.append(mi[k])
            out_b.append(bi[k])
    return np.asarray(out_m, np.int64), np.asarray(out_b, np.int64)


def _encode_masks_of_image(args: tuple) -> tuple[str, list[dict]]:
    reader, image_id, mask_paths, h, w = args
    from hierseg.oid.mask_codec import encode_rle

    return image_id, [encode_rle(reader.read_resized(p, h, w)) for p in mask_paths]


def load_ground_truth(
    oid_dir: str,
    split: str,
    hierarchy: Hierarchy,
    *,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    on_error: str = "raise",
    box_tolerance: float = 1e-4,
    num_workers: int = 1,
    show_progress: bool = False,
) -> tuple[dict[str, ImageGroundTruth], dict]:
    """The ground truth of a split from the dataset folder (masks CSV + zip PNGs, bbox CSV, labels CSV).

    Masks are resized to their image's size (nearest neighbour, :meth:`MaskZipReader.read_resized`)
    and kept as RLEs. Each mask row is paired with the bbox row of the same image and class whose
    coordinates agree within ``box_tolerance`` (that row's IsGroupOf applies); bbox rows without a
    mask are box-only ground truth; a mask row without a bbox row is a non-group-of instance with the
    masks CSV's box.

    Args:
      image_sizes: ImageID -> (height, width); by default read from the split's image headers (only
        images with masks need a size).
      on_error: "raise" or "skip" for bad CSV rows (classes outside the hierarchy included).
      num_workers: processes decoding mask PNGs.
    Returns:
      ({ImageID: ImageGroundTruth}, a report with row counts and skips).
    """
    from hierseg.oid.image_size import ImageSizeCache
    from hierseg.oid.layout import OidPaths
    from hierseg.oid.mask_zip import MaskZipReader
    from hierseg.oid.tables import read_bbox_csv, read_image_labels_csv, read_segmentation_csv

    paths = OidPaths.from_dir(oid_dir)
    mids = hierarchy.classes
    masks, skip_m = read_segmentation_csv(paths.masks_csv(split), valid_mids=mids, on_error=on_error)
    boxes, skip_b = read_bbox_csv(paths.bbox_csv(split), valid_mids=mids, on_error=on_error)
    labels, skip_l = read_image_labels_csv(paths.labels_csv(split), valid_mids=mids, on_error=on_error)
    mask_pos, box_pos = _match_masks_to_boxes(masks, boxes, box_tolerance)

    mask_group_of = np.zeros(len(masks), bool)
    mask_group_of[mask_pos] = boxes["IsGroupOf"].to_numpy(bool)[box_pos]
    box_only = np.ones(len(boxes), bool)
    box_only[box_pos] = False

    image_ids = sorted(set(masks["ImageID"]) | set(boxes["ImageID"]) | set(labels["ImageID"]))
    masked_images = sorted(set(masks["ImageID"]))
    if image_sizes is None:
        cache = ImageSizeCache()
        image_sizes = cache.get_many(
            masked_images, [paths.image_path(split, i) for i in masked_images], show_progress=show_progress
        )
    missing = [i for i in masked_images if i not in image_sizes]
    if missing:
        raise ValueError(f"no image size for {len(missing)} images with masks, e.g. {missing[:3]}")

    # Decode the mask PNGs, one task per image.
    reader = MaskZipReader.for_split(paths, split)
    tasks = [
        (reader, image_id, list(g["MaskPath"]), *image_sizes[image_id])
        for image_id, g in masks.groupby("ImageID", sort=True)
    ]
    rles_of: dict[str, list[dict]] = {}
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="ground-truth masks", unit="img", disable=not show_progress)
    if num_workers > 1 and len(tasks) > 1:
        from ensembles.metric.evaluator import process_pool

        with process_pool(num_workers) as pool:
            for image_id, rles in pool.imap_unordered(_encode_masks_of_image, tasks, chunksize=8):
                rles_of[image_id] = rles
                bar.update(1)
    else:
        for t in tasks:
            image_id, rles = _encode_masks_of_image(t)
            rles_of[image_id] = rles
            bar.update(1)
    bar.close()

    out: dict[str, ImageGroundTruth] = {}
    groups_m = {k: v for k, v in masks.assign(_g=mask_group_of).groupby("ImageID", sort=False)}
    groups_b = {k: v for k, v in boxes[box_only].groupby("ImageID", sort=False)}
    groups_l = {k: v for k, v in labels.groupby("ImageID", sort=False)}
    for image_id in image_ids:
        h, w = image_sizes.get(image_id, (0, 0))
        classes: list[str] = []
        box_rows: list[np.ndarray] = []
        rles: list[dict | None] = []
        group_of: list[bool] = []
        if image_id in groups_m:
            g = groups_m[image_id]
            classes += list(g["LabelName"])
            box_rows.append(g[["BoxYMin", "BoxXMin", "BoxYMax", "BoxXMax"]].to_numpy(np.float64))
            rles += rles_of[image_id]
            group_of += list(g["_g"])
        if image_id in groups_b:
            g = groups_b[image_id]
            classes += list(g["LabelName"])
            box_rows.append(g[["YMin", "XMin", "YMax", "XMax"]].to_numpy(np.float64))
            rles += [None] * len(g)
            group_of += list(g["IsGroupOf"].to_numpy(bool))
        pos: Sequence[str] = ()
        neg: Sequence[str] = ()
        if image_id in groups_l:
            g = groups_l[image_id]
            conf = g["Confidence"].to_numpy()
            pos, neg = list(g["LabelName"][conf == 1]), list(g["LabelName"][conf == 0])
        out[image_id] = ImageGroundTruth(
            image_id,
            int(h),
            int(w),
            classes,
            np.concatenate(box_rows) if box_rows else np.zeros([0, 4]),
            rles,
            np.asarray(group_of, bool),
            pos,
            neg,
        )
    report = {
        "images": len(out),
        "mask_rows": len(masks),
        "bbox_rows": len(boxes),
        "label_rows": len(labels),
        "masks_paired_with_boxes": int(len(mask_pos)),
        "box_only_rows": int(box_only.sum()),
        "skipped": {"masks_csv": skip_m.as_dict(), "bbox_csv": skip_b.as_dict(), "labels_csv": skip_l.as_dict()},
    }
    return out, report


def ground_truth_as_detections(gt: ImageGroundTruth, score: float = 1.0, *, drop_classes: Iterable[str] = ()):
    """The instances with masks of ``gt`` as :class:`~hierseg.detections.Detections` (label paths empty):
    a perfect prediction, used by tests and benchmarks."""
    from hierseg.detections import Detections
    from hierseg.rle import rle_boxes

    drop = set(drop_classes)
    keep = [k for k, (c, r) in enumerate(zip(gt.classes, gt.rles)) if r is not None and c not in drop]
    rles = [gt.rles[k] for k in keep]
    return Detections(
        gt.image_id,
        gt.height,
        gt.width,
        [gt.classes[k] for k in keep],
        np.full(len(keep), score, np.float32),
        rle_boxes(rles).astype(np.float32),
        rles,
    )
