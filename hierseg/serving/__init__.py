"""Serving: the SavedModel export and prediction over image folders.

Modules: :mod:`export` (``export_saved_model``: the two serving signatures), :mod:`image_io` (listing and
robust, parallel decoding of user images), :mod:`predictor` (``LayerPredictor``: one exported layer ->
:class:`hierseg.detections.Detections`), :mod:`visualize` (masks and label-path captions drawn onto images).
"""
