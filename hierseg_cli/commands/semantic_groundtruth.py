"""Ground truth for `hierseg predict-semantic --groundtruth_layer0/1` from a `hierseg prepare` output folder.

For every image of --split present in both OUT/layer0 and OUT/layer1, writes --out/layer0/<ImageID>.png and
--out/layer1/<ImageID>.png (each layer's class ids at the original size, 0 = background, 255 = unknown: the
map a DeepLab model trains on) and --out/images/<ImageID>.jpg (the record's image), for
`hierseg predict-semantic --images GT/images --groundtruth_layer0 GT/layer0 --groundtruth_layer1 GT/layer1`.
Images in only one layer are skipped and counted. Re-running with the same --out resumes."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prepared", required=True, help="a hierseg prepare output folder (with layer0/ and layer1/)")
    p.add_argument("--out", required=True, help="output folder: layer0/, layer1/ and images/ are written in it")
    p.add_argument("--split", default="validation", choices=["train", "validation"], help="which shards to read")
    p.add_argument(
        "--gray_value",
        type=int,
        default=128,
        help="gray level of the filled non-target parents (prepare's gray_value; -1: no gray rule)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from hierseg.config.deeplab import SemanticTargetConfig
    from hierseg.errors import UsageError
    from hierseg.evaluation.semantic_groundtruth import write_semantic_groundtruth
    from hierseg.layout import PreparedLayer

    for layer in (0, 1):
        if not tf.io.gfile.isdir(PreparedLayer.of(args.prepared, layer).root):
            raise UsageError(
                f"--prepared {args.prepared}: no layer{layer}/ folder (give a hierseg prepare output folder)"
            )
    config = SemanticTargetConfig(enabled=True, gray_value=args.gray_value)
    counts = write_semantic_groundtruth(args.prepared, args.out, args.split, config, not args.no_progress)
    print(
        f"{counts['images']} images with both layers' ground truth in {args.out} "
        f"(skipped: {counts['only_layer0']} only in layer0, {counts['only_layer1']} only in layer1)"
    )
    return 0
