"""data_prep: `hierseg prepare`, Open Images challenge files -> class-balanced per-layer TFRecord sets.

Entry point: :func:`data_prep.prepare.prepare`. Annotation stage (no pixels): :mod:`data_prep.plan`
(:func:`~data_prep.plan.load_tables`, :func:`~data_prep.plan.plan_layers`). Pixel stage:
:mod:`data_prep.pixels`, run by :mod:`data_prep.local_runner` or :mod:`data_prep.beam_pipeline`.
"""
