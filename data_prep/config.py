"""`hierseg prepare` configuration: one typed dataclass tree, loaded with :func:`hierseg.config.params.load`.

Every field is commented; ``configs/prepare.yaml`` lists the same defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hierseg.config.hierarchy import HierarchyConfig


@dataclass
class BalanceConfig:
    """Class balance of the training split (validation is never balanced)."""

    # cap: at most ``cap`` images per class, rarest classes first (an image is kept when a class still under
    #   its cap needs it; classes with <= cap images keep all of them; co-occurring frequent classes may end
    #   above the cap through images kept for rarer ones).
    # repeat_factor: LVIS repeat-factor sampling, r_c = max(1, sqrt(t / f_c)), image factor = max over classes.
    # none: every image once.
    mode: Literal["cap", "repeat_factor", "none"] = "cap"
    cap: int = 1500  # images per class for mode=cap
    repeat_threshold: float = 0.001  # t of repeat-factor sampling: classes in fewer than t of the images repeat
    # How repeat factors are realised: "shards" writes floor(r) or ceil(r) copies of an image (stochastic
    # rounding, seeded) with image/weight 1.0; "weights" writes each image once with image/weight = r.
    realize: Literal["shards", "weights"] = "shards"
    RANGES: ClassVar[dict[str, str]] = {"cap": ">= 1", "repeat_threshold": "0..1"}  # checked at load


@dataclass
class ShardConfig:
    """Number of TFRecord shards per split; reduced so every shard holds >= min_examples_per_shard."""

    train: int = 64  # train shards for a full-size run
    validation: int = 8  # validation shards for a full-size run
    # Tiny data (tests, demos) would give empty or one-image shards: the count becomes
    # min(configured, ceil(examples / min_examples_per_shard)), at least 1.
    min_examples_per_shard: int = 16
    RANGES: ClassVar[dict[str, str]] = {"train": ">= 1", "validation": ">= 1", "min_examples_per_shard": ">= 1"}


@dataclass
class PrepareConfig:
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)  # depth groups -> layers, overrides
    balance: BalanceConfig = field(default_factory=BalanceConfig)  # training-set class balance
    num_shards: ShardConfig = field(default_factory=ShardConfig)  # shards per split
    seed: int = 0  # seeds balancing, repeat rounding, shard assignment and the held-out split
    gray_value: int = 128  # gray level painted over boxes of non-target parent classes (0..255, all channels)
    # Fraction of train images held out as validation when the dataset has no validation files.
    validation_fraction: float = 0.05
    jpeg_quality: int = 95  # JPEG quality when an image must be re-encoded (only after a gray fill)
    # Target-class boxes without a mask (train split) become instances with image/object/mask_valid = 0
    # (box losses only); False = today's behaviour before issue 12: they are not written (taught as background).
    box_only_instances: bool = True
    drop_empty_masks: bool = True  # instances whose mask has no pixel at image size are dropped (counted)
    verify_images: bool = True  # fully decode every JPEG so corrupt/truncated files are skipped, not written
    layers: list[int] | None = None  # which layers to write (indices into depth_groups); None = all
    splits: list[str] = field(default_factory=lambda: ["train", "validation"])  # splits to write
    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "gray_value": "0..255",
        "validation_fraction": "0..1",
        "jpeg_quality": "1..100",
        "layers": ">= 0",
    }
