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
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete --model_dir's checkpoints and start afresh when they were trained from other data or config",
    )
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


# Settings a resumed run may change without making the checkpoints another model's: how long to train,
# how often to log/save, and evaluation. Everything else must match the run that wrote the checkpoints.
RESUMABLE_KEYS = {
    "train": ("total_steps", "steps_per_loop", "checkpoint_every", "keep_checkpoints", "summary_every"),
    "eval": None,  # the whole section
}


def check_resume(args: argparse.Namespace, config) -> None:
    """Records (first run) or checks (rerun) the fingerprint of the training data and config in
    --model_dir (hierseg.fingerprint); removes checkpoint staging folders left by a killed run."""
    import tensorflow as tf

    from hierseg.atomic_write import remove_leftovers, write_text
    from hierseg.config import to_dict
    from hierseg.fingerprint import check_or_record, fingerprint

    for path in remove_leftovers(args.model_dir, temp_dirs=True):
        logging.info("removed %s, left by an interrupted run", path)
    tf.io.gfile.makedirs(args.model_dir)
    cfg = to_dict(config)
    for section, keys in RESUMABLE_KEYS.items():
        cfg[section] = {k: v for k, v in cfg[section].items() if keys is not None and k not in keys}
    data = config.data
    shards = tf.io.gfile.glob(data.train_file_pattern) if data.train_file_pattern else []
    current = fingerprint(cfg, {"label_map": data.label_map}, shards)

    def clear() -> None:
        for name in tf.io.gfile.listdir(args.model_dir):
            path = f"{args.model_dir.rstrip('/')}/{name.rstrip('/')}"
            (tf.io.gfile.rmtree if tf.io.gfile.isdir(path) else tf.io.gfile.remove)(path)

    def read(path: str) -> str:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(path)
        with tf.io.gfile.GFile(path, "r") as f:
            return f.read()

    check_or_record(
        args.model_dir,
        current,
        overwrite=args.overwrite,
        has_outputs=tf.train.latest_checkpoint(args.model_dir) is not None,
        clear=clear,
        read=read,
        write=write_text,
        what="hierseg train",
    )


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
    if init_overrides(args):
        from hierseg.config import merge

        config = merge(config, init_overrides(args))
    check_arguments(args, config)
    check_resume(args, config)
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
