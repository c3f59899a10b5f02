"""Test-time augmentation of one exported layer: horizontal flip and smaller scales, merged per class.

Each batch already preprocessed for the export (``[B, S, S, 3]`` normalized, content in the top-left
``scaled_h x scaled_w`` corner, zero padding; ``image_info`` as :mod:`hierseg.features` describes) is
run once per *view*: every scale ``s`` of :class:`TTAConfig` (the content resized by ``s`` and padded
again; ``image_info`` rows 1-2 scaled with it, so the model maps its boxes back to the original image
itself), and with ``flip`` each of those mirrored left-right (the content only; the detections are
mirrored back: masks flipped, ``xmin, xmax -> 1 - xmax, 1 - xmin``). The export's input size is fixed,
so scales are at most 1: a larger scale needs an export with a larger input.

The union of every view's detections is merged per class by greedy clustering on mask IoU (highest
score first; a detection joins the first cluster whose leader it overlaps by ``iou`` or more):

* ``merge="nms"``: each cluster keeps its leader unchanged;
* ``merge="vote"`` (box voting): each cluster becomes one detection whose mask is the pixel-wise
  average of its members' masks, thresholded at 0.5 (the members' majority), its box the tight box of
  that mask, and its score the mean of its members' scores times the fraction of views that found it
  (a detection seen in one view of four keeps a quarter of its score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hierseg.detections import Detections
from hierseg.rle import decode_rles, encode_rles, pairwise_iou, tight_boxes

MERGES = ("vote", "nms")


@dataclass(frozen=True)
class TTAConfig:
    """What ``--tta`` asks for.

    Attributes:
      enabled: run the views at all (a config's ``tta`` section turns it on; so does ``--tta``).
      flip: also run every scale mirrored left-right.
      scales: content scales in (0, 1], 1 = the export's own preprocessing.
      merge: "vote" or "nms" (see the module docstring).
      iou: mask IoU in (0, 1] at which detections of one class are merged.
    """

    enabled: bool = False  # run the views at all (--tta turns it on)
    flip: bool = True  # each scale also mirrored left-right
    scales: tuple[float, ...] = (1.0,)  # content scales in (0, 1]; 1 = the export's own preprocessing
    merge: str = "vote"  # "vote" (masks averaged, scores by views found) or "nms" (best kept)
    iou: float = 0.55  # mask IoU at which detections of one class merge

    def __post_init__(self) -> None:
        if not self.scales or any(not 0.0 < s <= 1.0 for s in self.scales):
            raise ValueError(f"tta scales must lie in (0, 1] (the export's input size is fixed), got {self.scales}")
        if self.merge not in MERGES:
            raise ValueError(f"tta merge must be one of {MERGES}, got {self.merge!r}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"tta iou must lie in (0, 1], got {self.iou}")

    @property
    def num_views(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)


def parse_tta(text: str) -> TTAConfig:
    """``"flip"``, ``"flip,scales=0.75:1"``, ``"scales=0.8:1,merge=nms,iou=0.6"`` -> :class:`TTAConfig`.

    Raises:
      ValueError: naming the unknown or bad item.
    """
    fields: dict = {"enabled": True, "flip": False}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, _, value = item.partition("=")
        if key == "flip" and not value:
            fields["flip"] = True
        elif key == "scales" and value:
            try:
                fields["scales"] = tuple(float(v) for v in value.split(":"))
            except ValueError:
                raise ValueError(f"--tta {text!r}: scales must be numbers separated by ':', got {value!r}") from None
        elif key == "merge" and value:
            fields["merge"] = value
        elif key == "iou" and value:
            fields["iou"] = float(value)
        else:
            raise ValueError(f"--tta {text!r}: unknown item {item!r} (use flip, scales=a:b, merge=vote|nms, iou=x)")
    return TTAConfig(**fields)


def make_view(images: np.ndarray, image_info: np.ndarray, scale: float, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """One view of a preprocessed batch: content scaled by ``scale`` (bilinear) and/or mirrored.

    Args:
      images: float32 ``[B, S, S, 3]``; image_info: float32 ``[B, 4, 2]``.
    Returns:
      (images ``[B, S, S, 3]``, image_info ``[B, 4, 2]``) of the view.
    """
    out = np.zeros_like(images)
    info = np.array(image_info, np.float32, copy=True)
    for b in range(len(images)):
        sh, sw = (int(round(float(v))) for v in image_info[b, 1])
        content = images[b, :sh, :sw]
        nh, nw = max(1, int(round(sh * scale))), max(1, int(round(sw * scale)))
        if (nh, nw) != (sh, sw):
            import tensorflow as tf

            content = tf.image.resize(content, [nh, nw], method="bilinear").numpy()
        out[b, :nh, :nw] = content[:, ::-1] if flip else content
        info[b, 1] = (nh, nw)
        info[b, 2] = (nh / image_info[b, 0, 0], nw / image_info[b, 0, 1])
    return out, info


def unflip(det: Detections) -> Detections:
    """Detections of a mirrored image, mirrored back (masks, boxes)."""
    if not len(det):
        return det
    masks = decode_rles(det.rles, det.height, det.width)[:, :, ::-1]
    boxes = det.boxes.copy()
    boxes[:, 1], boxes[:, 3] = 1.0 - det.boxes[:, 3], 1.0 - det.boxes[:, 1]
    return Detections(
        det.image_id,
        det.height,
        det.width,
        list(det.classes),
        det.scores,
        boxes,
        encode_rles(np.ascontiguousarray(masks)),
        det.label_paths,
    )


def _clusters(rles: list[dict], scores: np.ndarray, iou: float) -> list[list[int]]:
    """Greedy clusters (indices, leader first) of one class's detections by mask IoU to the leader."""
    order = np.argsort(-scores, kind="stable")
    ious = pairwise_iou([rles[i] for i in order], [rles[i] for i in order])
    assigned = np.zeros(len(order), bool)
    out = []
    for a in range(len(order)):
        if assigned[a]:
            continue
        members = [b for b in range(a, len(order)) if not assigned[b] and ious[a, b] >= iou]
        assigned[members] = True
        out.append([int(order[m]) for m in members])
    return out


def merge_views(views: Sequence[Detections], config: TTAConfig) -> Detections:
    """The union of one image's per-view detections, merged per class (see the module docstring)."""
    first = views[0]
    classes = [c for v in views for c in v.classes]
    if not classes:
        return Detections(first.image_id, first.height, first.width)
    scores = np.concatenate([v.scores for v in views]).astype(np.float64)
    rles = [r for v in views for r in v.rles]
    boxes = np.concatenate([v.boxes for v in views])
    view_of = np.concatenate([np.full(len(v), k) for k, v in enumerate(views)])
    out_cls, out_scores, out_masks, out_boxes = [], [], [], []
    for c in dict.fromkeys(classes):
        idx = [i for i, x in enumerate(classes) if x == c]
        for cluster in _clusters([rles[i] for i in idx], scores[idx], config.iou):
            members = [idx[m] for m in cluster]
            out_cls.append(c)
            if config.merge == "nms":
                lead = members[0]
                out_scores.append(scores[lead])
                out_masks.append(decode_rles([rles[lead]], first.height, first.width)[0])
                out_boxes.append(boxes[lead])
                continue
            mean = decode_rles([rles[m] for m in members], first.height, first.width).mean(axis=0)
            out_masks.append(mean >= 0.5)
            found = len(set(view_of[members].tolist())) / config.num_views
            out_scores.append(float(np.mean(scores[members])) * found)
            out_boxes.append(None)
    masks = np.stack(out_masks)
    keep = masks.reshape(len(masks), -1).any(1)
    tight = tight_boxes(masks)
    final_boxes = np.stack([tight[k] if b is None else b for k, b in enumerate(out_boxes)]).astype(np.float32)
    keep_idx = np.flatnonzero(keep)
    order = keep_idx[np.argsort(-np.asarray(out_scores)[keep_idx], kind="stable")]
    return Detections(
        first.image_id,
        first.height,
        first.width,
        [out_cls[k] for k in order],
        np.asarray(out_scores, np.float32)[order],
        final_boxes[order],
        encode_rles(masks[order]),
    )


class TTAPredictor:
    """A :class:`hierseg.serving.predictor.LayerPredictor` run over every view, merged per image; it has
    the predictor's ``predict``, ``output_size``, ``label_map`` and ``mids``, so it stands in for it."""

    def __init__(self, predictor, config: TTAConfig) -> None:
        self.base = predictor
        self.config = config
        self.output_size = predictor.output_size
        self.label_map = predictor.label_map

    @property
    def mids(self) -> tuple[str, ...]:
        return self.base.mids

    def __getattr__(self, name: str):  # anything else (config, export_dir, ...) as the predictor's
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def predict(self, images: np.ndarray, image_info: np.ndarray, image_ids: Sequence[str]) -> list[Detections]:
        """As ``LayerPredictor.predict``, with every view merged."""
        per_view = []
        for scale in self.config.scales:
            for flip in (False, True) if self.config.flip else (False,):
                v_images, v_info = make_view(np.asarray(images), np.asarray(image_info), scale, flip)
                dets = self.base.predict(v_images, v_info, image_ids)
                per_view.append([unflip(d) for d in dets] if flip else dets)
        return [merge_views([v[b] for v in per_view], self.config) for b in range(len(image_ids))]
