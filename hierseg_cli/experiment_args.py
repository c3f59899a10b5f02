"""The flags shared by `hierseg train`, `evaluate` and `export`: which experiment config, which data."""

from __future__ import annotations

import argparse
import logging
import os

from hierseg.config import load, merge
from hierseg.config.experiment import ExperimentConfig, resolve_num_classes
from hierseg.label_map import LabelMap

EFFECTIVE_CONFIG = "params.yaml"  # what `hierseg train` writes into --model_dir


def add_experiment_arguments(p: argparse.ArgumentParser, *, config_from_model_dir: bool = False) -> None:
    default = " (default: the params.yaml that `hierseg train` wrote into --model_dir)" if config_from_model_dir else ""
    p.add_argument("--config_file", help="experiment YAML, e.g. configs/layer0_maskrcnn_r50_fpn.yaml" + default)
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
    """The data paths of a prepared layer folder, as a config override."""
    label_map = os.path.join(data_dir, "label_map.pbtxt")
    return {
        "data": {
            "train_file_pattern": os.path.join(data_dir, "train-*.tfrecord"),
            "eval_file_pattern": os.path.join(data_dir, "validation-*.tfrecord"),
            "eval_json": os.path.join(data_dir, "validation_coco.json"),
            "label_map": label_map,
        },
        "model": {"num_classes": LabelMap.load(label_map).num_classes},
    }


def load_experiment(args: argparse.Namespace, model_dir: str | None = None) -> ExperimentConfig:
    """Defaults <- --config_file (or model_dir/params.yaml) <- --data_dir <- each --params_override;
    then ``model.num_classes`` resolved from ``data.label_map`` when 0 (the one place it is resolved)."""
    config_file = args.config_file
    if not config_file and model_dir:
        candidate = os.path.join(model_dir, EFFECTIVE_CONFIG)
        import tensorflow as tf

        if tf.io.gfile.exists(candidate):
            config_file = candidate
            logging.info("config: %s", candidate)
    config = load(ExperimentConfig, config_file)
    if args.data_dir:
        config = merge(config, data_dir_overrides(args.data_dir))
    return resolve_num_classes(load_overrides(config, args.params_override))


def load_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    from hierseg.config import ConfigError, parse_override

    for text in overrides:
        try:
            config = merge(config, parse_override(text))
        except ConfigError as e:
            raise ConfigError(f"--params_override: {e}") from None
    return config


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
