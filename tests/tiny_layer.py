"""A tiny prepared layer folder for the training tests: a few images of flat-coloured shapes.

Written in exactly the layout ``hierseg prepare`` produces (COMMON.md: ``train-*.tfrecord`` and
``validation-*.tfrecord`` with the hierseg.features keys, ``label_map.pbtxt``, ``validation_coco.json``),
with the SAME images in train and validation so that a model can be checked to overfit them. Each
class has its own colour and shape (1 rectangle, 2 ellipse, 3 diamond), on a noisy background.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from pycocotools import mask as coco_mask

from hierseg import features as F
from hierseg.label_map import LabelMap

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
    """One tf.Example in the layout data_prep writes (OD API keys; boxes are the masks' tight boxes)."""
    h, w = image.shape[:2]
    encoded = (tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=95)).numpy()
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([ys.min() / h, xs.min() / w, (ys.max() + 1) / h, (xs.max() + 1) / w])
    boxes = np.asarray(boxes, np.float32).reshape([-1, 4])
    pngs = [tf.io.encode_png((m[..., None] * 255).astype(np.uint8)).numpy() for m in masks]

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    def f(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    feats = {
        F.IMAGE_ENCODED: b([encoded]),
        F.IMAGE_FORMAT: b([fmt.encode()]),
        F.IMAGE_HEIGHT: i([h]),
        F.IMAGE_WIDTH: i([w]),
        F.IMAGE_SOURCE_ID: b([source_id.encode()]),
        F.OBJECT_YMIN: f(boxes[:, 0]),
        F.OBJECT_XMIN: f(boxes[:, 1]),
        F.OBJECT_YMAX: f(boxes[:, 2]),
        F.OBJECT_XMAX: f(boxes[:, 3]),
        F.OBJECT_CLASS_LABEL: i(classes),
        F.OBJECT_CLASS_TEXT: b([m.encode() for m in mids]),
        F.OBJECT_IS_CROWD: i(is_crowd if is_crowd is not None else [0] * len(classes)),
        F.OBJECT_MASK: b(pngs),
    }
    if weight is not None:
        feats[F.EXAMPLE_WEIGHT] = f([weight])
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


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
    for split in ("train", "validation"):
        with tf.io.TFRecordWriter(str(out_dir / f"{split}-00000-of-00001.tfrecord")) as w:
            for r in records:
                w.write(r)
    LabelMap.from_classes(MIDS, NAMES).save(str(out_dir / "label_map.pbtxt"))
    categories = [{"id": i + 1, "name": n, "mid": m} for i, (m, n) in enumerate(zip(MIDS, NAMES))]
    with open(out_dir / "validation_coco.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return out_dir
