"""The synthetic dataset's classes: a subset of the real 300-class hierarchy, their looks and frequencies.

Every hierarchy case the pipeline must handle is present, with the real MIDs and names:

* depth-0 leaves: Wheel, Apple, Banana, Traffic light, Pizza;
* parents with children: Person -> Man, Woman, Boy, Girl; Car -> Van, Limousine;
* a depth-2 chain: Carnivore -> Bear -> Brown bear, Polar bear;
* a class with two parents: Teddy bear under Toy (depth 1) and under Bear (depth 2).

Parent classes carry masks of their own (an instance labeled just Person, Car, Carnivore, Bear or Toy),
as in the real data. Appearance is learnable at ~128 px: a *family* (one per depth-0 class) fixes the
shape, each child has its own saturated colour or texture within it, and parent-only instances are a
neutral grey version of the family shape.

Class frequencies follow the real per-class training mask counts (``train-mask-counts-per-class.csv``),
renormalized over the chosen classes: a long tail from Girl (173,787 real masks) down to Bear (246).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from hierseg.hierarchy import Hierarchy

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    """How one class is drawn.

    Attributes:
      family: shape family (``person``, ``car``, ``animal``, ``star``, or a leaf's own shape).
      colour: main RGB colour.
      texture: ``solid``, ``hstripes``, ``vstripes``, ``dots`` or ``checker``.
      accent: RGB of the texture's second colour and of accent parts (lamps, stems, spokes).
      aspect: height / width of the object's box.
      variant: a family-specific shape detail (``pointed`` or ``round`` ears for animals).
    """

    family: str
    colour: RGB
    texture: str = "solid"
    accent: RGB = (255, 255, 255)
    aspect: float = 1.0
    variant: str = ""


GREY_PARENT: RGB = (128, 128, 128)

# name -> look. Order = the order classes are listed in the summary.
LOOKS: dict[str, Look] = {
    # Depth-0 leaves: each its own shape.
    "Wheel": Look("wheel", (45, 45, 50), accent=(205, 205, 215), aspect=1.0),
    "Apple": Look("apple", (205, 20, 35), accent=(40, 160, 40), aspect=1.05),
    "Banana": Look("banana", (250, 225, 40), aspect=0.6),
    "Traffic light": Look("traffic_light", (35, 35, 35), accent=(0, 0, 0), aspect=2.4),
    "Pizza": Look("pizza", (240, 175, 60), "dots", accent=(190, 30, 20), aspect=0.9),
    # Person family: a tall capsule with a head.
    "Person": Look("person", GREY_PARENT, aspect=2.2),
    "Man": Look("person", (30, 60, 225), aspect=2.2),
    "Woman": Look("person", (225, 30, 40), aspect=2.2),
    "Boy": Look("person", (30, 170, 55), "hstripes", accent=(240, 240, 240), aspect=2.2),
    "Girl": Look("person", (240, 200, 20), "vstripes", accent=(200, 40, 200), aspect=2.2),
    # Car family: a wide rounded body with a cabin and two wheels; children differ in colour and length.
    "Car": Look("car", GREY_PARENT, aspect=0.5),
    "Van": Look("car", (250, 200, 0), aspect=0.72),
    "Limousine": Look("car", (125, 30, 165), aspect=0.36),
    # Carnivore family: a blob with ears.
    "Carnivore": Look("animal", (165, 165, 165), aspect=0.85, variant="pointed"),
    "Bear": Look("animal", (85, 85, 85), aspect=0.85, variant="round"),
    "Brown bear": Look("animal", (140, 75, 25), aspect=0.85, variant="round"),
    "Polar bear": Look("animal", (235, 242, 252), aspect=0.85, variant="round"),
    "Teddy bear": Look("animal", (250, 120, 185), "dots", accent=(255, 255, 255), aspect=0.85, variant="round"),
    # Toy family: a star.
    "Toy": Look("star", GREY_PARENT, aspect=1.0),
}

# A group-of box is a cluster of small objects of one class; these classes make sensible clusters.
GROUP_OF_CLASSES: tuple[str, ...] = ("Apple", "Banana", "Person", "Car", "Wheel", "Toy")


@dataclass(frozen=True)
class SynthClasses:
    """The chosen classes with their hierarchy, looks and sampling probabilities.

    Attributes:
      hierarchy: ``Hierarchy.builtin().subset(mids)``; its to_tree() is the dataset's hierarchy JSON.
      mids: chosen MIDs in hierarchy (JSON pre-order) order.
      looks: MID -> :class:`Look`.
      real_counts: MID -> real training mask count.
      probs: float64 ``[K]`` sampling probability per class (aligned with ``mids``), proportional to
        ``real_counts``.
    """

    hierarchy: Hierarchy
    mids: tuple[str, ...]
    looks: dict[str, Look]
    real_counts: dict[str, int]
    probs: np.ndarray

    def name(self, mid: str) -> str:
        return self.hierarchy.name(mid)

    def index(self, mid: str) -> int:
        return self.mids.index(mid)

    def related(self, mid: str) -> frozenset[str]:
        """The class itself, its ancestors and its descendants: never a verified negative next to it."""
        return self.hierarchy.ancestors(mid) | self.hierarchy.descendants(mid) | {mid}


def read_real_counts(path: str | None = None) -> dict[str, int]:
    """The real per-class training mask counts, ``{MID: count}`` (CSV ``class,count``)."""
    if path is None:
        from hierseg.resources import TRAIN_MASK_COUNTS_CSV

        path = str(TRAIN_MASK_COUNTS_CSV)
    out: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["class", "count"]:
            raise ValueError(f"{path}:1: expected header 'class,count', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            if len(row) != 2 or not row[1].isdigit():
                raise ValueError(f"{path}:{lineno}: expected 'MID,count', got {row!r}")
            out[row[0]] = int(row[1])
    return out


def synth_classes(full: Hierarchy | None = None, counts: dict[str, int] | None = None) -> SynthClasses:
    """Picks :data:`LOOKS`' classes from the real hierarchy (by name) and attaches their frequencies.

    Raises:
      KeyError: if a class name is missing from the hierarchy (a renamed resource file).
    """
    full = full or Hierarchy.builtin()
    counts = counts if counts is not None else read_real_counts()
    chosen = {full.mid_of(name): look for name, look in LOOKS.items()}
    sub = full.subset(chosen)
    mids = sub.classes
    real = {m: int(counts.get(m, 0)) for m in mids}
    missing = [full.name(m) for m, c in real.items() if c <= 0]
    if missing:
        raise KeyError(f"no real mask count for {missing}")
    weights = np.array([real[m] for m in mids], dtype=np.float64)
    return SynthClasses(
        hierarchy=sub, mids=mids, looks={m: chosen[m] for m in mids}, real_counts=real, probs=weights / weights.sum()
    )
