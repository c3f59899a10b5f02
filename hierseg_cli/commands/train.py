"""Train one layer's model (model.type; Mask R-CNN by default) (Cloud TPU, local GPUs, several workers or the CPU).

Starting again with the same --model_dir resumes from its latest checkpoint, so a preempted job
simply restarts. The effective config is written to MODEL_DIR/params.yaml, TensorBoard summaries to
MODEL_DIR/train (and MODEL_DIR/eval with --mode train_and_eval)."""

from __future__ import annotations

import argparse
import json
import logging

from hierseg_cli.experiment_args import add_experiment_arguments, load_experiment, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_experiment_arguments(p)
    p.add_argument("--model_dir", required=True, help="checkpoints, params.yaml and summaries (local or gs://)")
    p.add_argument(
        "--strategy",
        default="mirrored",
        choices=["tpu", "mirrored", "multi_worker", "cpu"],
        help="tpu: Cloud TPU (--tpu); mirrored: all local GPUs (else the CPU); multi_worker: "
        "several hosts from TF_CONFIG; cpu: one CPU device",
    )
    p.add_argument("--tpu", help="Cloud TPU name or grpc:// address (--strategy tpu); 'local' on a TPU VM")
    p.add_argument(
        "--mode",
        default="train",
        choices=["train", "train_and_eval"],
        help="train_and_eval also evaluates every new checkpoint on the validation set",
    )
    p.add_argument("--no_progress", action="store_true", help="log lines only, no progress bar")
    p.add_argument(
        "--init_checkpoint",
        help="pretrained start when --model_dir has no checkpoint (= train.init.path): a hierseg, TF Model "
        "Garden Mask R-CNN or TF1 TPU ResNet checkpoint (prefix or directory)",
    )
    p.add_argument(
        "--init_modules",
        help="what to load from it (= train.init.modules): all (default) or a comma list of "
        "backbone,fpn,rpn,box_head,mask_head",
    )
    p.add_argument("--init_prefix", help="variable prefix of a TF1 checkpoint, e.g. resnet50/ (= train.init.prefix)")


def init_overrides(args: argparse.Namespace) -> dict:
    """The --init_* flags as a config override of train.init (empty when none is given)."""
    init = {
        key: value
        for key, value in (
            ("path", args.init_checkpoint),
            ("modules", args.init_modules),
            ("prefix", args.init_prefix),
        )
        if value is not None
    }
    return {"train": {"init": init}} if init else {}


def run(args: argparse.Namespace) -> int:
    setup_logging()
    config = load_experiment(args)  # config errors surface before a TPU is initialised
    if init_overrides(args):
        from hierseg.config import merge

        config = merge(config, init_overrides(args))
    from hierseg.training.strategy import make_strategy

    strategy = make_strategy(args.strategy, args.tpu)
    from hierseg.training.loop import train

    eval_fn = None
    if args.mode == "train_and_eval":
        from hierseg.evaluation.evaluator import checkpoint_evaluator

        eval_fn = checkpoint_evaluator(config, args.model_dir)
    result = train(config, args.model_dir, strategy, show_progress=not args.no_progress, eval_fn=eval_fn)
    logging.info("done: %s", json.dumps(result, default=str))
    return 0
