"""Configs of the host-side stages: ensembling, submission, and ``hierseg predict`` as a whole.

:class:`PredictConfig` is the one config of ``hierseg predict``, ``hierseg ensemble`` and ``hierseg
submit``: each loads it whole from ``--config_file`` and ``--params_override`` (e.g.
``hierseg predict ... --params_override ensemble.iou_threshold=0.4,submission.max_per_image=300``),
so an unknown section or key anywhere (``submision.score_threshold=0.99``) is an error naming it.

The thresholds along the prediction path, in order (fewer than before: the predictor's own mask
threshold and ``--layer_min_score`` are gone):

1. ``model.detection.score_threshold`` and ``eval.mask_threshold`` of each layer's experiment config,
   fixed when the layer is exported (``export_config.yaml``); ``hierseg predict`` reads both from the
   export, so predict, evaluation and the ``serving_default`` signature paste masks alike.
2. ``ensemble.min_layer0_score`` / ``min_layer1_score``: a per-layer floor above the model's own;
   ``hierseg predict`` applies it before pasting masks (the costly step), the merge applies it to files.
3. ``submission.score_threshold``: instances written to the submission (the metric rewards few, good ones).
4. ``visualize_min_score``: instances drawn in the pictures only; the outputs keep them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hierseg.serving.tta import TTAConfig

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

    # Checked at load (hierseg.config.params.check); an IoU threshold above 1 matches nothing.
    RANGES: ClassVar[dict[str, str]] = {"iou_threshold": ">= 0", "min_layer0_score": "0..1", "min_layer1_score": "0..1"}


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


@dataclass
class PredictConfig:
    """``hierseg predict`` / ``ensemble`` / ``submit`` (module docstring): the YAML file has these keys.

    The command-line flags of the same names (``--batch_size``, ``--visualize``, ``--no_exif``,
    ``--score_threshold``, ...) override the file when given.
    """

    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)  # how the two layers merge
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)  # threshold and cap of the CSV
    batch_size: int = 4  # images per model call (predict)
    chunk_size: int = 0  # images per resumable part file (predict); 0 = max(batch_size, 32)
    apply_exif: bool = True  # rotate images by their EXIF orientation; False = the stored pixels (predict)
    visualize: bool = False  # also write OUT/visualize/<ImageID>.png (predict)
    visualize_min_score: float = 0.3  # instances below this are not drawn (they stay in every output)
    tta: TTAConfig = field(default_factory=TTAConfig)  # test-time augmentation of each layer (predict)

    RANGES: ClassVar[dict[str, str]] = {"batch_size": ">= 1", "chunk_size": ">= 0", "visualize_min_score": "0..1"}
