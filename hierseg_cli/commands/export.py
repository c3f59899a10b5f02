"""Export a trained checkpoint as a SavedModel that takes encoded image bytes and returns boxes, class
ids, scores and masks at the original image resolution (plus a batched `serve_images` signature);
label_map.pbtxt and export_config.yaml are written next to it."""

from __future__ import annotations

import argparse

from hierseg_cli.experiment_args import add_experiment_arguments, check_model_dir, load_experiment, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_experiment_arguments(p, config_from_model_dir=True)
    p.add_argument("--model_dir", help="training directory: its latest checkpoint and params.yaml are used")
    p.add_argument("--checkpoint", help="a checkpoint prefix (MODEL_DIR/ckpt-1000) instead of the latest")
    p.add_argument("--export_dir", required=True, help="where the SavedModel goes (replaced atomically)")


def run(args: argparse.Namespace) -> int:
    setup_logging()
    check_model_dir(args)
    import os

    config = load_experiment(args, model_dir=args.model_dir or os.path.dirname(args.checkpoint))
    from hierseg.atomic_write import remove_leftovers
    from hierseg.serving.export import export_saved_model

    # EXPORT.tmp-PID/ folders of killed exports (a live export's own is left alone).
    parent, name = os.path.split(os.path.normpath(args.export_dir))
    remove_leftovers(parent or ".", prefix=name + ".tmp-")
    out = export_saved_model(config, args.checkpoint or args.model_dir, args.export_dir)
    print(f"exported {out}")
    return 0
