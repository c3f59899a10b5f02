"""Configs of the ensembling and submission stages (typed, loaded by :func:`hierseg.config.params.load`).

An experiment YAML file may hold them under the top-level keys ``ensemble`` and ``submission``; the CLI
loads each with ``section=...`` so one file can configure several tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

MaskSource = Literal["layer1", "layer0", "union", "intersection", "average"]
ScoreSource = Literal["child", "parent", "product", "max", "mean"]


@dataclass
class EnsembleConfig:
    """How Layer0 (parent-class) and Layer1 (child-class) detections of one image are merged.

    Matching: every Layer1 detection may take at most one Layer0 detection of one of its ancestor
    classes whose mask IoU with it is >= ``iou_threshold``; each Layer0 detection is used at most once.
    """

    # Mask IoU at or above which a Layer1 detection and a Layer0 detection of one of its ancestor
    # classes are the same object. 0.5 is the metric's own matching threshold.
    iou_threshold: float = 0.5
    # Mask of a merged instance. "layer1" (default): the child model's mask; it is the specialist and
    # its mask is what the child class is scored on. "layer0": the parent model's. "union" /
    # "intersection": of the two binary masks. "average": the score-weighted mean of the two binary
    # masks thresholded at 0.5, i.e. the more confident detection's mask (both agree inside the
    # intersection), the union on equal scores.
    mask_source: MaskSource = "layer1"
    # Score of a merged instance. "child" (default): the Layer1 score, since a merged instance is
    # submitted for the child class too and the child's confidence is the one that ranks it there.
    # "parent": the Layer0 score. "product": s0 * s1 (both must agree). "max", "mean": of the two.
    score_source: ScoreSource = "child"
    # Detections scoring below these are dropped before matching (they neither match nor appear in the
    # output); 0 keeps everything.
    min_layer0_score: float = 0.0
    min_layer1_score: float = 0.0
    RANGES: ClassVar[dict[str, str]] = {"iou_threshold": "0..1", "min_layer0_score": "0..1", "min_layer1_score": "0..1"}


@dataclass
class SubmissionConfig:
    """How ensembled detections become a challenge submission."""

    # Instances scoring below this are not written (the 2019 participants found 0.1-0.2 useful; 0 keeps all).
    score_threshold: float = 0.0
    # At most this many (class, score, mask) triples per image, the highest-scoring first, counted after
    # every instance was copied to all classes of its label path and their ancestors; 0 = no cap. Kaggle's
    # scorer timed out on very long prediction strings.
    max_per_image: int = 0
    RANGES: ClassVar[dict[str, str]] = {"score_threshold": "0..1", "max_per_image": ">= 0"}  # checked at load
