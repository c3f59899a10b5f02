"""Write an Open Images Challenge 2019 instance segmentation submission (Kaggle CSV
`ImageID,ImageWidth,ImageHeight,PredictionString`) from (ensembled) predictions.

Every instance is written once for each class of its label path and all their ancestors (the
evaluator does not expand predictions); masks at the original image size; every image of the set
(--oid_dir/--split or --images) gets a row, empty when nothing was found.
"""

from __future__ import annotations

import argparse

from hierseg_cli.ensemble_args import (
    add_config_arguments,
    add_hierarchy_arguments,
    add_image_set_arguments,
    load_hierarchy,
    load_image_set,
    load_predict_config,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--predictions",
        required=True,
        help="predictions: .jsonl (hierseg predict / ensemble), .parquet or a challenge .csv",
    )
    p.add_argument("--out", required=True, help="the submission CSV to write")
    add_image_set_arguments(p, "the rows of the submission (without either: the predicted images only)")
    add_hierarchy_arguments(p)
    p.add_argument(
        "--score_threshold",
        type=float,
        help="drop instances scoring below this (default: submission.score_threshold of the config, 0)",
    )
    p.add_argument(
        "--max_per_image",
        type=int,
        help="keep at most this many (class, score, mask) triples per "
        "image, highest scores first, 0 = all (default: submission.max_per_image of the config, 0)",
    )
    add_config_arguments(p, "submission.score_threshold=0.1")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ensembles.prediction_io import read_predictions
    from ensembles.submission import write_submission

    config = load_predict_config(args).submission
    hierarchy = load_hierarchy(args)
    stats = write_submission(
        read_predictions(args.predictions),
        args.out,
        hierarchy,
        image_sizes=load_image_set(args),
        config=config,
        show_progress=not args.no_progress,
    )
    print(
        f"{stats.images} rows ({stats.images_with_predictions} with predictions, {stats.empty_rows} empty), "
        f"{stats.instances} instances -> {stats.triples} triples ({stats.capped} over the cap) -> {args.out}"
    )
    return 0
