"""The host-side detections type: what prediction, ensembling, submissions and the metric exchange.

One :class:`Detections` holds every instance found in one image, in numpy, at the image's original
resolution. Masks are kept as COCO run-length encodings (``{"size": [H, W], "counts": bytes}``), so a
run over 100k images never holds dense masks for more than the image at hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as coco_mask


@dataclass
class Detections:
    """Instances found in one image.

    Attributes:
      image_id: the Open Images ImageID (16 hex characters).
      height, width: the original image size in pixels.
      classes: [N] MIDs (str), the most specific class of each instance.
      scores: [N] float32 in [0, 1].
      boxes: [N, 4] float32 normalized (ymin, xmin, ymax, xmax) in [0, 1].
      rles: N COCO RLEs with size [height, width] and bytes counts.
      label_paths: N label paths from a depth-0 class down to ``classes[i]``, e.g. ("/m/01g317",
        "/m/04yx4") for (Person, Man); empty tuples until ensembling fills them.
    """

    image_id: str
    height: int
    width: int
    classes: list[str] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros([0], np.float32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros([0, 4], np.float32))
    rles: list[dict] = field(default_factory=list)
    label_paths: list[tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, np.float32).reshape([-1])
        self.boxes = np.asarray(self.boxes, np.float32).reshape([-1, 4])
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

    def __len__(self) -> int:
        return len(self.classes)

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
        if not self.rles:
            return np.zeros([0, self.height, self.width], bool)
        return coco_mask.decode(self.rles).transpose(2, 0, 1).astype(bool)

    def select(self, index: np.ndarray | Sequence[int]) -> Detections:
        idx = np.asarray(index, dtype=np.int64).reshape([-1])
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

    # ---------------------------------------------------------------------------- JSON lines I/O
    def to_json(self) -> str:
        return json.dumps(
            {
                "image_id": self.image_id,
                "height": self.height,
                "width": self.width,
                "instances": [
                    {
                        "class": c,
                        "score": round(float(s), 6),
                        "box": [round(float(v), 6) for v in b],
                        "mask": r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"],
                        "label_path": list(p),
                    }
                    for c, s, b, r, p in zip(self.classes, self.scores, self.boxes, self.rles, self.label_paths)
                ],
            }
        )

    @classmethod
    def from_json(cls, line: str) -> Detections:
        d = json.loads(line)
        h, w = int(d["height"]), int(d["width"])
        inst = d["instances"]
        return cls(
            d["image_id"],
            h,
            w,
            [i["class"] for i in inst],
            np.array([i["score"] for i in inst], np.float32),
            np.array([i["box"] for i in inst], np.float32).reshape([-1, 4]),
            [{"size": [h, w], "counts": i["mask"].encode("ascii")} for i in inst],
            [tuple(i.get("label_path", ())) for i in inst],
        )


def write_jsonl(path: str, detections: Iterable[Detections]) -> None:
    """Writes detections as JSON lines, atomically (a temporary file renamed into place)."""
    from hierseg import atomic_write

    with atomic_write.atomic_open(path) as f:
        for d in detections:
            f.write(d.to_json() + "\n")


def read_jsonl(path: str) -> Iterator[Detections]:
    """Streams detections from a JSON-lines file; a bad line raises naming the file and line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield Detections.from_json(line)
                except (KeyError, ValueError, TypeError) as e:
                    raise ValueError(f"{path}:{lineno}: bad detections line: {e}") from e


def encode_rles(masks: np.ndarray) -> list[dict]:
    """[N, H, W] masks -> N COCO RLEs (bytes counts)."""
    m = np.asfortranarray(np.asarray(masks, dtype=np.uint8).transpose(1, 2, 0))
    return coco_mask.encode(m)


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] masks -> [N, 4] normalized (ymin, xmin, ymax, xmax); zeros for an empty mask."""
    masks = np.asarray(masks).astype(bool)
    n, h, w = masks.shape
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    out = np.zeros([n, 4], np.float32)
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(ys):
            out[i] = [ys[0] / h, xs[0] / w, (ys[-1] + 1) / h, (xs[-1] + 1) / w]
    return out
