"""COCO-format JSON of a prepared validation split, built from its written shards.

Reading the shards back (instead of keeping masks in memory during the pixel stage) makes the JSON
describe exactly what was written, whichever runner wrote it and however many times it was resumed.

Format: ``images`` {id, file_name "<ImageID>.jpg", height, width} where ``id`` is the records'
``image/source_id`` (1.. in ImageID order over the planned images, so an image skipped at the pixel
stage leaves a gap) and ``file_name`` their ``image/filename`` (original image sizes: images are never
resized); ``annotations`` {id, image_id, category_id 1..K,
segmentation: COCO RLE with ``counts`` as str, area (mask pixels), bbox [x, y, w, h] in pixels from the
annotated box, iscrowd}; ``categories`` {id, name (display name), mid}.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np
from PIL import Image

from data_prep import storage
from data_prep.tfrecord import read_records
from hierseg import features as F
from hierseg.label_map import LabelMap
from hierseg.oid.mask_codec import encode_rle


def _records(path: str):
    from data_prep.tf_example import example_class

    example = example_class()
    for rec in read_records(storage.read_bytes(path), source=path):
        yield example.FromString(rec)


def build_coco(shard_paths: Sequence[str], label_map: LabelMap) -> dict:
    """The COCO dict of the Examples in ``shard_paths`` (duplicates of an image are kept once)."""
    per_image: dict[int, list] = {}
    for path in shard_paths:
        for ex in _records(path):
            f = ex.features.feature
            sid = int(f[F.IMAGE_SOURCE_ID].bytes_list.value[0].decode())
            if sid in per_image:
                continue
            file_name = f[F.IMAGE_FILENAME].bytes_list.value[0].decode()
            h = int(f[F.IMAGE_HEIGHT].int64_list.value[0])
            w = int(f[F.IMAGE_WIDTH].int64_list.value[0])
            anns = []
            for i, png in enumerate(f[F.OBJECT_MASK].bytes_list.value):
                mask = np.array(Image.open(io.BytesIO(png))) > 0  # 0/1 PNGs (0/255 read the same)
                rle = encode_rle(mask)
                x0 = f[F.OBJECT_XMIN].float_list.value[i] * w
                x1 = f[F.OBJECT_XMAX].float_list.value[i] * w
                y0 = f[F.OBJECT_YMIN].float_list.value[i] * h
                y1 = f[F.OBJECT_YMAX].float_list.value[i] * h
                anns.append(
                    {
                        "category_id": int(f[F.OBJECT_CLASS_LABEL].int64_list.value[i]),
                        "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                        "area": int(mask.sum()),
                        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                        "iscrowd": int(f[F.OBJECT_IS_CROWD].int64_list.value[i]),
                    }
                )
            per_image[sid] = [file_name, h, w, anns]
    images, annotations = [], []
    for img_id in sorted(per_image):
        file_name, h, w, anns = per_image[img_id]
        images.append({"id": img_id, "file_name": file_name, "height": h, "width": w})
        for a in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": img_id, **a})
    categories = [{"id": i + 1, "name": n, "mid": m} for i, (m, n) in enumerate(zip(label_map.mids, label_map.names))]
    return {
        "info": {"description": "hierseg prepared validation set"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def write_coco(coco: dict, path: str) -> None:
    storage.write_text(path, json.dumps(coco, separators=(",", ":")))
