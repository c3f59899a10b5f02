"""RetinaNet config (Lin et al. 2017, "Focal Loss for Dense Object Detection"). Owned by hierseg/models.

The section ``model.retinanet``: the dense head, anchor labelling, losses and inference of
``model.type: retinanet`` and of ShapeMask's detector (``model.type: shapemask``). Backbone, FPN width
and anchors are the shared ``model.backbone``, ``model.fpn`` and ``model.anchor`` sections; RetinaNet
needs ``anchor`` on P3-P7 with 3 scales x 3 aspect ratios and ``anchor_size: 4`` (see the configs).

Defaults are the seed's (tensorflow/tpu ``configs/retinanet_config.py`` and ``detection_config.py``):
match/unmatched IoU 0.5, focal alpha 0.25 and gamma 1.5, Huber delta 0.1 on unweighted box deltas,
box loss weight 50, 5000 boxes before NMS, 100 detections, NMS IoU 0.5, score threshold 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hierseg.config.params import ConfigError


@dataclass
class RetinaNetHeadConfig:
    num_convs: int = 4  # 3x3 convs of the class subnet and of the box subnet (weights shared across levels)
    num_filters: int = 256  # filters of those convs
    use_batch_norm: bool = True  # batch norm (one per level, as the seed) + ReLU after each conv; else ReLU only


@dataclass
class RetinaNetConfig:
    head: RetinaNetHeadConfig = field(default_factory=RetinaNetHeadConfig)  # class and box subnets
    match_iou: float = 0.5  # anchor positive when its best IoU with a gt box >= match_iou (or best anchor of a gt)
    unmatched_iou: float = 0.5  # anchor negative when its best IoU < unmatched_iou; in between: ignored
    box_coding_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])  # (wy, wx, wh, ww)
    focal_alpha: float = 0.25  # focal loss: weight of positives (1 - alpha for negatives)
    focal_gamma: float = 1.5  # focal loss: modulating exponent of (1 - p_t)
    huber_delta: float = 0.1  # Huber box loss transition point (on the encoded deltas)
    class_loss_weight: float = 1.0  # multiplier of retinanet_class_loss in total_loss
    box_loss_weight: float = 50.0  # multiplier of retinanet_box_loss in total_loss
    pre_nms_topk: int = 5000  # (anchor, class) candidates with the best scores entering the NMS, per image
    max_detections: int = 100  # detections per image (fixed count, padded with class 0 / score 0)
    nms_iou: float = 0.5  # IoU threshold of the class-aware NMS
    score_threshold: float = 0.05  # candidates scoring at or below this are dropped

    def __post_init__(self) -> None:
        if not 0.0 < self.unmatched_iou <= self.match_iou <= 1.0:
            raise ConfigError(
                f"retinanet: need 0 < unmatched_iou ({self.unmatched_iou}) <= match_iou ({self.match_iou}) <= 1"
            )
        if not 0.0 <= self.focal_alpha <= 1.0 or self.focal_gamma < 0.0:
            raise ConfigError(
                f"retinanet: focal_alpha must be in [0, 1] and focal_gamma >= 0, got "
                f"{self.focal_alpha}, {self.focal_gamma}"
            )
        if self.huber_delta <= 0.0 or self.pre_nms_topk < 1 or self.max_detections < 1:
            raise ConfigError("retinanet: huber_delta, pre_nms_topk and max_detections must be positive")
        if len(self.box_coding_weights) != 4 or min(self.box_coding_weights) <= 0:
            raise ConfigError(f"retinanet.box_coding_weights: 4 positive numbers, got {self.box_coding_weights}")
