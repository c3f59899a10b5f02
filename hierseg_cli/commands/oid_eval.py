"""The Open Images Challenge 2019 instance segmentation metric (mAP@0.5 mask IoU), as the official
tensorflow/models implementation computes it: ground truth from the dataset folder expanded along the
hierarchy, image-level labels deciding which classes are evaluated, group-of and box-only handling.
Prints the mAP; --output_metrics writes JSON with `mAP` and `per_class` (MID -> AP), plus
`per_class_by_name`, `num_gt` and counts. Scores must be numbers in [0, 1] (anything else stops with
the file and line); predicted classes outside the hierarchy are dropped, as the official evaluator
drops them, and counted in the output.

The decoded ground truth of a split is cached (--cache_dir, default ~/.cache/hierseg/oid_eval), keyed
by the input files' sizes and modification times: a second run on the same split only decodes the
submission. Ground-truth masks are resized to their image exactly as PIL's NEAREST resize does.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--oid_dir", required=True, help="dataset folder (challenge 2019 layout) with the ground truth")
    p.add_argument("--split", default="validation", help="the annotated split to evaluate on")
    p.add_argument(
        "--submission",
        required=True,
        help="predictions: submission CSV, per-instance CSV "
        "(ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask), .jsonl or .parquet; not expanded",
    )
    p.add_argument("--output_metrics", help="write the metrics as JSON to this file")
    p.add_argument(
        "--group_of_weight",
        type=float,
        default=1.0,
        help="weight of group-of regions (1.0 as the official script; 0.0 = pure ignore regions)",
    )
    p.add_argument(
        "--num_workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes evaluating images and decoding ground-truth masks",
    )
    p.add_argument(
        "--on_error",
        choices=["raise", "skip"],
        default="raise",
        help="bad ground-truth CSV rows: stop with the file and line, or skip and count them",
    )
    p.add_argument(
        "--image_sizes",
        help="ImageID,Width,Height CSV of the split's images (else their sizes are read from the image "
        "headers in --oid_dir; images missing from the CSV are read and added to it)",
    )
    p.add_argument("--cache_dir", help="ground-truth cache folder (default: ~/.cache/hierseg/oid_eval)")
    p.add_argument("--no_cache", action="store_true", help="decode the ground truth without the cache")
    p.add_argument("--hierarchy", help="hierarchy JSON (default: the one in --oid_dir)")
    p.add_argument("--classes", help="class-description CSV to go with --hierarchy")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--top", type=int, help="print only the N worst classes of the per-class table")


def run(args: argparse.Namespace) -> int:
    from ensembles.metric.evaluator import write_metrics

    metrics = _evaluate(args)  # bad input raises one-line errors naming file and line (hierseg_cli.main prints them)
    _report(metrics)
    from hierseg.evaluation.tables import oid_table
    from hierseg_cli.ensemble_args import load_hierarchy

    print(oid_table(metrics, load_hierarchy(args), top=args.top))
    if args.output_metrics:
        write_metrics(metrics, args.output_metrics)
        print(f"wrote {args.output_metrics}")
    return 0


def _evaluate(args: argparse.Namespace) -> dict:
    from ensembles.metric.evaluator import evaluate_submission
    from ensembles.metric.groundtruth_cache import default_cache_dir
    from hierseg_cli.ensemble_args import load_hierarchy

    return evaluate_submission(
        args.oid_dir,
        args.split,
        args.submission,
        hierarchy=load_hierarchy(args),
        group_of_weight=args.group_of_weight,
        num_workers=args.num_workers,
        on_error=args.on_error,
        image_sizes_csv=args.image_sizes,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        show_progress=not args.no_progress,
    )


def _report(metrics: dict) -> None:
    skipped = sum(v["total"] for v in metrics["ground_truth"]["skipped"].values())
    print(
        f"{metrics['num_images_with_ground_truth']} images with ground truth, {metrics['num_images_predicted']} "
        f"predicted ({metrics['num_images_without_ground_truth']} without ground truth, ignored); "
        f"{len(metrics['per_class'])} classes with ground truth; {skipped} ground-truth rows skipped; "
        f"ground-truth cache: {metrics['ground_truth']['cache']}"
    )
    unknown = metrics["unknown_classes"]
    if unknown:
        listed = ", ".join(f"{mid} ({n})" for mid, n in list(unknown.items())[:10]) + (
            ", ..." if len(unknown) > 10 else ""
        )
        print(
            f"dropped {metrics['num_unknown_class_predictions']} predictions of {len(unknown)} classes not in "
            f"the hierarchy: {listed}"
        )
    print(f"OpenImagesInstanceSegmentationChallenge mAP@0.5IOU: {metrics['mAP']:.4f}")
