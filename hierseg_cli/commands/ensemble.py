"""Merge Layer0 (parent-class) and Layer1 (child-class) predictions into instances labeled with
their path through the hierarchy, e.g. (Person, Man), (Toy, Teddy bear), (Carnivore, Bear, Brown bear).

Inputs are prediction files (hierseg predict's JSON lines, parquet, or challenge CSVs); the output is
JSON lines or parquet, and optionally a challenge submission. Ensembling options come from the
`ensemble:` section of --config_file (an ensembles.config.PredictConfig, loaded whole) and from
--params_override (e.g. 'ensemble.mask_source=union').
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
    p.add_argument("--layer0", required=True, help="Layer0 predictions (.jsonl, .parquet or challenge .csv)")
    p.add_argument("--layer1", required=True, help="Layer1 predictions (.jsonl, .parquet or challenge .csv)")
    p.add_argument("--out", required=True, help="ensembled predictions to write: FILE.jsonl or FILE.parquet")
    add_config_arguments(p, "ensemble.iou_threshold=0.6,ensemble.score_source=max")
    p.add_argument("--submission", help="also write a challenge submission CSV of the ensembled predictions")
    add_hierarchy_arguments(p)
    add_image_set_arguments(p, "with --submission, the rows of the submission")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ensembles.merge import ensemble_files
    from ensembles.prediction_io import read_predictions
    from ensembles.submission import write_submission

    config = load_predict_config(args)
    hierarchy = load_hierarchy(args)
    n = ensemble_files(
        args.layer0, args.layer1, args.out, hierarchy, config.ensemble, show_progress=not args.no_progress
    )
    print(f"ensembled {n} images -> {args.out}")
    if args.submission:
        stats = write_submission(
            read_predictions(args.out),
            args.submission,
            hierarchy,
            image_sizes=load_image_set(args),
            config=config.submission,
        )
        print(
            f"submission: {stats.images} rows ({stats.empty_rows} empty), {stats.triples} triples -> {args.submission}"
        )
    return 0
