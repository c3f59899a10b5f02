"""The ground truth of a split, from the dataset folder: masks CSV + zip PNGs, bbox CSV, labels CSV.

:func:`load_ground_truth` reads the three CSVs, pairs mask rows with bbox rows, decodes every mask
PNG, resizes it to its image's size exactly as PIL's ``NEAREST`` does
(:meth:`~hierseg.oid.mask_zip.MaskZipReader.read_resized_rle`, the convention of data preparation too)
and keeps it as an RLE. Decoding runs in ``num_workers`` processes.

The result is cached (:mod:`ensembles.metric.groundtruth_cache`): a second evaluation of the same
split, with the same input files (sizes and modification times), loads it instead of decoding.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ensembles.metric.groundtruth import ImageGroundTruth
from ensembles.process_pool import process_pool
from hierseg.hierarchy import Hierarchy


def _match_masks_to_boxes(masks, boxes, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs mask rows with bbox rows of the same image and class whose coordinates agree within
    ``tolerance`` (greedy by coordinate distance, one-to-one).

    The bbox CSV has no BoxID, so this is how the two files meet (the official tool merges on exact
    float equality of the coordinates, which its own comments call fragile).
    Returns (mask row positions, bbox row positions) of the pairs.
    """
    import pandas as pd

    coords = ("x0", "x1", "y0", "y1")

    def keyed(table, box_columns: tuple[str, ...], prefix: str) -> pd.DataFrame:
        """ImageID, LabelName, the row position ``{prefix}i`` and the box as ``{prefix}x0`` ... ``{prefix}y1``."""
        columns = {"ImageID": table["ImageID"].to_numpy(), "LabelName": table["LabelName"].to_numpy()}
        columns[f"{prefix}i"] = np.arange(len(table))
        columns.update({f"{prefix}{c}": table[col].to_numpy() for c, col in zip(coords, box_columns)})
        return pd.DataFrame(columns)

    m = keyed(masks, ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"), "m")
    b = keyed(boxes, ("XMin", "XMax", "YMin", "YMax"), "b")
    pairs = m.merge(b, on=["ImageID", "LabelName"])
    if pairs.empty:
        return np.zeros([0], np.int64), np.zeros([0], np.int64)
    dist = np.max(np.abs(np.stack([pairs[f"m{c}"] - pairs[f"b{c}"] for c in coords], axis=1)), axis=1)
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


_READER: list = []  # the worker's MaskZipReader: sent once per process, so each opens every zip once


def _set_reader(reader) -> None:
    _READER[:] = [reader]


def _encode_masks_of_image(task: tuple) -> tuple[str, list[dict]]:
    image_id, mask_paths, h, w = task
    return image_id, [_READER[0].read_resized_rle(p, h, w) for p in mask_paths]


def _decode_masks(reader, tasks: list[tuple], num_workers: int, show_progress: bool) -> dict[str, list[dict]]:
    """{ImageID: RLEs of its mask rows, in task order}, decoded in ``num_workers`` processes."""
    from tqdm import tqdm

    rles_of: dict[str, list[dict]] = {}
    bar = tqdm(total=len(tasks), desc="ground-truth masks", unit="img", disable=not show_progress)
    try:
        if num_workers > 1 and len(tasks) > 1:
            with process_pool(num_workers, _set_reader, (reader,)) as pool:
                for image_id, rles in pool.imap_unordered(_encode_masks_of_image, tasks, chunksize=16):
                    rles_of[image_id] = rles
                    bar.update(1)
        else:
            _set_reader(reader)
            for t in tasks:
                image_id, rles = _encode_masks_of_image(t)
                rles_of[image_id] = rles
                bar.update(1)
    finally:
        _READER.clear()
        bar.close()
    return rles_of


def _slices(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by image code: (row order, [n + 1] start offsets into it)."""
    order = np.argsort(codes, kind="stable")
    return order, np.searchsorted(codes[order], np.arange(n + 1))


def input_files(oid_dir: str, split: str, image_sizes_csv: str | None = None) -> list[str]:
    """Every file the ground truth of a split is read from (the cache key's inputs)."""
    from hierseg.oid.layout import OidPaths

    paths = OidPaths.from_dir(oid_dir)
    files = [paths.masks_csv(split), paths.bbox_csv(split), paths.labels_csv(split), *paths.mask_zips(split)]
    return files + [image_sizes_csv or paths.image_dir(split)]


def load_ground_truth(
    oid_dir: str,
    split: str,
    hierarchy: Hierarchy,
    *,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    image_sizes_csv: str | None = None,
    on_error: str = "raise",
    box_tolerance: float = 1e-4,
    num_workers: int = 1,
    cache_dir: str | None = None,
    show_progress: bool = False,
) -> tuple[dict[str, ImageGroundTruth], dict]:
    """The ground truth of a split from the dataset folder.

    Each mask row is paired with the bbox row of the same image and class whose coordinates agree
    within ``box_tolerance`` (that row's IsGroupOf applies); bbox rows without a mask are box-only
    ground truth; a mask row without a bbox row is a non-group-of instance with the masks CSV's box.

    Args:
      image_sizes: ImageID -> (height, width); else ``image_sizes_csv`` (``ImageID,Width,Height``, as
        :class:`~hierseg.oid.image_size.ImageSizeCache` writes it; missing images are read from their
        headers and added), else the split's image headers (only images with masks need a size).
      on_error: "raise" or "skip" for bad CSV rows (classes outside the hierarchy included).
      num_workers: processes decoding mask PNGs.
      cache_dir: where the decoded ground truth is cached (None: no cache). Not used with ``image_sizes``.
    Returns:
      ({ImageID: ImageGroundTruth} sorted by ImageID, a report with row counts, skips and ``cache``:
      "hit", "written" or "off").
    """
    from ensembles.metric import groundtruth_cache as cache

    path = None
    if cache_dir is not None and image_sizes is None:
        extra = {"split": split, "on_error": on_error, "box_tolerance": box_tolerance, "classes": hierarchy.classes}
        path = cache.cache_path(cache_dir, split, input_files(oid_dir, split, image_sizes_csv), extra)
        hit = cache.read(path)
        if hit is not None:
            hit[1]["cache"] = "hit"
            return hit
    gts, report = _load(
        oid_dir, split, hierarchy, image_sizes, image_sizes_csv, on_error, box_tolerance, num_workers, show_progress
    )
    report["cache"] = "off"
    if path is not None:
        cache.write(path, gts, report)
        report["cache"] = "written"
    return gts, report


def _read_tables(paths, split: str, hierarchy: Hierarchy, on_error: str, box_tolerance: float):
    """The three CSVs, mask rows paired with bbox rows: (masks, their IsGroupOf, box-only rows,
    labels, report)."""
    from hierseg.oid.tables import read_bbox_csv, read_image_labels_csv, read_segmentation_csv

    mids = hierarchy.classes
    masks, skip_m = read_segmentation_csv(paths.masks_csv(split), valid_mids=mids, on_error=on_error)
    boxes, skip_b = read_bbox_csv(paths.bbox_csv(split), valid_mids=mids, on_error=on_error)
    labels, skip_l = read_image_labels_csv(paths.labels_csv(split), valid_mids=mids, on_error=on_error)
    mask_pos, box_pos = _match_masks_to_boxes(masks, boxes, box_tolerance)
    mask_group_of = np.zeros(len(masks), bool)
    mask_group_of[mask_pos] = boxes["IsGroupOf"].to_numpy(bool)[box_pos]
    box_only = np.ones(len(boxes), bool)
    box_only[box_pos] = False
    report = {
        "mask_rows": len(masks),
        "bbox_rows": len(boxes),
        "label_rows": len(labels),
        "masks_paired_with_boxes": int(len(mask_pos)),
        "box_only_rows": int(box_only.sum()),
        "skipped": {"masks_csv": skip_m.as_dict(), "bbox_csv": skip_b.as_dict(), "labels_csv": skip_l.as_dict()},
    }
    return masks, mask_group_of, boxes[box_only], labels, report


def _load(oid_dir, split, hierarchy, image_sizes, image_sizes_csv, on_error, box_tolerance, num_workers, show_progress):
    import pandas as pd

    from hierseg.oid.image_size import ImageSizeCache
    from hierseg.oid.layout import OidPaths
    from hierseg.oid.mask_zip import MaskZipReader

    paths = OidPaths.from_dir(oid_dir)
    masks, mask_group_of, boxes, labels, report = _read_tables(paths, split, hierarchy, on_error, box_tolerance)
    image_ids = sorted(set(masks["ImageID"]) | set(boxes["ImageID"]) | set(labels["ImageID"]))
    index = pd.Index(image_ids)
    m_order, m_start = _slices(index.get_indexer(masks["ImageID"]), len(image_ids))
    b_order, b_start = _slices(index.get_indexer(boxes["ImageID"]), len(image_ids))
    l_order, l_start = _slices(index.get_indexer(labels["ImageID"]), len(image_ids))
    masked = [i for k, i in enumerate(image_ids) if m_start[k + 1] > m_start[k]]
    if image_sizes is None:
        sizes = ImageSizeCache(image_sizes_csv)
        image_sizes = sizes.get_many(masked, [paths.image_path(split, i) for i in masked], show_progress=show_progress)
    missing = [i for i in masked if i not in image_sizes]
    if missing:
        raise ValueError(f"no image size for {len(missing)} images with masks, e.g. {missing[:3]}")

    mask_paths = masks["MaskPath"].to_numpy()
    first = dict(zip(image_ids, range(len(image_ids))))
    tasks = [(i, list(mask_paths[m_order[m_start[first[i]] : m_start[first[i] + 1]]]), *image_sizes[i]) for i in masked]
    rles_of = _decode_masks(MaskZipReader.for_split(paths, split), tasks, num_workers, show_progress)

    m_cls, b_cls, l_cls = (t["LabelName"].to_numpy() for t in (masks, boxes, labels))
    m_box = masks[["BoxYMin", "BoxXMin", "BoxYMax", "BoxXMax"]].to_numpy(np.float64)
    b_box = boxes[["YMin", "XMin", "YMax", "XMax"]].to_numpy(np.float64)
    b_grp = boxes["IsGroupOf"].to_numpy(bool)
    conf = labels["Confidence"].to_numpy()
    out: dict[str, ImageGroundTruth] = {}
    for k, image_id in enumerate(image_ids):
        mi, bi = m_order[m_start[k] : m_start[k + 1]], b_order[b_start[k] : b_start[k + 1]]
        li = l_order[l_start[k] : l_start[k + 1]]
        h, w = image_sizes.get(image_id, (0, 0))
        out[image_id] = ImageGroundTruth.from_annotations(
            image_id,
            int(h),
            int(w),
            [*m_cls[mi], *b_cls[bi]],
            np.concatenate([m_box[mi], b_box[bi]]),
            [*rles_of.get(image_id, []), *[None] * len(bi)],
            np.concatenate([mask_group_of[mi], b_grp[bi]]),
            list(l_cls[li][conf[li] == 1]),
            list(l_cls[li][conf[li] == 0]),
        )
    return out, {"images": len(out), **report}
