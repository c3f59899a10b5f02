"""COCO box and mask mAP of a checkpoint on the prepared validation set (pycocotools), written as JSON
and TensorBoard summaries (MODEL_DIR/eval)."""

from __future__ import annotations

import argparse
import os

from hierseg.layout import ModelDir
from hierseg_cli.experiment_args import add_experiment_arguments, check_model_dir, load_experiment, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_experiment_arguments(p, config_from_model_dir=True)
    p.add_argument("--model_dir", help="training directory: its latest checkpoint and params.yaml are used")
    p.add_argument("--checkpoint", help="a checkpoint prefix (MODEL_DIR/ckpt-1000) instead of the latest")
    p.add_argument("--output_json", help="metrics JSON (default: MODEL_DIR/eval/metrics-<step>.json)")
    p.add_argument("--predictions_jsonl", help="also write the detections as JSON lines (hierseg.detections)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--top", type=int, help="print only the N worst classes of the per-class table")


def run(args: argparse.Namespace) -> int:
    setup_logging()
    check_model_dir(args)
    config = load_experiment(args, model_dir=args.model_dir or os.path.dirname(args.checkpoint))
    from hierseg.evaluation.evaluator import evaluate
    from hierseg.training.checkpoints import checkpoint_path, checkpoint_step

    ckpt = checkpoint_path(args.checkpoint or args.model_dir)
    step = checkpoint_step(ckpt) or 0
    out_json = args.output_json
    summary_dir = ModelDir(args.model_dir).eval_dir if args.model_dir else None
    if out_json is None and args.model_dir:
        out_json = ModelDir(args.model_dir).eval_metrics_json(step)
    metrics = evaluate(
        config,
        ckpt,
        output_json=out_json,
        summary_dir=summary_dir,
        predictions_jsonl=args.predictions_jsonl,
        show_progress=not args.no_progress,
    )
    from hierseg.evaluation.tables import coco_table, semantic_table
    from hierseg.hierarchy import Hierarchy

    table = semantic_table if "semantic/mIoU" in metrics else coco_table  # hierseg.evaluation.semantic_eval
    print(table(metrics, Hierarchy.builtin(), top=args.top))
    if out_json:
        print(f"wrote {out_json}")
    return 0
