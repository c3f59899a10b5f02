"""Model config of DeepLab v3+ (Chen et al. 2018, "Encoder-Decoder with Atrous Separable Convolution").

Defaults are the published PASCAL VOC recipe of tensorflow/models research/deeplab (train.py flags and
model.py) with a ResNet backbone as in the Cloud TPU port (tensorflow/tpu models/experimental/deeplab,
``--model_variant=resnet_v1_101_beta --multi_grid=1,2,4``):

* output stride 16 for training, 8 for evaluation (``train_output_stride`` / ``eval_output_stride``);
* ASPP: a 1x1 branch, three 3x3 atrous branches at rates (6, 12, 18) for output stride 16, doubled to
  (12, 24, 36) at output stride 8, and image-level pooling; 256 filters each, concatenated and
  projected by a 1x1 conv to 256, dropout 0.1;
* decoder at stride 4: the C2 features projected by a 1x1 conv to 48 channels, concatenated with the
  bilinearly upsampled ASPP output, two 3x3 convs of 256 filters, a 1x1 classifier; logits bilinearly
  upsampled to the input size ("upsample_logits");
* softmax cross-entropy over background + K classes, label 255 ignored. The ignore label is the tensor
  convention ``hierseg.features.SEMANTIC_IGNORE`` (VOC's 255) rather than a field here, so the targets the
  input pipeline writes and the loss and metric that skip them cannot disagree.

Output stride is a config value, not a graph change: the backbone's last stages trade their stride for
dilation (atrous convolution), so the same weights run at either stride.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

VALID_OUTPUT_STRIDES = (8, 16, 32)


@dataclass
class SemanticTargetConfig:
    """``data.semantic``: whether and how the input pipeline emits GT_SEMANTIC (DeepLab)."""

    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "gray_value": "-1..255",
        "gray_tolerance": "0..255",
        "gray_min_side": ">= 1",
    }
    enabled: bool = False  # emit GT_SEMANTIC [S, S] int32 (needed by model.type deeplab_v3plus)
    gray_value: int = 128  # gray level data_prep paints (prepare config gray_value); -1 = no gray rule
    gray_tolerance: int = 10  # max |channel - gray_value| of a gray-filled pixel after JPEG coding
    gray_min_side: int = 4  # gray blocks smaller than this (pixels) are natural gray, not fill
    ignore_boxes_without_mask: bool = True  # ignore inside boxes whose mask is empty


@dataclass
class ASPPConfig:
    RANGES: ClassVar[dict[str, str]] = {"rates": ">= 1", "num_filters": ">= 1", "dropout": "0..0.99"}
    rates: list[int] = field(default_factory=lambda: [6, 12, 18])  # atrous rates at output stride 16
    num_filters: int = 256  # filters of every ASPP branch and of the 1x1 projection after the concat
    image_pooling: bool = True  # add the image-level branch (global mean, 1x1 conv, broadcast back)
    dropout: float = 0.1  # dropout after the projection at training time (DeepLab: keep_prob 0.9)


@dataclass
class DecoderConfig:
    RANGES: ClassVar[dict[str, str]] = {
        "low_level_level": "2..3",
        "low_level_filters": ">= 1",
        "num_convs": ">= 0",
        "num_filters": ">= 1",
    }
    enabled: bool = True  # False = DeepLab v3 (logits straight from ASPP at the output stride)
    low_level_level: int = 2  # backbone level fused by the decoder (2 = C2, stride 4)
    low_level_filters: int = 48  # 1x1 projection of the low-level features (DeepLab v3+: 48)
    num_convs: int = 2  # 3x3 convs after the concat (DeepLab v3+: two)
    num_filters: int = 256  # filters of those convs


@dataclass
class DeepLabConfig:
    RANGES: ClassVar[dict[str, str]] = {
        "train_output_stride": "8..32",  # and one of 8, 16, 32 (validate)
        "eval_output_stride": "8..32",
        "multi_grid": ">= 1",
        "class_weights": ">= 0",
        "loss_weight": ">= 0",
        "head_norm_momentum": "0..1",
        "head_norm_epsilon": "> 0",
    }
    train_output_stride: int = 16  # input / feature resolution while training (8, 16 or 32)
    eval_output_stride: int = 8  # ... at evaluation, export and prediction (ASPP rates scale with it)
    multi_grid: list[int] = field(default_factory=lambda: [1, 2, 4])  # C5 unit rate multipliers (resnet_beta)
    aspp: ASPPConfig = field(default_factory=ASPPConfig)  # atrous spatial pyramid pooling
    decoder: DecoderConfig = field(default_factory=DecoderConfig)  # stride-4 refinement (the "+" of v3+)
    upsample_logits: bool = True  # loss on logits upsampled to the input (DeepLab); False: on the stride-4
    # logits against nearest-downsampled labels (16x less logit memory, for layers with many classes)
    class_weights: list[float] = field(default_factory=list)  # per-class loss weights [K + 1], bg first; [] = 1
    loss_weight: float = 1.0  # multiplier of semantic_loss in total_loss
    head_norm_momentum: float = 0.9997  # batch-norm momentum of ASPP/decoder (DeepLab batch_norm_decay)
    head_norm_epsilon: float = 1e-5  # batch-norm epsilon of ASPP/decoder

    def validate(self, num_classes: int) -> None:
        """Raises ValueError naming the field of the first out-of-range value."""
        for name in ("train_output_stride", "eval_output_stride"):
            if getattr(self, name) not in VALID_OUTPUT_STRIDES:
                raise ValueError(
                    f"model.deeplab.{name} must be one of {VALID_OUTPUT_STRIDES}, got {getattr(self, name)}"
                )
        if not self.aspp.rates or min(self.aspp.rates) < 1:
            raise ValueError(f"model.deeplab.aspp.rates must be positive integers, got {self.aspp.rates}")
        if not self.multi_grid or min(self.multi_grid) < 1:
            raise ValueError(f"model.deeplab.multi_grid must be positive integers, got {self.multi_grid}")
        if not 0.0 <= self.aspp.dropout < 1.0:
            raise ValueError(f"model.deeplab.aspp.dropout must be in [0, 1), got {self.aspp.dropout}")
        if self.decoder.low_level_level not in (2, 3):
            raise ValueError(
                f"model.deeplab.decoder.low_level_level must be 2 or 3, got {self.decoder.low_level_level}"
            )
        if num_classes >= 255:
            raise ValueError(f"num_classes={num_classes}: semantic class ids must stay below the ignore label 255")
        if self.class_weights and len(self.class_weights) != num_classes + 1:
            raise ValueError(
                f"model.deeplab.class_weights has {len(self.class_weights)} entries, needs num_classes + 1 = "
                f"{num_classes + 1} (background first) or none"
            )
        if any(w < 0 for w in self.class_weights):
            raise ValueError("model.deeplab.class_weights must be >= 0")

    def rates_at(self, output_stride: int) -> list[int]:
        """ASPP rates for ``output_stride``: the configured rates are for 16, scaled by 16 / output_stride."""
        return [max(1, r * 16 // output_stride) for r in self.aspp.rates]
