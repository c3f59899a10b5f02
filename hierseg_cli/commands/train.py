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
    add_experiment_arguments(p, train=True)
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


def check_arguments(args: argparse.Namespace, config) -> None:
    """Usage errors found before any model is built or a TPU initialised."""
    from hierseg.errors import UsageError

    if args.strategy == "tpu" and not args.tpu:
        raise UsageError("--strategy tpu needs --tpu (a Cloud TPU name, a grpc:// address, or 'local' on a TPU VM)")
    if not config.data.train_file_pattern:
        raise UsageError(
            "no training data: give --data_dir (a layer folder written by `hierseg prepare`, e.g. OUT/layer0) "
            "or set data.train_file_pattern and data.label_map"
        )


def run(args: argparse.Namespace) -> int:
    setup_logging()
    if not args.config_file:
        logging.warning(
            "no --config_file: using the built-in defaults (Mask R-CNN ResNet-50 FPN, 1024 px, the Cloud TPU "
            "v3-8 schedule: global batch 64, 45000 steps); on a CPU start from --config_file tiny_cpu.yaml"
        )
    config = load_experiment(args)  # config errors surface before a TPU is initialised
    check_arguments(args, config)
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
