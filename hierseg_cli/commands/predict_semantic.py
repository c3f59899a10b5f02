"""The semantic sibling of `hierseg predict`: run the Layer0 and Layer1 DeepLab exports over an image folder and
fuse them per pixel into label paths (Person › Man where the Layer1 class descends from the Layer0 class, else the
Layer0 class alone). Writes OUT/layer0/<ImageID>.png and OUT/layer1/<ImageID>.png (class ids of each label map),
OUT/overlay/<ImageID>.png (colours and a legend of label paths), OUT/images/<ImageID>.json and OUT/summary.json.
Re-running with the same --out resumes."""

from __future__ import annotations

import argparse
import os

from hierseg_cli.ensemble_args import load_hierarchy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer0", required=True, help="export directory of the Layer0 DeepLab model (hierseg export)")
    p.add_argument("--layer1", required=True, help="export directory of the Layer1 DeepLab model (hierseg export)")
    p.add_argument("--images", required=True, help="images: a directory, a glob or a file; local or gs://")
    p.add_argument("--out", required=True, help="output directory; running again with the same one resumes")
    p.add_argument("--batch_size", type=int, default=4, help="images per model call")
    p.add_argument("--hierarchy", help="hierarchy JSON (local or gs://); default: the shipped 300-class one")
    p.add_argument("--classes", help="class-description CSV (MID,Name) for --hierarchy")
    p.add_argument("--groundtruth_layer0", help="folder of Layer0 label PNGs <ImageID>.png: adds the hierarchical mIoU")
    p.add_argument("--groundtruth_layer1", help="folder of Layer1 label PNGs <ImageID>.png (with --groundtruth_layer0)")
    p.add_argument("--no_exif", action="store_true", help="ignore EXIF orientation (use the stored pixels)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hierseg_cli.workflows.predict_semantic import predict_semantic_folder

    if bool(args.groundtruth_layer0) != bool(args.groundtruth_layer1):
        raise SystemExit("give both --groundtruth_layer0 and --groundtruth_layer1, or neither")
    groundtruth = (args.groundtruth_layer0, args.groundtruth_layer1) if args.groundtruth_layer0 else None
    hierarchy = load_hierarchy(args)
    summary = predict_semantic_folder(
        args.layer0,
        args.layer1,
        args.images,
        args.out,
        hierarchy=hierarchy,
        batch_size=args.batch_size,
        apply_exif=not args.no_exif,
        show_progress=not args.no_progress,
        groundtruth=groundtruth,
    )
    print(f"{summary['num_images']} images ({summary['num_unreadable']} unreadable); pixels per label path:")
    for path, pixels in summary["label_path_pixels"].items():
        print(f"  {path}: {pixels}")
    if "hierarchical" in summary:
        h = summary["hierarchical"]
        levels = ", ".join(f"level {i} mIoU {lv['mIoU']:.4f}" for i, lv in enumerate(h["levels"]))
        print(f"hierarchical mIoU {h['hierarchical_mIoU']:.4f} ({levels})")
    print(f"wrote {os.path.join(args.out, 'summary.json')}")
    return 0
