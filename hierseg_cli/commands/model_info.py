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
    from hierseg.config.params import merge
    from hierseg.models.model_info import format_info, model_info

    config = load_experiment(args)
    if args.num_classes:
        config = merge(config, {"model": {"num_classes": args.num_classes}})
    elif config.model.num_classes < 1 and config.data.label_map:
        from hierseg.training.loop import resolve_num_classes

        config = resolve_num_classes(config)
    print(format_info(model_info(config)))
    return 0
