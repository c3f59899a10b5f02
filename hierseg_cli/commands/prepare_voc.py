"""Convert PASCAL VOC 2012 (JPEGImages, SegmentationClass palette PNGs, ImageSets/Segmentation/{train,val}.txt,
and SegmentationClassAug when present) into TFRecords for DeepLab: OUT/{train,validation,train_aug}-*.tfrecord
and OUT/label_map.pbtxt. Re-running keeps finished shards."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voc_dir", required=True, help="the VOC2012 folder (VOCdevkit/VOC2012)")
    p.add_argument("--out", required=True, help="output folder (local or gs://)")
    p.add_argument("--images_per_shard", type=int, default=1000, help="images per TFRecord shard")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from data_prep.voc import prepare_voc

    counts = prepare_voc(
        args.voc_dir, args.out, images_per_shard=args.images_per_shard, show_progress=not args.no_progress
    )
    print(json.dumps(counts))
    return 0
