"""The Open Images Challenge 2019 instance segmentation metric, as the official implementation in
tensorflow/models (research/object_detection, ``metrics/oid_challenge_evaluation.py``) computes it.

* :mod:`~ensembles.metric.groundtruth`: per-image ground truth in memory and its expansion along the
  hierarchy; :mod:`~ensembles.metric.groundtruth_files` loads it from the dataset folder,
  :mod:`~ensembles.metric.groundtruth_cache` caches what was loaded.
* :mod:`~ensembles.metric.per_image`: true/false positives of one image.
* :mod:`~ensembles.metric.average_precision`: precision/recall and the VOC-2010 AP.
* :mod:`~ensembles.metric.evaluator`: :class:`OidChallengeEvaluator`, over images in parallel.
"""

from ensembles.metric.average_precision import average_precision, precision_recall
from ensembles.metric.evaluator import OidChallengeEvaluator, evaluate_submission
from ensembles.metric.groundtruth import ExpandedGroundTruth, ImageGroundTruth
from ensembles.metric.groundtruth_files import load_ground_truth
from ensembles.metric.per_image import evaluate_image

__all__ = [
    "ExpandedGroundTruth",
    "ImageGroundTruth",
    "OidChallengeEvaluator",
    "average_precision",
    "evaluate_image",
    "evaluate_submission",
    "load_ground_truth",
    "precision_recall",
]
