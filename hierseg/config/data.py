"""Input pipeline config. Owned by hierseg/input; every field commented."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    train_file_pattern: str = ""  # glob of training TFRecords, local or gs:// (e.g. OUT/layer0/train-*)
    eval_file_pattern: str = ""  # glob of validation TFRecords
    eval_json: str = ""  # COCO-format validation JSON written by `hierseg prepare`
    label_map: str = ""  # label_map.pbtxt written by `hierseg prepare`
    output_size: int = 1024  # images resized (longer side) and padded to output_size x output_size
    max_instances: int = 100  # instances padded/capped to this count per image
