"""Write the built-in synthetic Open Images dataset in the challenge 2019 folder layout and formats
(images, segmentation/bbox/label CSVs, mask zip shards, hierarchy and class files), and print its
summary. With --annotations_only, write only the training CSVs at full challenge scale (all 300 real
classes with their real mask counts, no pixels) for benchmarks."""

from __future__ import annotations

import argparse

from hierseg.synth import generate_annotations_only, generate_dataset
from hierseg.synth.report import annotations_table, dataset_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset folder to write (created; the --oid_dir of later commands)")
    p.add_argument(
        "--images",
        type=int,
        default=None,
        help="number of images over train/validation/test (default 200; with --annotations_only "
        "the number of distinct training ImageIDs, default 848512)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; the same arguments give identical files")
    p.add_argument("--min_size", type=int, default=128, help="smallest image width/height in pixels")
    p.add_argument("--max_size", type=int, default=256, help="largest image width/height in pixels")
    p.add_argument("--split_fractions", default="0.7,0.15,0.15", help="train,validation,test shares of the images")
    p.add_argument(
        "--annotations_only",
        action="store_true",
        help="write only the training CSVs (masks, bbox, labels) at full scale, without pixels",
    )
    p.add_argument(
        "--num_masks", type=int, default=2_125_530, help="with --annotations_only: rows of the segmentation masks CSV"
    )
    p.add_argument("--no_progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    if args.annotations_only:
        summary = generate_annotations_only(
            args.out,
            num_masks=args.num_masks,
            num_images=args.images if args.images is not None else 848_512,
            seed=args.seed,
            show_progress=not args.no_progress,
        )
        print(annotations_table(summary))
        return 0
    try:
        fractions = tuple(float(x) for x in args.split_fractions.split(","))
    except ValueError:
        raise SystemExit(f"--split_fractions: expected e.g. 0.7,0.15,0.15, got {args.split_fractions!r}") from None
    summary = generate_dataset(
        args.out,
        num_images=args.images if args.images is not None else 200,
        seed=args.seed,
        min_size=args.min_size,
        max_size=args.max_size,
        split_fractions=fractions,
        show_progress=not args.no_progress,
    )
    print(dataset_table(summary))
    return 0
