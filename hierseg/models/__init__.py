"""Mask R-CNN (He et al. 2017) with a ResNet-FPN backbone, one module per part of the paper.

``resnet`` -> ``fpn`` -> ``rpn`` (proposals) -> ``roi_heads`` (box + mask heads) with ``losses`` and
``postprocess``; ``mask_rcnn.MaskRCNN`` assembles them and defines the train/inference call contract.
"""
