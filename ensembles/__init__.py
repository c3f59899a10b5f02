"""Ensembling Layer0/Layer1 predictions into parent-child labeled instances, Open Images challenge
submissions (writing and validating) and the challenge 2019 instance segmentation metric.

Modules: :mod:`~ensembles.config`, :mod:`~ensembles.merge`,
:mod:`~ensembles.prediction_io`, :mod:`~ensembles.image_set`, :mod:`~ensembles.submission`,
:mod:`~ensembles.validate_submission`, :mod:`~ensembles.process_pool`, :mod:`ensembles.metric`.
Masks, prediction files and detections are :mod:`hierseg.rle`, :mod:`hierseg.prediction_file` and
:mod:`hierseg.detections`.
"""
