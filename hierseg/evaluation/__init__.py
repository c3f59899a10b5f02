"""Evaluation: model outputs to host-side detections and COCO box and mask mAP.

Modules: :mod:`model_outputs` (batched model outputs -> :class:`hierseg.detections.Detections`, shared by
evaluation and prediction), :mod:`coco_metric` (pycocotools mAP on the prepared validation JSON),
:mod:`evaluator` (``hierseg evaluate``: a checkpoint over the eval pipeline). Imports ``training``
(checkpoints) but nothing imports it from ``training``; ``serving`` uses :mod:`model_outputs`.
"""
