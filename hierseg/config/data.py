"""Input pipeline config. Owned by hierseg/input; every field commented."""

from __future__ import annotations

from dataclasses import dataclass, field

from hierseg.config.deeplab import SemanticTargetConfig


@dataclass
class AugmentConfig:
    """Training-time augmentation (never applied at eval)."""

    flip_prob: float = 0.5  # probability of a horizontal flip of image, boxes and masks
    scale_min: float = 0.8  # scale jitter: the resized image is scaled by U(scale_min, scale_max) ...
    scale_max: float = 1.25  # ... then randomly cropped / padded back to output_size (1.0, 1.0 = off)


@dataclass
class DataConfig:
    """What the input pipeline reads and how it shapes it. RPN target settings (IoU thresholds, sampled
    anchors, box coding) are the model's ``model.rpn`` section, so targets always match the head."""

    train_file_pattern: str = ""  # glob of training TFRecords, local or gs:// (e.g. OUT/layer0/train-*)
    eval_file_pattern: str = ""  # glob of validation TFRecords
    eval_json: str = ""  # COCO-format validation JSON written by `hierseg prepare`
    label_map: str = ""  # label_map.pbtxt written by `hierseg prepare`
    output_size: int = 1024  # images resized (longer side) and padded to output_size x output_size
    max_instances: int = 100  # instances padded/capped to this count per image (excess counted in NUM_DROPPED)
    gt_mask_size: int = 112  # instance masks cropped to their box and resized to gt_mask_size x gt_mask_size
    aug: AugmentConfig = field(default_factory=AugmentConfig)  # training augmentation
    shuffle_buffer: int = 1000  # examples in the shuffle buffer (training only; files are shuffled too)
    cycle_length: int = 16  # TFRecord files read in parallel by interleave
    deterministic: bool = False  # deterministic element order (reproducible, slower); seed from the caller
    skip_crowd_during_training: bool = True  # drop is_crowd (IsGroupOf) instances from training targets
    use_example_weights: bool = True  # read image/weight (repeat factor) into WEIGHT; False -> 1.0 for all
    min_box_size: float = 1.0  # after crop/jitter, instances whose box is smaller than this (pixels) are dropped
    prefetch: int = -1  # batches to prefetch; -1 = tf.data.AUTOTUNE
    cache: bool = False  # keep the serialized records in memory after the first pass: tiny datasets/tests only
    semantic: SemanticTargetConfig = field(default_factory=SemanticTargetConfig)  # GT_SEMANTIC for DeepLab
