"""The learning-rate schedule of the seed's Mask R-CNN recipes: linear warmup, then step decay.

``lr(step) = warmup_lr + step / warmup_steps * (init_lr - warmup_lr)`` while ``step < warmup_steps``;
afterwards ``init_lr * decay_factor ** k`` where ``k`` counts the decay boundaries ``<= step``. This is
the TPU detection models' ``step_learning_rate_with_linear_warmup`` (levels ``init_lr * 0.1**k``).
With ``policy="poly"`` (DeepLab) the post-warmup rate is ``init_lr * (1 - step / poly_steps) ** poly_power``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from hierseg.config.training import LearningRateConfig


class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Callable ``step (int or tensor) -> float32 learning rate``; pure (no state)."""

    def __init__(
        self,
        init_lr: float,
        warmup_steps: int,
        warmup_lr: float,
        decay_steps: list[int],
        decay_factor: float = 0.1,
        policy: str = "step",
        poly_steps: int = 0,
        poly_power: float = 0.9,
    ):
        if policy == "poly" and poly_steps <= 0:
            raise ValueError(f"learning_rate.poly_steps must be > 0 with policy poly, got {poly_steps}")
        self.policy = policy
        self.poly_steps = int(poly_steps)
        self.poly_power = float(poly_power)
        if list(decay_steps) != sorted(decay_steps):
            raise ValueError(f"learning_rate.decay_steps must be increasing, got {list(decay_steps)}")
        if warmup_steps < 0:
            raise ValueError(f"learning_rate.warmup_steps must be >= 0, got {warmup_steps}")
        self.init_lr = float(init_lr)
        self.warmup_steps = int(warmup_steps)
        self.warmup_lr = float(warmup_lr)
        self.decay_steps = [int(s) for s in decay_steps]
        self.decay_factor = float(decay_factor)

    @classmethod
    def from_config_section(cls, cfg: LearningRateConfig) -> WarmupStepDecay:
        return cls(
            cfg.init_lr,
            cfg.warmup_steps,
            cfg.warmup_lr,
            cfg.decay_steps,
            cfg.decay_factor,
            cfg.policy,
            cfg.poly_steps,
            cfg.poly_power,
        )

    def __call__(self, step) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        lr = tf.constant(self.init_lr, tf.float32)
        # Levels are computed in float64 on the host so that e.g. 0.08 * 0.1**2 is the nearest float32.
        for k, boundary in enumerate(self.decay_steps, start=1):
            level = tf.constant(self.init_lr * self.decay_factor**k, tf.float32)
            lr = tf.where(step >= boundary, level, lr)
        if self.policy == "poly":
            frac = tf.clip_by_value(1.0 - step / float(self.poly_steps), 0.0, 1.0)
            lr = self.init_lr * tf.pow(frac, self.poly_power)
        if self.warmup_steps > 0:
            frac = step / float(self.warmup_steps)
            warm = self.warmup_lr + frac * (self.init_lr - self.warmup_lr)
            lr = tf.where(step < self.warmup_steps, warm, lr)
        return lr

    def get_config(self) -> dict:
        return {
            "init_lr": self.init_lr,
            "warmup_steps": self.warmup_steps,
            "warmup_lr": self.warmup_lr,
            "decay_steps": self.decay_steps,
            "decay_factor": self.decay_factor,
            "policy": self.policy,
            "poly_steps": self.poly_steps,
            "poly_power": self.poly_power,
        }
