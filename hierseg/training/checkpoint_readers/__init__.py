"""Readers that initialise a hierseg detector (whole or in part) from pretrained checkpoints (issue 12).

One reader per source, each turning the checkpoint into a list of :class:`~.plan.Assignment` (checkpoint
variable -> our variable, with a transform for class-specific layers); :func:`~.plan.apply_assignments`
checks and assigns them and returns an :class:`~.plan.InitReport` (the log table):

* :mod:`.hierseg_ckpt`: hierseg's own checkpoints (a Layer0 model warm-starting Layer1, a COCO model);
* :mod:`.model_garden`: TF Model Garden's TF2 Mask R-CNN (``official/vision`` ``maskrcnn_resnetfpn_coco``);
* :mod:`.tf1_resnet`: the TF1 Cloud TPU ImageNet ResNets (backbone only, under a ``prefix``).

:func:`~.init.initialize` picks the reader (``source = "auto"`` looks at the variable names).
"""

from hierseg.training.checkpoint_readers.init import detect_source, initialize
from hierseg.training.checkpoint_readers.plan import MODULES, InitReport, parse_modules

__all__ = ["MODULES", "InitReport", "detect_source", "initialize", "parse_modules"]
