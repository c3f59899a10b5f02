"""Parameters per module and FLOPs per image (TensorFlow profiler, one inference call at the configured
input size) of the model an experiment config describes."""

from __future__ import annotations

import argparse
import os

from hierseg_cli.experiment_args import add_experiment_arguments, load_experiment


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_experiment_arguments(p)
    p.add_argument("--num_classes", type=int, help="classes when the config leaves model.num_classes at 0")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hierseg.models.model_info import format_info, model_info

    if args.num_classes:  # before loading: a config with num_classes 0 and no label map is refused
        args.params_override = [*args.params_override, f"model.num_classes={args.num_classes}"]
    print(format_info(model_info(load_experiment(args))))
    return 0
