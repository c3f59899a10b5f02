"""The flags shared by `hierseg train`, `evaluate` and `export`: which experiment config, which data."""

from __future__ import annotations

import argparse
import logging
import os

from hierseg.config import check, load, merge
from hierseg.config.experiment import ExperimentConfig, resolve_num_classes
from hierseg.label_map import LabelMap
from hierseg.layout import ModelDir, PreparedLayer


def add_experiment_arguments(
    p: argparse.ArgumentParser, *, config_from_model_dir: bool = False, train: bool = False
) -> None:
    default = ""
    if config_from_model_dir:
        default = "; default: the params.yaml that `hierseg train` wrote into --model_dir"
    elif train:
        default = (
            "; default: the built-in defaults, i.e. Mask R-CNN ResNet-50 FPN at 1024 px on the Cloud TPU v3-8 "
            "schedule (global batch 64, 45000 steps), which is not meant for a CPU"
        )
    p.add_argument(
        "--config_file",
        help="experiment YAML: a path, or the name of a shipped config (tiny_cpu.yaml, "
        "layer0_maskrcnn_r50_fpn.yaml, tpu/v3-32.yaml, ...)" + default,
    )
    p.add_argument(
        "--params_override",
        action="append",
        default=[],
        help="overrides applied after --config_file: 'a.b=1,c.d=x', a YAML/JSON mapping, or a "
        "YAML file; may be repeated (later ones win)",
    )
    p.add_argument(
        "--data_dir",
        help="a prepared layer folder (hierseg prepare's OUT/layer0): fills "
        "data.train_file_pattern, eval_file_pattern, eval_json, label_map and model.num_classes "
        "(before --params_override)",
    )


def data_dir_overrides(data_dir: str) -> dict:
    """The data paths of a prepared layer folder, as a config override.

    Raises:
      UsageError: when ``data_dir`` is not a folder written by `hierseg prepare`.
    """
    import tensorflow as tf

    from hierseg.errors import UsageError

    layer = PreparedLayer(data_dir)
    if not tf.io.gfile.isdir(data_dir):
        raise UsageError(f"--data_dir {data_dir}: no such folder (give a prepared layer folder, e.g. OUT/layer0)")
    if not tf.io.gfile.exists(layer.label_map):
        raise UsageError(
            f"--data_dir {data_dir}: no label_map.pbtxt: not a layer folder written by `hierseg prepare` "
            "(give OUT/layer0 or OUT/layer1)"
        )
    return {
        "data": {
            "train_file_pattern": layer.shard_pattern("train"),
            "eval_file_pattern": layer.shard_pattern("validation"),
            "eval_json": layer.validation_coco_json,
            "label_map": layer.label_map,
        },
        "model": {"num_classes": LabelMap.load(layer.label_map).num_classes},
    }


def load_experiment(args: argparse.Namespace, model_dir: str | None = None) -> ExperimentConfig:
    """Defaults <- --config_file (or model_dir/params.yaml) <- --data_dir <- each --params_override,
    range-checked (hierseg.config.params.check); then ``model.num_classes`` resolved from ``data.label_map``
    when 0 (the one place it is resolved)."""
    config_file = args.config_file
    if not config_file and model_dir:
        candidate = ModelDir(model_dir).params_yaml
        import tensorflow as tf

        if tf.io.gfile.exists(candidate):
            config_file = candidate
            logging.info("config: %s", candidate)
    config = load(ExperimentConfig, config_file)
    if args.data_dir:
        config = merge(config, data_dir_overrides(args.data_dir))
    return resolve_num_classes(check(load_overrides(config, args.params_override)))


def load_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    from hierseg.config import ConfigError, parse_override

    for text in overrides:
        parsed = parse_override(text)  # its errors already name --params_override
        try:
            config = merge(config, parsed)
        except ConfigError as e:
            raise ConfigError(f"--params_override: {e}") from None
    return config


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def check_model_dir(args: argparse.Namespace) -> None:
    """`evaluate`/`export`: --model_dir (an existing training folder) or --checkpoint (an existing prefix).

    Raises:
      UsageError: naming the flag and what is missing.
    """
    import tensorflow as tf

    from hierseg.errors import UsageError

    if not (args.model_dir or args.checkpoint):
        raise UsageError("give --model_dir (a `hierseg train` folder) or --checkpoint (MODEL_DIR/ckpt-N)")
    if args.checkpoint and not tf.io.gfile.exists(args.checkpoint + ".index"):
        raise UsageError(f"--checkpoint {args.checkpoint}: no such checkpoint (no {args.checkpoint}.index)")
    if args.model_dir and not args.checkpoint:
        if not tf.io.gfile.isdir(args.model_dir):
            raise UsageError(f"--model_dir {args.model_dir}: no such folder")
        if tf.train.latest_checkpoint(args.model_dir) is None:
            raise UsageError(f"--model_dir {args.model_dir}: no checkpoint yet (train first, or give --checkpoint)")
