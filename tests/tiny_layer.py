"""A tiny prepared layer folder for the training tests: a few images of flat-coloured shapes.

Written in the layout ``hierseg prepare`` produces (:class:`hierseg.layout.PreparedLayer`: one train
and one validation shard, label map, COCO validation JSON), its records built by data_prep's
``build_example``, with the SAME images in train and validation so that a model can be checked to
overfit them. Each class has its own colour and shape (1 rectangle, 2 ellipse, 3 diamond), on a
noisy background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from pycocotools import mask as coco_mask

from data_prep.tf_example import build_example
from hierseg import features as F
from hierseg.atomic_write import write_json
from hierseg.label_map import LabelMap
from hierseg.layout import PreparedLayer

COLORS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (50, 70, 230)}
MIDS = ("/m/tiny_rect", "/m/tiny_ellipse", "/m/tiny_diamond")
NAMES = ("Rectangle", "Ellipse", "Diamond")


def _shape_mask(cls: int, h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    if cls == 1:
        m = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    elif cls == 2:
        m = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1.0
    else:
        m = np.abs(yy + 0.5 - cy) / ry + np.abs(xx + 0.5 - cx) / rx <= 1.0
    return m.astype(np.uint8)


def make_image(rng: np.random.Generator, h: int, w: int, max_objects: int = 3):
    """-> image uint8 [h, w, 3], masks uint8 [n, h, w], classes [n] (objects do not overlap)."""
    image = rng.integers(90, 160, size=[h, w, 3]).astype(np.uint8)
    masks, classes, taken = [], [], np.zeros([h, w], bool)
    for _ in range(20):
        if len(classes) == max_objects:
            break
        cls = int(rng.integers(1, 4))
        bh, bw = int(rng.integers(h // 4, h // 2)), int(rng.integers(w // 4, w // 2))
        y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        if taken[max(0, y0 - 2) : y0 + bh + 2, max(0, x0 - 2) : x0 + bw + 2].any():
            continue
        m = _shape_mask(cls, h, w, y0, x0, y0 + bh, x0 + bw)
        taken |= m.astype(bool)
        image[m.astype(bool)] = COLORS[cls]
        masks.append(m)
        classes.append(cls)
    return image, np.stack(masks), classes


def encode_example(
    image: np.ndarray,
    masks: np.ndarray,
    classes: list[int],
    mids: list[str],
    source_id: str,
    is_crowd: list[int] | None = None,
    weight: float | None = None,
    fmt: str = "png",
) -> bytes:
    """One serialized tf.Example built by data_prep's own ``build_example`` (boxes: the masks' tight boxes).

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
        source_id=source_id,
        boxes=np.asarray(boxes, np.float32).reshape([-1, 4]),
        class_ids=(list(classes) + [1] * n)[:n],
        mids=(list(mids) + ["/m/x"] * n)[:n],
        is_crowd=is_crowd if is_crowd is not None else [0] * n,
        mask_pngs=[tf.io.encode_png((m[..., None] * 255).astype(np.uint8)).numpy() for m in masks],
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
        image, masks, classes = make_image(rng, h, w)
        source_id = f"{k:016x}"
        records.append(
            encode_example(image, masks, classes, [MIDS[c - 1] for c in classes], source_id, weight=1.0, fmt="jpeg")
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
