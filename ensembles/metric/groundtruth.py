"""Ground truth of the Open Images instance segmentation metric: per image, in memory.

:class:`ImageGroundTruth` holds one image's annotations as published (classes as annotated): its
instances are a :class:`~hierseg.detections.Detections` (classes, normalized boxes, COCO RLE masks at
the image size; a box without a mask has an empty mask), plus IsGroupOf flags, which instances have a
mask, and the image-level verified labels (positive and negative). Tests and benchmarks build it with
:meth:`ImageGroundTruth.from_annotations`; :func:`ensembles.metric.groundtruth_files.load_ground_truth`
builds it from the dataset folder.

:meth:`ImageGroundTruth.expand` applies the official hierarchy expansion
(``oid_hierarchical_labels_expansion.py``, Subcategory edges only): every instance is copied once per
ancestor class, positive labels are copied up to all ancestors, negative labels down to all
descendants. The classes evaluated in the image are then the expanded labels (positive and negative)
and the expanded instance classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.rle import rle_areas, rle_boxes, rle_from_runs


def _empty_rle(height: int, width: int) -> dict:
    """The RLE of an all-zero [height, width] mask: one run of zeros."""
    return rle_from_runs(np.array([height * width]), height, width)


class _InstancesWithMasks:
    """The fields both ground-truth types read through their ``instances`` (a :class:`Detections`)
    and ``has_mask`` ([N] bool)."""

    instances: Detections
    has_mask: np.ndarray

    image_id = property(lambda self: self.instances.image_id)
    height = property(lambda self: self.instances.height)
    width = property(lambda self: self.instances.width)
    classes = property(lambda self: self.instances.classes)
    boxes = property(lambda self: self.instances.boxes)

    @property
    def rles(self) -> list[dict | None]:
        """One RLE per instance, None where ``has_mask`` is False (a box without a mask; after the
        expansion also an empty mask)."""
        return [r if m else None for r, m in zip(self.instances.rles, self.has_mask)]

    def __len__(self) -> int:
        return len(self.instances)


@dataclass
class ImageGroundTruth(_InstancesWithMasks):
    """The annotations of one image, before expansion.

    Attributes:
      instances: the annotated instances: ``classes`` [N] MIDs, ``boxes`` [N, 4] float64 normalized
        (ymin, xmin, ymax, xmax), ``rles`` N COCO RLEs at [height, width] (all-zero for a box
        without a mask); ``scores`` are 1. Its image_id, height and width are the image's (0 x 0
        when the image has no masks).
      has_mask: [N] bool, False for a box without a mask (an empty mask also counts as none in the
        metric, as in the official evaluator).
      is_group_of: [N] bool.
      positive_labels, negative_labels: verified image-level labels (Confidence 1 / 0).
    """

    instances: Detections
    has_mask: np.ndarray
    is_group_of: np.ndarray
    positive_labels: tuple[str, ...] = ()
    negative_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.has_mask = np.asarray(self.has_mask, bool).reshape([-1])
        self.is_group_of = np.asarray(self.is_group_of, bool).reshape([-1])
        self.positive_labels = tuple(self.positive_labels)
        self.negative_labels = tuple(self.negative_labels)
        n = len(self.instances)
        if not (len(self.has_mask) == len(self.is_group_of) == n):
            raise ValueError(
                f"ground truth of {self.image_id}: {n} instances, {len(self.has_mask)} mask flags, "
                f"{len(self.is_group_of)} group-of flags"
            )

    @classmethod
    def from_annotations(
        cls,
        image_id: str,
        height: int,
        width: int,
        classes: Sequence[str] = (),
        boxes: np.ndarray | Sequence = (),
        rles: Sequence[dict | None] = (),
        is_group_of: Sequence[bool] | np.ndarray = (),
        positive_labels: Iterable[str] = (),
        negative_labels: Iterable[str] = (),
    ) -> ImageGroundTruth:
        """From per-instance lists; ``rles[k]`` None is a box without a mask.

        Raises:
          ValueError: for lists of different lengths or a mask not of size [height, width].
        """
        rles = list(rles)
        for k, r in enumerate(rles):
            if r is not None and [int(v) for v in r["size"]] != [height, width]:
                raise ValueError(
                    f"ground truth of {image_id}: mask {k} has size {list(r['size'])}, the image is [{height}, {width}]"
                )
        none = _empty_rle(height, width) if any(r is None for r in rles) else None
        boxes = np.asarray(boxes, np.float64).reshape([-1, 4])
        if not (len(classes) == len(boxes) == len(rles)):
            raise ValueError(
                f"ground truth of {image_id}: {len(classes)} classes, {len(boxes)} boxes, {len(rles)} masks"
            )
        instances = Detections(
            image_id, int(height), int(width), list(classes), np.ones(len(rles)), boxes, [r or none for r in rles]
        )
        return cls(instances, [r is not None for r in rles], is_group_of, positive_labels, negative_labels)

    def expand(self, hierarchy: Hierarchy) -> ExpandedGroundTruth:
        """The official expansion (see the module docstring).

        Raises:
          KeyError: for a class that is not in the hierarchy.
        """
        index: list[int] = []
        classes: list[str] = []
        for k, mid in enumerate(self.classes):
            for c in hierarchy.expand_positive(mid):
                index.append(k)
                classes.append(c)
        labels: set[str] = set()
        for mid in self.positive_labels:
            labels.update(hierarchy.expand_positive(mid))
        for mid in self.negative_labels:
            labels.update(hierarchy.expand_negative(mid))
        areas = np.zeros(len(self), np.int64)
        masked = np.flatnonzero(self.has_mask)
        if len(masked):
            areas[masked] = rle_areas([self.instances.rles[k] for k in masked])
        idx = np.asarray(index, np.int64)
        instances = self.instances[idx]  # one copy per (instance, ancestor class)
        instances.classes = classes
        return ExpandedGroundTruth(
            instances, areas[idx] > 0, self.is_group_of[idx], areas[idx], frozenset(labels) | frozenset(classes)
        )


@dataclass
class ExpandedGroundTruth(_InstancesWithMasks):
    """One image's ground truth after the hierarchy expansion, as the per-image evaluation uses it.

    Attributes:
      instances: one entry per (instance, ancestor class): the instance with that class.
      has_mask: [K] bool, False for a box without a mask or with an empty mask.
      is_group_of: [K] bool.
      areas: [K] int64 mask pixel counts (0 without a mask).
      evaluatable: the classes whose detections are evaluated in this image.
    """

    instances: Detections
    has_mask: np.ndarray
    is_group_of: np.ndarray
    areas: np.ndarray
    evaluatable: frozenset[str]

    def num_gt(self, group_of_weight: float) -> dict[str, float]:
        """Per class, what the image adds to the ground-truth count: 1 per non-group-of instance with a
        mask, ``group_of_weight`` per group-of instance with a mask; boxes without a mask add nothing."""
        out: dict[str, float] = {}
        for c, m, g in zip(self.classes, self.has_mask, self.is_group_of):
            if m:
                out[c] = out.get(c, 0.0) + (group_of_weight if g else 1.0)
        return out


def ground_truth_as_detections(gt: ImageGroundTruth, score: float = 1.0, *, drop_classes: Iterable[str] = ()):
    """The instances with masks of ``gt`` as :class:`~hierseg.detections.Detections` (label paths
    empty, boxes the masks' tight boxes): a perfect prediction, used by tests and benchmarks."""
    drop = set(drop_classes)
    out = gt.instances[gt.has_mask & np.array([c not in drop for c in gt.classes], bool)]
    out.scores = np.full(len(out), float(score))
    out.boxes = rle_boxes(out.rles).astype(np.float32)
    return out
