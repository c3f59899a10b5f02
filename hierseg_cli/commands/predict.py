"""Run both layers' exports over an image folder, ensemble each image's predictions into parent-child
labeled masks, and write the challenge submission (submission.csv), per-image results with label paths
(predictions.jsonl, layer0.jsonl, layer1.jsonl), a report of unreadable images (report.json), the time
split (timing.json) and, with --visualize, one PNG per image. Re-running with the same --out resumes when
the exports, images and config are the ones that wrote it (else it stops, naming what differs;
--overwrite starts afresh)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from hierseg_cli.ensemble_args import add_config_arguments, load_hierarchy, load_predict_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer0", required=True, help="export directory of the Layer0 model (hierseg export)")
    p.add_argument("--layer1", required=True, help="export directory of the Layer1 model (hierseg export)")
    p.add_argument(
        "--images", required=True, help="images: a directory, a glob ('dir/*.jpg') or a file; local or gs://"
    )
    p.add_argument("--out", required=True, help="output directory; running again with the same one resumes")
    p.add_argument("--visualize", action="store_true", help="also write OUT/visualize/<ImageID>.png")
    p.add_argument(
        "--visualize_min_score", type=float, help="instances scoring below this are not drawn (default: config, 0.3)"
    )
    p.add_argument("--batch_size", type=int, help="images per model call (default: batch_size of the config, 4)")
    add_config_arguments(p, "ensemble.iou_threshold=0.4,submission.max_per_image=300")
    p.add_argument(
        "--score_threshold",
        type=float,
        help="instances scoring below this are left out of the submission (default: submission.score_threshold "
        "of the config, 0)",
    )
    p.add_argument(
        "--max_per_image",
        type=int,
        help="at most this many (class, score, mask) triples per image in the submission, counted "
        "after the copies for ancestor classes, highest scores first; 0 = no cap (default: "
        "submission.max_per_image of the config, 0)",
    )
    p.add_argument(
        "--layer_min_score",
        type=float,
        help="sets ensemble.min_layer0_score and min_layer1_score: each layer's detections below this are "
        "dropped before their masks are pasted (default: the config's, 0: the model's own "
        "model.detection.score_threshold is the floor)",
    )
    p.add_argument("--hierarchy", help="hierarchy JSON (local or gs://); default: the shipped 300-class one")
    p.add_argument("--classes", help="class-description CSV (MID,Name) for --hierarchy")
    p.add_argument(
        "--no_exif",
        action="store_true",
        help="ignore EXIF orientation (use the stored pixels, as Open Images annotations do)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--tta",
        help="test-time augmentation of each layer, e.g. 'flip' or 'flip,scales=0.75:1[,merge=vote|nms][,iou=0.55]' "
        "(hierseg.serving.tta); default: the config's tta section (tta.enabled), off",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="start afresh when --out was written from other exports or config"
    )


def print_result(result: dict) -> None:
    timing = result["timing"]
    total = sum(timing.values()) or 1.0
    print(
        f"{result['num_images']} images: {result['num_ok']} predicted "
        f"({result['num_resumed']} done by an earlier run), {result['num_unreadable']} unreadable, "
        f"{result['num_instances']} instances"
    )
    print(f"{result['images_per_second']:.2f} images/s this run; time split:")
    for key, sec in timing.items():
        print(f"  {key:<11}{sec:9.2f} s {100 * sec / total:6.1f} %")
    for u in result["unreadable"]:
        print(f"  unreadable: {u['path']}: {u['error']}")
    for name, path in result["files"].items():
        print(f"wrote {name}: {path}")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (also by workers)
    from hierseg_cli.workflows.predict_folder import predict_folder

    config = load_predict_config(args)  # before the models load: a config error costs nothing
    if args.tta:  # --tta replaces the config's tta section
        from hierseg.serving.tta import parse_tta

        config = dataclasses.replace(config, tta=parse_tta(args.tta))
    hierarchy = load_hierarchy(args)
    result = predict_folder(
        args.layer0,
        args.layer1,
        args.images,
        args.out,
        config,
        hierarchy=hierarchy,
        show_progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    print_result(result)
    return 0
