"""Check an Open Images challenge submission CSV and print every problem with its line: header,
duplicate or missing ImageIDs, image sizes, undecodable masks, masks of the wrong size, scores outside
[0, 1], MIDs outside the class set. Exits with status 1 when anything is wrong, 0 when it is valid.

Without --oid_dir/--images only the file itself is checked (no missing/unknown images, no sizes).
"""

from __future__ import annotations

import argparse

from hierseg_cli.ensemble_args import add_hierarchy_arguments, add_image_set_arguments, load_hierarchy, load_image_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--submission", required=True, help="the submission CSV")
    add_image_set_arguments(p, "the images the submission must cover (with their sizes)")
    add_hierarchy_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ensembles.validate_submission import validate_submission_report

    hierarchy = load_hierarchy(args)
    problems, stats = validate_submission_report(
        args.submission, expected_images=load_image_set(args), valid_mids=hierarchy.classes
    )
    for p in problems:
        print(f"{args.submission}:{p}")
    if problems:
        kinds = ", ".join(f"{k}: {n}" for k, n in stats.problems_by_kind.items())
        print(f"INVALID: {len(problems)} problems ({kinds}) in {stats.rows} rows")
        return 1
    print(f"OK: {stats.rows} rows, {stats.triples} predictions")
    return 0
