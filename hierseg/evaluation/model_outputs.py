"""Batched model outputs -> host-side :class:`Detections`: the one conversion that evaluation
(``hierseg evaluate``) and prediction (``hierseg predict``) share.

The model (and the exported ``serve_images`` signature) returns, per batch:
``DET_BOXES`` [B, D, 4] normalized (ymin, xmin, ymax, xmax) of the original image, ``DET_CLASSES``
[B, D] int 1..K (0 = padding), ``DET_SCORES`` [B, D], ``DET_MASKS`` [B, D, M, M] float32 mask
probabilities inside each box, ``NUM_DETECTIONS`` [B]. Masks are pasted into the original image size
with :func:`hierseg.ops.mask_paste.paste_masks`, thresholded and run-length encoded one image at a time.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hierseg import features
from hierseg.detections import Detections, encode_rles
from hierseg.label_map import LabelMap


# Traced once per mask size M, with image size and detection count dynamic, so pasting every image of
# a long run does not re-trace or run op by op.
@tf.function(reduce_retracing=True)
def _paste_and_threshold(masks, boxes, height, width, threshold):
    """bool ``[D, height, width]``: box masks pasted into the image (bilinear) and thresholded."""
    from hierseg.ops.mask_paste import paste_masks

    return paste_masks(masks, boxes, height, width) >= threshold


def image_detections(
    outputs: dict[str, np.ndarray],
    b: int,
    image_id: str,
    height: int,
    width: int,
    label_map: LabelMap,
    *,
    min_score: float = 0.0,
    mask_threshold: float = 0.5,
    drop_empty_masks: bool = False,
) -> Detections:
    """Image ``b`` of a batch of outputs (numpy) -> :class:`Detections` at ``height`` x ``width``.

    Detections scoring below ``min_score`` and padding rows (class 0) are left out. With
    ``drop_empty_masks`` a detection whose pasted mask has no pixel is left out too (prediction does,
    since a submission cannot carry an empty mask; COCO evaluation keeps them as the model's output).
    """
    num = int(outputs[features.NUM_DETECTIONS][b])
    scores = outputs[features.DET_SCORES][b, :num].astype(np.float32)
    classes = outputs[features.DET_CLASSES][b, :num].astype(np.int64)
    keep = np.flatnonzero((scores >= min_score) & (classes >= 1))
    if not len(keep):
        return Detections(image_id, height, width)
    boxes = np.clip(outputs[features.DET_BOXES][b, keep].astype(np.float32), 0.0, 1.0)
    masks = _paste_and_threshold(
        tf.constant(outputs[features.DET_MASKS][b, keep], tf.float32),
        tf.constant(boxes),
        tf.constant(height, tf.int32),
        tf.constant(width, tf.int32),
        tf.constant(mask_threshold, tf.float32),
    ).numpy()
    if drop_empty_masks:
        nonempty = masks.reshape(len(keep), -1).any(axis=1)
        keep, boxes, masks = keep[nonempty], boxes[nonempty], masks[nonempty]
        if not len(keep):
            return Detections(image_id, height, width)
    mids = [label_map.mid_of(int(c)) for c in classes[keep]]
    return Detections(image_id, height, width, mids, scores[keep], boxes, encode_rles(masks))
