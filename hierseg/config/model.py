"""Model config: ResNet-FPN Mask R-CNN. Owned by hierseg/models; every field commented."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AnchorConfig:
    min_level: int = 2  # finest FPN level (stride 2**min_level)
    max_level: int = 6  # coarsest FPN level; the input size must be a multiple of 2**max_level
    num_scales: int = 1  # anchor scales per octave
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # height/width... see ops.anchors
    anchor_size: float = 8.0  # anchor side = anchor_size * stride at scale 0


@dataclass
class ModelConfig:
    num_classes: int = 0  # K foreground classes; 0 = read from the label map at train time
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
