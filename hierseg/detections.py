"""The host-side detections type: what prediction, ensembling, submissions and the metric exchange.

One :class:`Detections` holds every instance found in one image, in numpy, at the image's original
resolution. Masks are kept as COCO run-length encodings (``{"size": [H, W], "counts": bytes}``,
operations in :mod:`hierseg.rle`), so a run over 100k images never holds dense masks for more than
the image at hand. Like detectron2's ``Instances`` it is indexed by an integer, a slice, an integer
array or a boolean mask (``dets[dets.scores >= 0.5]``), concatenated with :meth:`Detections.cat` and
created empty with :meth:`Detections.empty`; per-instance fields stay parallel by construction.

Its file format (JSON lines) is :mod:`hierseg.prediction_file`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from hierseg.rle import decode_rles, encode_rles, tight_boxes

__all__ = ["Detections", "encode_rles", "read_jsonl", "tight_boxes", "write_jsonl"]


@dataclass
class Detections:
    """Instances found in one image.

    Attributes:
      image_id: the Open Images ImageID (16 hex characters).
      height, width: the original image size in pixels.
      classes: [N] MIDs (str), the most specific class of each instance.
      scores: [N] float64 in [0, 1] (float64 as the challenge metric ranks them: two scores a float32
        would round to one value stay apart).
      boxes: [N, 4] normalized (ymin, xmin, ymax, xmax) in [0, 1]; float32 (model outputs), or float64
        when given so (parsed annotations keep their precision).
      rles: N COCO RLEs with size [height, width] and bytes counts.
      label_paths: N label paths from a depth-0 class down to ``classes[i]``, e.g. ("/m/01g317",
        "/m/04yx4") for (Person, Man); empty tuples until ensembling fills them.
    """

    image_id: str
    height: int
    width: int
    classes: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros([0], np.float64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros([0, 4], np.float32))
    rles: list[dict] = field(default_factory=list)
    label_paths: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.classes = list(self.classes)
        self.rles = list(self.rles)
        self.scores = np.asarray(self.scores, np.float64).reshape([-1])
        boxes = np.asarray(self.boxes)
        self.boxes = (boxes if boxes.dtype in (np.float32, np.float64) else boxes.astype(np.float32)).reshape([-1, 4])
        n = len(self.classes)
        if not (len(self.scores) == len(self.boxes) == len(self.rles) == n):
            raise ValueError(
                f"{self.image_id}: {n} classes, {len(self.scores)} scores, {len(self.boxes)} boxes, "
                f"{len(self.rles)} masks: counts differ"
            )
        if not self.label_paths:
            self.label_paths = [()] * n
        elif len(self.label_paths) != n:
            raise ValueError(f"{self.image_id}: {len(self.label_paths)} label paths for {n} instances")
        self.label_paths = [tuple(p) for p in self.label_paths]

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def empty(cls, image_id: str, height: int, width: int) -> Detections:
        """No instances in an image of ``height`` x ``width`` pixels."""
        return cls(image_id, int(height), int(width))

    @classmethod
    def from_dense(
        cls,
        image_id: str,
        classes: Sequence[str],
        scores: np.ndarray,
        masks: np.ndarray,
        boxes: np.ndarray | None = None,
        label_paths: Sequence[tuple[str, ...]] | None = None,
    ) -> Detections:
        """From dense masks ``[N, H, W]`` (bool or 0/1); boxes default to the masks' tight boxes."""
        masks = np.asarray(masks)
        n, h, w = masks.shape if masks.ndim == 3 else (0, *masks.shape[-2:])
        rles = encode_rles(masks) if n else []
        if boxes is None:
            boxes = tight_boxes(masks) if n else np.zeros([0, 4], np.float32)
        return cls(image_id, int(h), int(w), list(classes), scores, boxes, rles, list(label_paths or []))

    def dense_masks(self) -> np.ndarray:
        """[N, H, W] bool."""
        return decode_rles(self.rles, self.height, self.width)

    # ------------------------------------------------------------------------------ indexing
    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int] | Sequence[bool]) -> Detections:
        """The instances picked by an int, a slice, an integer index array or a boolean mask of length N."""
        if isinstance(index, (int, np.integer)):
            k = int(index)
            if not -len(self) <= k < len(self):
                raise IndexError(f"{self.image_id}: instance {k} of {len(self)}")
            idx = np.array([k % len(self)], np.int64)
        elif isinstance(index, slice):
            idx = np.arange(len(self))[index]
        else:
            arr = np.asarray(index)
            if arr.dtype == bool:
                if arr.shape != (len(self),):
                    raise IndexError(f"{self.image_id}: boolean index of shape {arr.shape} for {len(self)} instances")
                idx = np.flatnonzero(arr)
            elif arr.size == 0:
                idx = np.zeros([0], np.int64)
            elif np.issubdtype(arr.dtype, np.integer):
                idx = arr.reshape([-1]).astype(np.int64)
            else:
                raise IndexError(f"{self.image_id}: cannot index instances with {arr.dtype} values")
        return Detections(
            self.image_id,
            self.height,
            self.width,
            [self.classes[i] for i in idx],
            self.scores[idx],
            self.boxes[idx],
            [self.rles[i] for i in idx],
            [self.label_paths[i] for i in idx],
        )

    def select(self, index: np.ndarray | Sequence[int]) -> Detections:
        """Same as ``self[index]``."""
        return self[np.asarray(index, np.int64).reshape([-1])]

    @staticmethod
    def cat(parts: Sequence[Detections]) -> Detections:
        """The instances of several Detections of one image, in order.

        Raises:
          ValueError: for an empty list, or parts of different images or sizes.
        """
        if not parts:
            raise ValueError("Detections.cat needs at least one Detections")
        first = parts[0]
        for p in parts[1:]:
            if (p.image_id, p.height, p.width) != (first.image_id, first.height, first.width):
                raise ValueError(
                    f"cannot concatenate detections of {p.image_id} ({p.height}x{p.width}) with "
                    f"{first.image_id} ({first.height}x{first.width}) (height x width)"
                )
        return Detections(
            first.image_id,
            first.height,
            first.width,
            [c for p in parts for c in p.classes],
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            [r for p in parts for r in p.rles],
            [lp for p in parts for lp in p.label_paths],
        )

    # ------------------------------------------------------------------- JSON lines (one line)
    def to_json(self) -> str:
        """One JSON line (:func:`hierseg.prediction_file.detections_to_json`)."""
        from hierseg.prediction_file import detections_to_json

        return detections_to_json(self)

    @classmethod
    def from_json(cls, line: str) -> Detections:
        """From one JSON line (:func:`hierseg.prediction_file.detections_from_json`)."""
        from hierseg.prediction_file import detections_from_json

        return detections_from_json(line)


def write_jsonl(path: str, detections: Iterable[Detections]) -> int:
    """:func:`hierseg.prediction_file.write_jsonl` (kept here for its callers)."""
    from hierseg.prediction_file import write_jsonl as write

    return write(path, detections)


def read_jsonl(path: str) -> Iterator[Detections]:
    """:func:`hierseg.prediction_file.read_jsonl` (kept here for its callers)."""
    from hierseg.prediction_file import read_jsonl as read

    return read(path)
