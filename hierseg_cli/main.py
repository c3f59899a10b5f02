"""`hierseg CMD ...`: one command, a subcommand per pipeline stage.

Each subcommand lives in its own module under ``hierseg_cli.commands`` with two functions:
``add_arguments(parser: argparse.ArgumentParser)`` and ``run(args: argparse.Namespace) -> int``.
Modules are imported only when their command runs, so ``hierseg --help`` answers at once without
importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under hierseg_cli.commands, one-line help). The order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "write the built-in synthetic Open Images dataset (challenge 2019 layout)"),
    "hierarchy": ("hierarchy", "print the layer table of an Open Images hierarchy"),
    "browse": ("browse", "ground truth drawn on images, from the dataset folder or the prepared TFRecords"),
    "prepare": ("prepare", "build class-balanced Layer0/Layer1 TFRecord training sets"),
    "train": ("train", "train one layer's instance segmenter (TPU, GPUs, workers or CPU)"),
    "evaluate": ("evaluate", "COCO box and mask mAP of a checkpoint on the prepared validation set"),
    "export": ("export", "export a trained model as a SavedModel taking encoded image bytes"),
    "predict": ("predict", "run both layers' exports over an image folder and ensemble them"),
    "ensemble": ("ensemble", "merge Layer0 and Layer1 predictions into parent-child labeled masks"),
    "submit": ("submit", "write an Open Images challenge submission CSV from ensembled predictions"),
    "validate-submission": ("validate_submission", "check a submission CSV and report every problem"),
    "oid-eval": ("oid_eval", "the Open Images Challenge 2019 instance segmentation metric"),
    "model-info": ("model_info", "parameters per module and FLOPs per image of a configured model"),
    "plot": ("plot", "training curves (losses, learning rate, eval metrics) from TensorBoard events as a PNG"),
    "analyze": ("analyze", "hierarchical error analysis of a submission: FP causes, related-class misses"),
    "demo": ("demo", "the whole pipeline end to end on the synthetic dataset"),
}


def build_parser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"hierseg_cli.commands.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(
        prog=f"hierseg {name}", description=module.__doc__ or COMMANDS[name][1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hierseg COMMAND [--help] [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "`hierseg COMMAND --help` explains every flag of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"hierseg: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    args = build_parser(name).parse_args(argv[1:])
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
