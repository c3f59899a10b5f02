"""Run both layers' exports over an image folder, ensemble each image's predictions into parent-child
labeled masks, and write the challenge submission (submission.csv), per-image results with label paths
(predictions.jsonl, layer0.jsonl, layer1.jsonl), a report of unreadable images (report.json), the time
split (timing.json) and, with --visualize, one PNG per image. Re-running with the same --out resumes."""

from __future__ import annotations

import argparse
import os

from hierseg.hierarchy import Hierarchy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer0", required=True, help="export directory of the Layer0 model (hierseg export)")
    p.add_argument("--layer1", required=True, help="export directory of the Layer1 model (hierseg export)")
    p.add_argument(
        "--images", required=True, help="images: a directory, a glob ('dir/*.jpg') or a file; local or gs://"
    )
    p.add_argument("--out", required=True, help="output directory; running again with the same one resumes")
    p.add_argument("--visualize", action="store_true", help="also write OUT/visualize/<ImageID>.png")
    p.add_argument("--visualize_min_score", type=float, default=0.3, help="instances scoring below this are not drawn")
    p.add_argument("--batch_size", type=int, default=4, help="images per model call")
    p.add_argument(
        "--config_file",
        help="YAML with an 'ensemble' section (ensembles.config.EnsembleConfig) and/or a 'submission' "
        "section (SubmissionConfig: score_threshold, max_per_image)",
    )
    p.add_argument(
        "--params_override",
        action="append",
        default=[],
        help="overrides of those sections, e.g. 'ensemble.iou_threshold=0.4' or YAML/JSON (repeatable)",
    )
    p.add_argument(
        "--score_threshold",
        type=float,
        default=None,
        help="instances scoring below this are left out of the submission; None: submission.score_threshold "
        "of the config (0)",
    )
    p.add_argument(
        "--max_per_image",
        type=int,
        default=None,
        help="at most this many (class, score, mask) triples per image in the submission, counted "
        "after the copies for ancestor classes, highest scores first; None: submission.max_per_image "
        "of the config; 0 = no cap",
    )
    p.add_argument(
        "--layer_min_score",
        type=float,
        default=0.05,
        help="each layer's detections below this score are dropped before ensembling",
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
        "(hierseg.serving.tta); default: the config's 'tta' section, off when absent",
    )


def load_ensemble_config(config_file: str | None, params_override: list[str] | None):
    """The ``ensemble`` section: defaults <- file <- overrides (an unknown key is an error)."""
    from ensembles.config import EnsembleConfig
    from hierseg.config.params import load

    return load(EnsembleConfig, config_file, params_override, section="ensemble")


def load_submission_config(config_file: str | None, params_override: list[str] | None):
    """The ``submission`` section: defaults <- file <- overrides."""
    from ensembles.config import SubmissionConfig
    from hierseg.config.params import load

    return load(SubmissionConfig, config_file, params_override, section="submission")


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
    from hierseg.serving.tta import load_tta_config
    from hierseg_cli.workflows.predict_folder import predict_folder

    hierarchy = Hierarchy.from_files(args.hierarchy, args.classes) if args.hierarchy else Hierarchy.builtin()
    sub = load_submission_config(args.config_file, args.params_override)
    score_threshold = sub.score_threshold if args.score_threshold is None else args.score_threshold
    max_per_image = sub.max_per_image if args.max_per_image is None else args.max_per_image
    result = predict_folder(
        args.layer0,
        args.layer1,
        args.images,
        args.out,
        batch_size=args.batch_size,
        ensemble_config=load_ensemble_config(args.config_file, args.params_override),
        hierarchy=hierarchy,
        visualize=args.visualize,
        show_progress=not args.no_progress,
        score_threshold=score_threshold,
        max_per_image=max_per_image,
        layer_min_score=args.layer_min_score,
        apply_exif=not args.no_exif,
        visualize_min_score=args.visualize_min_score,
        tta=load_tta_config(args.tta, args.config_file, args.params_override),
    )
    print_result(result)
    return 0
