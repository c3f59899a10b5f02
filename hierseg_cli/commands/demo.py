"""The whole pipeline end to end on the built-in synthetic dataset, on a CPU, in under 20 minutes: generate
the dataset, prepare Layer0 and Layer1, train the tiny models, evaluate each (COCO mask mAP), export both,
predict over the test and validation images, score the ensemble with the challenge metric (and Layer0 alone
for comparison), write and validate OUT/submission.csv, draw OUT/predictions_grid.png and summarise in
OUT/summary.json. Running again with the same --out skips the stages already done."""

from __future__ import annotations

import argparse
import os

DEMO_CONFIGS = {"mask_rcnn": "tiny_cpu.yaml", "shapemask": "tiny_cpu_shapemask.yaml"}  # --model -> shipped config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=".demo", help="output folder (data, models, exports, predictions, summary)")
    p.add_argument("--images", type=int, default=160, help="synthetic images over train/validation/test")
    p.add_argument("--steps", type=int, default=1000, help="training steps of each layer's model")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--config_file", help="experiment config of both layers; without it, the --model's tiny CPU config")
    p.add_argument(
        "--model",
        choices=sorted(DEMO_CONFIGS),
        default="mask_rcnn",
        help="model of both layers when no --config_file is given (shipped tiny_cpu.yaml / tiny_cpu_shapemask.yaml)",
    )
    p.add_argument(
        "--params_override",
        action="append",
        default=[],
        help="experiment overrides, 'a.b=1,c=x' or YAML/JSON (repeatable)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (also by workers)
    from hierseg_cli.workflows.demo import find_config, format_summary, run_demo

    summary = run_demo(
        args.out,
        num_images=args.images,
        steps=args.steps,
        seed=args.seed,
        config_file=args.config_file or find_config(DEMO_CONFIGS[args.model]),
        params_override=args.params_override,
        show_progress=not args.no_progress,
    )
    print(format_summary(summary))
    return 0 if summary["submission_valid"] else 1
