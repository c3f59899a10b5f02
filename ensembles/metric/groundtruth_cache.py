"""A disk cache of a split's decoded ground truth, so that re-evaluating only decodes the submission.

The cache file is ``{cache_dir}/oid-gt-{split}-{key}.npz``; ``key`` hashes every input file's path,
size and modification time (the CSVs, the 16 mask zips, the image-size CSV or image folder), the
class list and the loading options. A changed input gives another key, so the stale file is never
read; writing a new file removes the split's older ones. Files are written atomically (a temporary
file renamed into place) and read with ``allow_pickle=False``: the cache holds only arrays.

Layout (one row per instance, images in ImageID order): ``image_ids`` [I] str, ``sizes`` [I, 2]
int64 (height, width), ``inst_image`` [N] int64 image row, ``inst_class`` [N] str, ``boxes`` [N, 4]
float64, ``has_mask``/``group_of`` [N] bool, ``counts`` uint8 (all RLE counts strings end to end)
with ``counts_end`` [N] int64, ``label_image`` [L] int64, ``label_class`` [L] str, ``label_positive``
[L] bool, ``report`` uint8 (the loader's report as UTF-8 JSON).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import zipfile

import numpy as np

from ensembles.metric.groundtruth import ImageGroundTruth
from hierseg import atomic_write

CACHE_VERSION = 1  # bump when the layout or the loading rules change


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/hierseg/oid_eval`` (``~/.cache/hierseg/oid_eval`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "hierseg", "oid_eval")


def _stat(path: str) -> tuple[int, int]:
    """(size, mtime in ns) of a local file or folder, or of a gs:// file; (-1, -1) when missing."""
    try:
        if "://" in path:
            import tensorflow as tf

            st = tf.io.gfile.stat(path)
            return int(st.length), int(st.mtime_nsec)
        st = os.stat(path)
        return int(st.st_size), int(st.st_mtime_ns)
    except (OSError, FileNotFoundError):
        return -1, -1
    except Exception as e:  # tf.errors.NotFoundError is not an OSError
        if type(e).__name__ == "NotFoundError":
            return -1, -1
        raise


def cache_path(cache_dir: str, split: str, files: list[str], extra: dict) -> str:
    """The cache file of a split given its input files and loading options."""
    stamp = [CACHE_VERSION, [(os.path.abspath(f) if "://" not in f else f, *_stat(f)) for f in files], extra]
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, f"oid-gt-{split}-{key}.npz")


def write(path: str, gts: dict[str, ImageGroundTruth], report: dict) -> None:
    """Writes the ground truth atomically and removes the split's older cache files."""
    ids = sorted(gts)
    items = [gts[i] for i in ids]
    counts = [r["counts"] for g in items for r in g.instances.rles]
    arrays = {
        "image_ids": np.asarray(ids, dtype=str),
        "sizes": np.asarray([(g.height, g.width) for g in items], np.int64).reshape([-1, 2]),
        "inst_image": np.repeat(np.arange(len(items)), [len(g) for g in items]).astype(np.int64),
        "inst_class": np.asarray([c for g in items for c in g.classes], dtype=str),
        "boxes": np.concatenate([g.boxes.astype(np.float64) for g in items] or [np.zeros([0, 4])]),
        "has_mask": np.concatenate([g.has_mask for g in items] or [np.zeros([0], bool)]),
        "group_of": np.concatenate([g.is_group_of for g in items] or [np.zeros([0], bool)]),
        "counts": np.frombuffer(b"".join(counts), np.uint8),
        "counts_end": np.cumsum([len(c) for c in counts], dtype=np.int64),
        "label_image": np.asarray(
            [k for k, g in enumerate(items) for _ in (*g.positive_labels, *g.negative_labels)], np.int64
        ),
        "label_class": np.asarray([c for g in items for c in (*g.positive_labels, *g.negative_labels)], dtype=str),
        "label_positive": np.asarray(
            [p for g in items for p in [True] * len(g.positive_labels) + [False] * len(g.negative_labels)], bool
        ),
        "report": np.frombuffer(json.dumps(report).encode("utf-8"), np.uint8),
    }
    with atomic_write.atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    directory = os.path.dirname(path) or "."
    prefix = os.path.basename(path).rsplit("-", 1)[0]
    for old in glob.glob(os.path.join(directory, f"{prefix}-*.npz")):
        if os.path.abspath(old) != os.path.abspath(path):
            os.remove(old)


def read(path: str) -> tuple[dict[str, ImageGroundTruth], dict] | None:
    """The cached ground truth and report, or None when there is no (readable) cache file."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # a damaged file is rebuilt, never trusted
    ends = a["counts_end"]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    raw = a["counts"].tobytes()
    inst_start = np.searchsorted(a["inst_image"], np.arange(len(a["image_ids"]) + 1))
    lab_start = np.searchsorted(a["label_image"], np.arange(len(a["image_ids"]) + 1))
    classes, label_class = a["inst_class"].tolist(), a["label_class"].tolist()
    out: dict[str, ImageGroundTruth] = {}
    for k, image_id in enumerate(a["image_ids"].tolist()):
        h, w = (int(v) for v in a["sizes"][k])
        i0, i1 = inst_start[k], inst_start[k + 1]
        rles = [{"size": [h, w], "counts": raw[starts[j] : ends[j]]} for j in range(i0, i1)]
        has_mask = a["has_mask"][i0:i1]
        l0, l1 = lab_start[k], lab_start[k + 1]
        positive = a["label_positive"][l0:l1]
        out[image_id] = ImageGroundTruth.from_annotations(
            image_id,
            h,
            w,
            classes[i0:i1],
            a["boxes"][i0:i1],
            [r if m else None for r, m in zip(rles, has_mask)],
            a["group_of"][i0:i1],
            [c for c, p in zip(label_class[l0:l1], positive) if p],
            [c for c, p in zip(label_class[l0:l1], positive) if not p],
        )
    return out, json.loads(a["report"].tobytes().decode("utf-8"))
