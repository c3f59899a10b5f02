"""The engine's experiment config: one YAML file in configs/ per experiment, sections below.

Load it with :func:`hierseg.config.load` and then :func:`resolve_num_classes` once (the CLIs do both in
``hierseg_cli.experiment_args.load_experiment``): every library function after that takes
``model.num_classes`` as set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hierseg.config.data import DataConfig
from hierseg.config.model import ModelConfig
from hierseg.config.params import ConfigError, merge
from hierseg.config.training import EvalConfig, TrainConfig


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)  # input pipeline
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation, schedule, checkpoints
    eval: EvalConfig = field(default_factory=EvalConfig)  # evaluation


def resolve_num_classes(config: ExperimentConfig) -> ExperimentConfig:
    """``model.num_classes == 0`` means "as many as data.label_map has": fill it in (once, at load time)."""
    if config.model.num_classes > 0:
        return config
    if not config.data.label_map:
        raise ConfigError(
            "model.num_classes is 0 and data.label_map is empty: give --data_dir (a layer folder written by "
            "`hierseg prepare`, e.g. OUT/layer0), or set data.label_map or model.num_classes"
        )
    from hierseg.label_map import LabelMap

    return merge(config, {"model": {"num_classes": LabelMap.load(config.data.label_map).num_classes}})
