"""Evaluation: COCO box and mask mAP on the prepared validation JSON (:mod:`coco_metric`)."""
