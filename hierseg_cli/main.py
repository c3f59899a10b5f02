"""`hierseg CMD ...`: one command, a subcommand per pipeline stage.

Each subcommand lives in its own module under ``hierseg_cli.commands`` with two functions:
``add_arguments(parser: argparse.ArgumentParser)`` and ``run(args: argparse.Namespace) -> int``.
Modules are imported only when their command runs, so ``hierseg --help`` answers at once without
importing TensorFlow.

Errors: a user error (a wrong flag, config key or value, a missing or malformed input) is printed as
one line ``hierseg CMD: error: ...`` without a traceback; the exit status is 2 for usage errors, 1
when the work itself failed, and 130 after Ctrl-C. ``--debug`` (on any command) or the environment
variable ``HIERSEG_DEBUG=1`` shows the full traceback instead. TensorFlow's C++ start-up log lines
are silenced (``TF_CPP_MIN_LOG_LEVEL=2`` unless set).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module under hierseg_cli.commands, one-line help). The order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "write the built-in synthetic Open Images dataset (challenge 2019 layout)"),
    "hierarchy": ("hierarchy", "print the layer table of an Open Images hierarchy"),
    "browse": ("browse", "ground truth drawn on images, from the dataset folder or the prepared TFRecords"),
    "prepare": ("prepare", "build class-balanced Layer0/Layer1 TFRecord training sets"),
    "priors": ("priors", "ShapeMask shape priors: per-class k-means of a prepared layer's training masks"),
    "prepare-voc": ("prepare_voc", "convert PASCAL VOC 2012 segmentation into TFRecords for DeepLab"),
    "train": ("train", "train one layer's instance segmenter (TPU, GPUs, workers or CPU)"),
    "evaluate": ("evaluate", "COCO box and mask mAP of a checkpoint on the prepared validation set"),
    "export": ("export", "export a trained model as a SavedModel taking encoded image bytes"),
    "predict": ("predict", "run both layers' exports over an image folder and ensemble them"),
    "predict-semantic": ("predict_semantic", "fuse Layer0/Layer1 DeepLab exports into per-pixel label paths"),
    "semantic-groundtruth": (
        "semantic_groundtruth",
        "Layer0/Layer1 ground-truth label PNGs and images of a prepared split, for predict-semantic",
    ),
    "ensemble": ("ensemble", "merge Layer0 and Layer1 predictions into parent-child labeled masks"),
    "submit": ("submit", "write an Open Images challenge submission CSV from ensembled predictions"),
    "validate-submission": ("validate_submission", "check a submission CSV and report every problem"),
    "oid-eval": ("oid_eval", "the Open Images Challenge 2019 instance segmentation metric"),
    "model-info": ("model_info", "parameters per module and FLOPs per image of a configured model"),
    "plot": ("plot", "training curves (losses, learning rate, eval metrics) from TensorBoard events as a PNG"),
    "analyze": ("analyze", "hierarchical error analysis of a submission: FP causes, related-class misses"),
    "demo": ("demo", "the whole pipeline end to end on the synthetic dataset"),
}

# Commands that load TensorFlow anyway: it is imported first, with its start-up log lines silenced.
TENSORFLOW_COMMANDS = frozenset({"prepare", "train", "evaluate", "export", "predict", "demo"})


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only when it has one worth showing: never "(default: None)" after a help
    text that already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"hierseg_cli.commands.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(
        prog=f"hierseg {name}",
        description=module.__doc__ or COMMANDS[name][1],
        formatter_class=HelpFormatter,
    )
    module.add_arguments(parser)
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (also: HIERSEG_DEBUG=1)"
    )
    parser.set_defaults(_run=module.run)
    return parser


# Error types whose message is written for the user (one line naming the file, line or key), by the
# (module, class name) they are defined under, with the exit status; checked along the MRO, so
# subclasses count. Named rather than imported so that `hierseg --help` stays free of heavy imports.
USER_ERRORS: dict[tuple[str, str], int] = {
    ("hierseg.errors", "UsageError"): 2,  # also ConfigError, HierarchyError, PredictionFileError (bad --predictions)
    ("hierseg.errors", "WorkError"): 1,
    ("hierseg.oid.errors", "OidFormatError"): 1,  # a dataset file (MaskCodecError is a UsageError)
    ("builtins", "FileNotFoundError"): 2,
    ("builtins", "NotADirectoryError"): 2,
    ("builtins", "IsADirectoryError"): 2,
    ("builtins", "PermissionError"): 1,
    ("tensorflow.python.framework.errors_impl", "NotFoundError"): 2,
}


def exit_code_of(error: BaseException) -> int | None:
    """The exit status of a user error, or None when ``error`` is not one (a bug: 1, with a hint)."""
    for cls in type(error).__mro__:
        code = USER_ERRORS.get((cls.__module__, cls.__qualname__))
        if code is not None:
            return code
    return None


def error_line(error: BaseException) -> str:
    """One line describing ``error``: its message (first line), with the path of an OSError."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(getattr(error, "message", None) or error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = repr(error.args[0])
    return text.splitlines()[0] if text else type(error).__name__


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HIERSEG_DEBUG", "") not in ("", "0")


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
    debug = _debug_requested(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported (also by workers)
    if name in TENSORFLOW_COMMANDS and not debug and "-h" not in argv and "--help" not in argv:
        from hierseg.tf_import import import_tensorflow_quietly

        import_tensorflow_quietly()
    args = build_parser(name).parse_args(argv[1:])
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\nhierseg {name}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            raise
        code = exit_code_of(e)
        hint = ""
        if code is None:
            code, hint = 1, f" ({type(e).__name__}; rerun with --debug for the traceback)"
        print(f"hierseg {name}: error: {error_line(e)}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
