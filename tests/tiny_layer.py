"""A tiny prepared layer folder for the training tests: a few images of flat-coloured shapes.

Written in the layout ``hierseg prepare`` produces (:class:`hierseg.layout.PreparedLayer`: one train
and one validation shard, label map, COCO validation JSON), its records built by data_prep's
``build_example``, with the SAME images in train and validation so that a model can be checked to
overfit them: ``synthetic_scene``'s "scattered" images (each class its own colour and shape: 1
rectangle, 2 ellipse, 3 diamond, on a noisy background).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from pycocotools import mask as coco_mask
from synthetic_scene import synthetic_scene

from data_prep.pixels import encode_mask_png
from data_prep.tf_example import build_example
from hierseg import features as F
from hierseg.atomic_write import write_json
from hierseg.label_map import LabelMap
from hierseg.layout import PreparedLayer

MIDS = ("/m/tiny_rect", "/m/tiny_ellipse", "/m/tiny_diamond")
NAMES = ("Rectangle", "Ellipse", "Diamond")


def encode_example(
    image: np.ndarray,
    masks: np.ndarray,
    classes: list[int],
    mids: list[str],
    source_id: str,
    is_crowd: list[int] | None = None,
    weight: float | None = None,
    fmt: str = "png",
    coco_id: int | None = None,
) -> bytes:
    """One serialized tf.Example built by data_prep's own ``build_example`` (boxes: the masks' tight boxes;
    masks by data_prep's ``encode_mask_png``), as ``hierseg prepare`` writes it: ``source_id`` is the
    ImageID (``image/filename`` = ``<source_id>.jpg``, what the decoder reports), ``coco_id`` the numeric
    id in ``image/source_id`` (the ImageID itself when None).

    ``weight`` None writes data_prep's default 1.0. ``classes`` or ``mids`` of another length than
    ``masks`` make an inconsistent record (for the decoder's error tests): the Example is built
    consistent, then that one list is overwritten.
    """
    h, w = image.shape[:2]
    n = len(masks)
    encoded = (tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=95)).numpy()
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([ys.min() / h, xs.min() / w, (ys.max() + 1) / h, (xs.max() + 1) / w])
    example = build_example(
        image=encoded,
        image_format=fmt,
        height=h,
        width=w,
        source_id=str(coco_id) if coco_id is not None else source_id,
        filename=f"{source_id}.jpg",  # the decoder's SOURCE_ID (ImageID) is this file name's stem
        boxes=np.asarray(boxes, np.float32).reshape([-1, 4]),
        class_ids=(list(classes) + [1] * n)[:n],
        mids=(list(mids) + ["/m/x"] * n)[:n],
        is_crowd=is_crowd if is_crowd is not None else [0] * n,
        mask_pngs=[encode_mask_png(m) for m in masks],
        weight=1.0 if weight is None else weight,
    )
    feature = example.features.feature
    if len(classes) != n:
        feature[F.OBJECT_CLASS_LABEL].int64_list.value[:] = [int(c) for c in classes]
    if len(mids) != n:
        feature[F.OBJECT_CLASS_TEXT].bytes_list.value[:] = [m.encode() for m in mids]
    return example.SerializeToString(deterministic=True)


def write_tiny_layer(out_dir: Path, num_images: int = 6, height: int = 96, width: int = 128, seed: int = 0) -> Path:
    """Writes the folder; returns it. Image sizes vary a little around ``height x width``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    records = []
    for k in range(num_images):
        h, w = height + 8 * (k % 3), width - 8 * (k % 2)
        scene = synthetic_scene(rng, h, w, 3, "scattered")
        image, masks, classes = scene.image, scene.masks, scene.classes
        source_id = f"{k:016x}"
        records.append(
            encode_example(
                image, masks, classes, [MIDS[c - 1] for c in classes], source_id, weight=1.0, fmt="jpeg", coco_id=k + 1
            )
        )
        images.append({"id": k + 1, "file_name": f"{source_id}.jpg", "source_id": source_id, "height": h, "width": w})
        for m, c in zip(masks, classes):
            rle = coco_mask.encode(np.asfortranarray(m))
            x, y, bw, bh = (float(v) for v in coco_mask.toBbox(rle))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": c,
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                    "bbox": [x, y, bw, bh],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                }
            )
    layer = PreparedLayer(out_dir)
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(layer.shard(split, 0, 1)) as w:
            for r in records:
                w.write(r)
    LabelMap.from_classes(MIDS, NAMES).save(layer.label_map)
    categories = [{"id": i + 1, "name": n, "mid": m} for i, (m, n) in enumerate(zip(MIDS, NAMES))]
    write_json(
        layer.validation_coco_json,
        {"images": images, "annotations": annotations, "categories": categories},
        indent=None,
    )
    return out_dir
