"""Planning and composing synthetic scenes: which objects each image holds, where, and what stays visible.

An image holds 1-4 *masked* objects (a mask row and a box row), and sometimes a *box-only* object (a
box row, no mask, as for real boxes nobody segmented) or a *group-of* cluster (3-6 small objects of
one class under a single IsGroupOf=1 box, no mask). Objects measure sqrt(h * w) = 25-55% of the short
image side.
Later objects occlude earlier ones; placement is retried (then the object shrunk) until every object
keeps at least half of its pixels visible, so masks are the visible parts, as annotators draw them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hierseg.synth.classes import GROUP_OF_CLASSES, SynthClasses
from hierseg.synth.render import background, draw_sprite

MASK, BOX_ONLY, GROUP_OF = "mask", "box", "group"
MAX_OBJECTS = 4
OBJECT_COUNT_PROBS = (0.25, 0.35, 0.25, 0.15)  # 1, 2, 3, 4 masked objects per image
MIN_VISIBLE = 0.5  # fraction of an object's pixels that must stay visible


@dataclass
class SceneObject:
    """One annotated thing in an image.

    Attributes:
      mid: class MID.
      kind: :data:`MASK`, :data:`BOX_ONLY` or :data:`GROUP_OF`.
      visible: bool ``[H, W]`` pixels of the object left visible (for a group-of, of all its members);
        set by :func:`render_scene`.
    """

    mid: str
    kind: str
    visible: np.ndarray | None = field(default=None, repr=False)


def split_floor(num_images: int, num_classes: int) -> int:
    """Masks per class guaranteed in a split: 3, or one per 20 images in bigger splits, as far as half
    the split's object capacity allows (at least 1 when the capacity holds every class once)."""
    capacity = MAX_OBJECTS * num_images
    floor = min(max(3, num_images // 20), capacity // (2 * num_classes))
    if floor == 0 and capacity >= num_classes:
        floor = 1
    return floor


def plan_split(
    rng: np.random.Generator,
    classes: SynthClasses,
    num_images: int,
    *,
    group_of_fraction: float = 0.08,
    box_only_fraction: float = 0.12,
) -> list[list[SceneObject]]:
    """The objects of each image of one annotated split, in drawing order.

    Every class gets :func:`split_floor` masks; the other masks are drawn from the real class
    frequencies (``classes.probs``), which gives the long tail. About ``group_of_fraction`` of the
    images get a group-of cluster and ``box_only_fraction`` a box-only object, at least one each when
    the split has two or more images.
    """
    if num_images <= 0:
        return []
    k = len(classes.mids)
    counts = rng.choice(np.arange(1, MAX_OBJECTS + 1), size=num_images, p=OBJECT_COUNT_PROBS)
    floor = split_floor(num_images, k)
    while counts.sum() < floor * k:  # small splits: fill images up until the floor fits
        room = np.flatnonzero(counts < MAX_OBJECTS)
        counts[rng.choice(room)] += 1
    extra = int(counts.sum()) - floor * k
    mids = list(classes.mids) * floor + list(rng.choice(np.array(classes.mids), size=extra, p=classes.probs))
    order = rng.permutation(len(mids))
    plans: list[list[SceneObject]] = []
    start = 0
    for n in counts.tolist():
        plans.append([SceneObject(str(mids[i]), MASK) for i in order[start : start + n]])
        start += n

    group_mids = [classes.hierarchy.mid_of(n) for n in GROUP_OF_CLASSES if n in classes.hierarchy.names.values()]
    group_p = np.array([classes.probs[classes.index(m)] for m in group_mids])
    at_least = 1 if num_images >= 2 else 0
    n_group = max(int(round(group_of_fraction * num_images)), at_least)
    n_box = max(int(round(box_only_fraction * num_images)), at_least)
    for i in rng.choice(num_images, size=min(n_group, num_images), replace=False).tolist():
        mid = str(rng.choice(np.array(group_mids), p=group_p / group_p.sum()))
        plans[i].insert(0, SceneObject(mid, GROUP_OF))  # drawn first: clusters sit behind objects
    for i in rng.choice(num_images, size=min(n_box, num_images), replace=False).tolist():
        mid = str(rng.choice(np.array(classes.mids), p=classes.probs))
        plans[i].insert(int(rng.integers(0, len(plans[i]) + 1)), SceneObject(mid, BOX_ONLY))
    return plans


def _object_size(aspect: float, scale: float, height: int, width: int) -> tuple[int, int]:
    """Box (h, w) of an object of ``sqrt(h * w) == scale`` pixels and ``h / w == aspect``, shrunk to fit
    the image (sizing by area keeps long thin shapes, limousines and traffic lights, big enough)."""
    h, w = scale * aspect**0.5, scale / aspect**0.5
    fit = min(1.0, (height - 2) / h, (width - 2) / w)
    return max(6, int(h * fit)), max(6, int(w * fit))


def _place(
    rng, owner: np.ndarray, areas: dict[int, int], sprite_mask: np.ndarray, index: int, tries: int = 25
) -> tuple[int, int] | None:
    """A top-left corner where ``sprite_mask`` hides at most half of any earlier object, or None."""
    height, width = owner.shape
    h, w = sprite_mask.shape
    visible_now = np.bincount(owner[owner >= 0], minlength=index)
    for _ in range(tries):
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        below = owner[y : y + h, x : x + w][sprite_mask]
        hidden = np.bincount(below[below >= 0], minlength=index)
        if all(visible_now[i] - hidden[i] >= MIN_VISIBLE * areas[i] for i in areas):
            return y, x
    return None


def render_scene(
    rng: np.random.Generator, classes: SynthClasses, height: int, width: int, objects: list[SceneObject]
) -> np.ndarray:
    """Draws ``objects`` in order on a background; fills each object's ``visible`` mask.

    Returns:
      uint8 ``[height, width, 3]`` RGB image.
    """
    image = background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int32)  # topmost object index per pixel
    areas: dict[int, int] = {}
    short = min(height, width)
    hi = 0.55 if sum(o.kind != GROUP_OF for o in objects) <= 2 else 0.42
    for index, obj in enumerate(objects):
        look = classes.looks[obj.mid]
        if obj.kind == GROUP_OF:
            # A cluster region, then small members scattered inside it (they may overlap each other).
            ch, cw = int(short * rng.uniform(0.35, 0.5)), int(short * rng.uniform(0.45, 0.6))
            cy, cx = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
            for _ in range(int(rng.integers(3, 7))):
                h, w = _object_size(look.aspect, short * rng.uniform(0.11, 0.17), ch, cw)
                sprite = draw_sprite(look, h, w, float(rng.uniform(0.85, 1.1)))
                y, x = cy + int(rng.integers(0, ch - h + 1)), cx + int(rng.integers(0, cw - w + 1))
                _paste(image, owner, sprite, y, x, index)
            areas[index] = int((owner == index).sum())
            continue
        scale = short * rng.uniform(0.25, hi)
        placed = None
        for _ in range(6):  # shrink until it fits without hiding too much of the others
            h, w = _object_size(look.aspect, scale, height, width)
            sprite = draw_sprite(look, h, w, float(rng.uniform(0.85, 1.1)))
            placed = _place(rng, owner, areas, sprite.mask, index)
            if placed is not None:
                break
            scale *= 0.85
        if placed is None:  # still crowded: search longer at the smallest size, else anywhere
            placed = _place(rng, owner, areas, sprite.mask, index, tries=200) or (
                int(rng.integers(0, height - h + 1)),
                int(rng.integers(0, width - w + 1)),
            )
        _paste(image, owner, sprite, placed[0], placed[1], index)
        areas[index] = int(sprite.mask.sum())
    for index, obj in enumerate(objects):
        obj.visible = owner == index
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _paste(image: np.ndarray, owner: np.ndarray, sprite, y: int, x: int, index: int) -> None:
    h, w = sprite.mask.shape
    region = image[y : y + h, x : x + w]
    region[sprite.mask] = sprite.rgb[sprite.mask]
    owner[y : y + h, x : x + w][sprite.mask] = index
