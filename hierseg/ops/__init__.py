"""Pure tensor ops of the detector (anchors, box coding, IoU, NMS, ROIAlign, target sampling, mask pasting).

Every op works on static shapes (XLA/TPU friendly) and has a slow numpy reference next to it that the
tests compare against on random inputs.
"""
