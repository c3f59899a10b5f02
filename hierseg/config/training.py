"""Training and evaluation config. Owned by hierseg/training; every field commented."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    global_batch_size: int = 64  # images per step over all replicas
    total_steps: int = 45000  # optimizer steps
    steps_per_loop: int = 100  # steps per tf.function call (TPU iterations_per_loop)


@dataclass
class EvalConfig:
    batch_size: int = 8  # images per eval step over all replicas
