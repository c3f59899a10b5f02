"""The engine's experiment config: one YAML file in configs/ per experiment, sections below."""

from __future__ import annotations

from dataclasses import dataclass, field

from hierseg.config.data import DataConfig
from hierseg.config.model import ModelConfig
from hierseg.config.training import EvalConfig, TrainConfig


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)  # input pipeline
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation, schedule, checkpoints
    eval: EvalConfig = field(default_factory=EvalConfig)  # evaluation
