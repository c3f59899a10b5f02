"""Hierarchical semantic prediction over an image folder: Layer0 and Layer1 DeepLab exports -> label paths.

Per image (sorted path order), both exports' ``serve_images`` give ``semantic_labels`` ``[S, S]``;
each is cropped to the scaled content (``image_info[1]``), resized (nearest) to the original size and
fused by :class:`hierseg.serving.semantic_paths.PathFuser`. Written atomically into ``out_dir``:

* ``layer0/<ImageID>.png``, ``layer1/<ImageID>.png``: class ids of each layer's label map (8-bit PNG,
  16-bit when a layer has more than 255 classes), 0 = background;
* ``overlay/<ImageID>.png``: the image with each label path's pixels in colour and a legend of paths;
* ``images/<ImageID>.json``: the image's label paths (MIDs and names) with pixel counts, or its read
  error; written last, so its presence marks the image done: **running again resumes** with the rest;
* ``summary.json``: every image's entry plus the pixel count of each label path over the folder and,
  with ground truth (label PNGs ``<ImageID>.png`` of each layer, as written here, 255 = ignore), the
  hierarchical mIoU of the fused paths and each level's mIoU
  (:class:`hierseg.evaluation.semantic_metric.HierarchicalConfusion`), computed over every image.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
from tqdm import tqdm

from hierseg import atomic_write
from hierseg import features as F
from hierseg.evaluation.semantic_metric import HierarchicalConfusion
from hierseg.hierarchy import Hierarchy
from hierseg.serving import image_io
from hierseg.serving.predictor import LayerPredictor
from hierseg.serving.semantic_paths import PathFuser, draw_paths, resize_labels_nearest

SUBDIRS = ("layer0", "layer1", "overlay", "images")


def _atomic_save(write, path: str) -> None:
    with atomic_write.atomic_path(path) as tmp:
        write(tmp)


def _save_json(data: dict, path: str) -> None:
    def write(p):
        with open(p, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)

    _atomic_save(write, path)


def _semantic_labels(predictor: LayerPredictor, images: np.ndarray, infos: np.ndarray) -> np.ndarray:
    out = predictor.run(images, infos)
    if F.SEMANTIC_LABELS not in out:
        raise ValueError(f"{predictor.export_dir}: not a semantic export (outputs {sorted(out)}); train deeplab_v3plus")
    return out[F.SEMANTIC_LABELS]


def _to_original(labels: np.ndarray, info: np.ndarray) -> np.ndarray:
    sh, sw = (int(round(float(v))) for v in info[1])
    h, w = (int(round(float(v))) for v in info[0])
    return resize_labels_nearest(labels[:sh, :sw], h, w)


def predict_semantic_folder(
    layer0_dir: str,
    layer1_dir: str,
    images: str,
    out_dir: str,
    *,
    hierarchy: Hierarchy,
    batch_size: int = 4,
    apply_exif: bool = True,
    show_progress: bool = True,
    groundtruth: tuple[str, str] | None = None,
) -> dict:
    """Runs the folder (see the module docstring) and returns the summary dict written to summary.json."""
    predictors = [LayerPredictor(layer0_dir), LayerPredictor(layer1_dir)]
    fuser = PathFuser(predictors[0].mids, predictors[1].mids, hierarchy)
    names = dict(zip(predictors[1].label_map.mids, predictors[1].label_map.names))
    names.update(zip(predictors[0].label_map.mids, predictors[0].label_map.names))
    for sub in SUBDIRS:
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    paths = image_io.list_images(images)
    done = {n[:-5] for n in os.listdir(os.path.join(out_dir, "images")) if n.endswith(".json")}
    pending = [p for p in paths if image_io.image_id_of(p) not in done]
    sizes = [p.output_size for p in predictors]
    dataset = image_io.image_dataset(pending, sizes, apply_exif=apply_exif)

    def finish(batch: list[dict]) -> None:
        ok = [e for e in batch if e[image_io.OK]]
        labels = []
        for predictor in predictors:
            s = predictor.output_size
            if ok:
                stack = np.stack([e[f"image_{s}"] for e in ok])
                infos = np.stack([e[f"image_info_{s}"] for e in ok])
                labels.append(_semantic_labels(predictor, stack, infos))
        k = 0
        for e in batch:
            image_id = image_io.image_id_of(e[image_io.PATH].decode("utf-8"))
            if not e[image_io.OK]:
                _save_json(
                    {"image_id": image_id, "error": e[image_io.ERROR].decode("utf-8")}, _entry(out_dir, image_id)
                )
                continue
            maps = [_to_original(labels[i][k], e[f"image_info_{sizes[i]}"]) for i in range(2)]
            k += 1
            _write_image(out_dir, image_id, e[image_io.ORIGINAL], maps, fuser, names)

    batch: list[dict] = []
    for element in tqdm(dataset.as_numpy_iterator(), total=len(pending), disable=not show_progress, unit="img"):
        batch.append(element)
        if len(batch) == batch_size:
            finish(batch)
            batch = []
    if batch:
        finish(batch)
    return _write_summary(out_dir, paths, fuser, groundtruth)


def _entry(out_dir: str, image_id: str) -> str:
    return os.path.join(out_dir, "images", f"{image_id}.json")


def _write_image(out_dir: str, image_id: str, image: np.ndarray, maps: list, fuser: PathFuser, names: dict) -> None:
    for layer, labels in zip(("layer0", "layer1"), maps):
        image_io.save_label_png(labels, os.path.join(out_dir, layer, f"{image_id}.png"))
    path_ids, label_paths = fuser.fuse(maps[0], maps[1])
    overlay = draw_paths(image, path_ids, label_paths, lambda m: names.get(m, m))
    _atomic_save(lambda p: overlay.save(p, format="PNG"), os.path.join(out_dir, "overlay", f"{image_id}.png"))
    counts = np.bincount(path_ids.ravel(), minlength=len(label_paths))
    entry = {
        "image_id": image_id,
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "label_paths": [
            {"mids": list(p), "names": [names.get(m, m) for m in p], "pixels": int(counts[k])}
            for k, p in enumerate(label_paths)
            if p and counts[k] > 0
        ],
        "background_pixels": int(counts[0]),
    }
    _save_json(entry, _entry(out_dir, image_id))


def _write_summary(out_dir: str, paths: list[str], fuser: PathFuser, groundtruth: tuple[str, str] | None) -> dict:
    entries, totals = [], Counter()
    sizes = [len(fuser.layer0_mids) + 1, len(fuser.layer1_mids) + 1]
    confusion = HierarchicalConfusion(sizes, F.SEMANTIC_IGNORE) if groundtruth else None
    for p in paths:
        image_id = image_io.image_id_of(p)
        with open(_entry(out_dir, image_id), encoding="utf-8") as f:
            entry = json.load(f)
        entries.append(entry)
        for lp in entry.get("label_paths", []):
            totals[" › ".join(lp["names"])] += lp["pixels"]
        if confusion is not None and "error" not in entry:
            pred = [
                image_io.read_label_png(os.path.join(out_dir, layer, f"{image_id}.png"))
                for layer in ("layer0", "layer1")
            ]
            true = [image_io.read_label_png(os.path.join(d, f"{image_id}.png")) for d in groundtruth]
            if true[0].shape != pred[0].shape or true[1].shape != pred[0].shape:
                raise ValueError(f"{groundtruth[0]}/{image_id}.png: ground truth size differs from the image")
            confusion.update(fuser.levels(true[0], true[1], F.SEMANTIC_IGNORE), fuser.levels(pred[0], pred[1], 0))
    summary = {
        "num_images": len(entries),
        "num_unreadable": sum("error" in e for e in entries),
        "label_path_pixels": dict(sorted(totals.items())),
        "images": entries,
    }
    if confusion is not None:
        summary["hierarchical"] = confusion.result()
    _save_json(summary, os.path.join(out_dir, "summary.json"))
    return summary
