"""Input pipeline speed: images/s of the training and eval pipelines on this machine; prints a table.

Writes ``--images`` synthetic Open Images-sized examples (JPEG, longer side 1024, ``--instances``
PNG masks each) into TFRecords in the prepared layout, then times ``build_dataset`` at the given
output sizes with the default anchors (P2-P6, 3 aspect ratios) after a warm-up batch.

    python bench/input_pipeline.py [--images 32] [--instances 6] [--sizes 512,1024] [--batch_size 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hierseg import features as F  # noqa: E402
from hierseg.config.data import DataConfig  # noqa: E402
from hierseg.config.model import AnchorConfig, ModelConfig  # noqa: E402
from hierseg.input.pipeline import build_dataset  # noqa: E402
from hierseg.models.factory import build_train_targets  # noqa: E402
from hierseg.ops.anchors import num_anchors  # noqa: E402


def synthetic_example(rng: np.random.Generator, k: int, instances: int) -> bytes:
    h, w = (768, 1024) if k % 2 == 0 else (1024, 683)
    image = rng.integers(0, 255, [h, w, 3], dtype=np.uint8)
    boxes, pngs = [], []
    for _ in range(instances):
        y0, x0 = int(rng.integers(0, h - 64)), int(rng.integers(0, w - 64))
        y1, x1 = int(rng.integers(y0 + 32, h)), int(rng.integers(x0 + 32, w))
        m = np.zeros([h, w, 1], np.uint8)
        m[y0:y1, x0:x1] = 255
        boxes.append([y0 / h, x0 / w, y1 / h, x1 / w])
        pngs.append(tf.io.encode_png(m).numpy())
    b = np.asarray(boxes, np.float32)

    def feat(kind, v):
        return tf.train.Feature(
            **{
                kind: {
                    "bytes_list": tf.train.BytesList,
                    "int64_list": tf.train.Int64List,
                    "float_list": tf.train.FloatList,
                }[kind](value=v)
            }
        )

    f = {
        F.IMAGE_ENCODED: feat("bytes_list", [tf.io.encode_jpeg(image, quality=90).numpy()]),
        F.IMAGE_FORMAT: feat("bytes_list", [b"jpeg"]),
        F.IMAGE_HEIGHT: feat("int64_list", [h]),
        F.IMAGE_WIDTH: feat("int64_list", [w]),
        F.IMAGE_SOURCE_ID: feat("bytes_list", [f"{k:016x}".encode()]),
        F.OBJECT_YMIN: feat("float_list", b[:, 0]),
        F.OBJECT_XMIN: feat("float_list", b[:, 1]),
        F.OBJECT_YMAX: feat("float_list", b[:, 2]),
        F.OBJECT_XMAX: feat("float_list", b[:, 3]),
        F.OBJECT_CLASS_LABEL: feat("int64_list", [1] * instances),
        F.OBJECT_IS_CROWD: feat("int64_list", [0] * instances),
        F.OBJECT_MASK: feat("bytes_list", pngs),
    }
    return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


def time_pipeline(
    pattern: str, data: DataConfig, anchor: AnchorConfig, is_training: bool, batch: int, images: int
) -> float:
    targets = build_train_targets(ModelConfig(num_classes=1, anchor=anchor), data.output_size)
    ds = build_dataset(pattern, data, is_training=is_training, batch_size=batch, seed=0, train_targets=targets)
    if not is_training:
        ds = ds.repeat()
    it = iter(ds)
    next(it)  # warm-up: tracing and the first file reads
    steps = max(1, images // batch)
    start = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32, help="examples written and timed per row")
    parser.add_argument("--instances", type=int, default=6, help="instances (masks) per image")
    parser.add_argument("--sizes", default="512,1024", help="comma-separated output sizes")
    parser.add_argument("--batch_size", type=int, default=2, help="batch size")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    anchor = AnchorConfig()
    with tempfile.TemporaryDirectory() as tmp:
        for shard in range(2):
            with tf.io.TFRecordWriter(os.path.join(tmp, f"train-{shard:05d}-of-00002.tfrecord")) as w:
                for k in range(shard, args.images, 2):
                    w.write(synthetic_example(rng, k, args.instances))
        pattern = os.path.join(tmp, "train-*")
        print(
            f"{'size':>6} {'anchors':>8} {'mode':>6} {'images/s':>9}   (cores: {os.cpu_count()}, "
            f"{args.instances} masks/image, batch {args.batch_size})"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            data = dataclasses.replace(DataConfig(), output_size=size, shuffle_buffer=8)
            for mode in ("train", "eval"):
                ips = time_pipeline(pattern, data, anchor, mode == "train", args.batch_size, args.images)
                print(f"{size:>6} {num_anchors(anchor, size):>8} {mode:>6} {ips:>9.2f}")


if __name__ == "__main__":
    main()
