"""Hierarchical error analysis of a submission under the challenge metric: the cause of every false
positive (duplicate, too fine, sibling, other class, localization, class and localization, background)
and of every miss (a coarser, finer, sibling or unrelated detection on it, poor localization, nothing),
the mAP gained if each kind were fixed; writes OUT/error_summary.png, OUT/per_class_errors.csv and
OUT/error_analysis.json."""

from __future__ import annotations

import argparse
import os

from hierseg import atomic_write


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--oid_dir", required=True, help="dataset folder (challenge 2019 layout) with the ground truth")
    p.add_argument("--split", default="validation", help="the annotated split to analyze on")
    p.add_argument(
        "--submission", required=True, help="predictions: submission CSV, per-instance CSV, .jsonl, .parquet"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--group_of_weight", type=float, default=1.0, help="as in oid-eval")
    p.add_argument("--num_workers", type=int, default=os.cpu_count() or 1, help="processes of the metric reruns")
    p.add_argument("--top", type=int, default=20, help="classes printed in the per-class table (0 = all)")
    p.add_argument("--hierarchy", help="hierarchy JSON (default: the one in --oid_dir)")
    p.add_argument("--classes", help="class-description CSV to go with --hierarchy")


def run(args: argparse.Namespace) -> int:
    from ensembles.error_analysis import analyze
    from ensembles.error_plots import class_table, plot_summary, summary_text, write_class_csv
    from ensembles.metric.groundtruth_files import load_ground_truth
    from ensembles.prediction_io import read_predictions
    from hierseg_cli.ensemble_args import load_hierarchy

    hierarchy = load_hierarchy(args)
    gts, _ = load_ground_truth(args.oid_dir, args.split, hierarchy, num_workers=args.num_workers)
    result = analyze(
        gts,
        read_predictions(args.submission),
        hierarchy,
        group_of_weight=args.group_of_weight,
        num_workers=args.num_workers,
    )
    os.makedirs(args.out, exist_ok=True)
    print(class_table(result, hierarchy, top=args.top or None))
    print()
    print(summary_text(result))
    write_class_csv(result, hierarchy, os.path.join(args.out, "per_class_errors.csv"))
    plot_summary(result, os.path.join(args.out, "error_summary.png"))
    path = os.path.join(args.out, "error_analysis.json")
    atomic_write.write_json(path, result, indent=1)
    print(f"wrote {args.out}/error_summary.png, per_class_errors.csv, error_analysis.json")
    return 0
