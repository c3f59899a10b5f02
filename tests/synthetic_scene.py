"""The tests' one synthetic scene: flat-coloured objects on a background, with their exact 0/1 masks.

Two layouts of the same idea:

* ``"columns"``: exactly ``num_objects`` L-shaped objects, one per vertical strip of the image, on a
  flat gray background. The L (a box without its top-right quarter) is not a box, so mask and box
  metrics differ, and it is not mirror-symmetric, so a left-right flip shows. Object k is coloured
  ``COLORS[k % 8]``; any number of objects fits.
* ``"scattered"``: up to ``num_objects`` non-overlapping shapes at random places on a noisy background,
  the shape and colour given by the class (1 rectangle, 2 ellipse, 3 diamond): a detector can learn
  them (the training tests overfit such images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLORS = np.array(
    [
        [220, 30, 30],
        [30, 200, 40],
        [40, 60, 230],
        [240, 220, 20],
        [200, 30, 200],
        [20, 210, 210],
        [250, 140, 0],
        [120, 60, 20],
    ],
    np.uint8,
)
CLASS_COLORS = {1: (220, 40, 40), 2: (40, 200, 60), 3: (50, 70, 230)}  # "scattered": colour of each class


@dataclass
class Scene:
    """image uint8 [H, W, 3]; masks uint8 [N, H, W] in {0, 1}; classes [N] (1..3 for "scattered",
    ``1 + k % 3`` for "columns")."""

    image: np.ndarray
    masks: np.ndarray
    classes: list[int]


def class_shape_mask(cls: int, h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    """uint8 [h, w]: class 1 the box [y0, y1) x [x0, x1), 2 the inscribed ellipse, 3 the inscribed diamond."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    if cls == 1:
        m = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    elif cls == 2:
        m = ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1.0
    else:
        m = np.abs(yy + 0.5 - cy) / ry + np.abs(xx + 0.5 - cx) / rx <= 1.0
    return m.astype(np.uint8)


def _columns(rng: np.random.Generator, h: int, w: int, n: int) -> Scene:
    image = np.full([h, w, 3], 90, np.uint8)
    masks = np.zeros([n, h, w], np.uint8)
    cols = np.linspace(0, w, n + 1).astype(int)
    for k in range(n):
        x0 = cols[k] + int(rng.integers(0, 3))
        x1 = cols[k + 1] - int(rng.integers(1, 3))
        y0 = int(rng.integers(0, h // 4))
        y1 = int(rng.integers(h // 2, h))
        masks[k, y0:y1, x0:x1] = 1
        masks[k, y0 : (y0 + y1) // 2, (x0 + x1) // 2 : x1] = 0  # the L's missing top-right quarter
        image[masks[k] > 0] = COLORS[k % len(COLORS)]
    return Scene(image, masks, [1 + k % 3 for k in range(n)])


def _scattered(rng: np.random.Generator, h: int, w: int, max_objects: int) -> Scene:
    image = rng.integers(90, 160, size=[h, w, 3]).astype(np.uint8)
    masks, classes, taken = [], [], np.zeros([h, w], bool)
    for _ in range(20):  # placement attempts
        if len(classes) == max_objects:
            break
        cls = int(rng.integers(1, 4))
        bh, bw = int(rng.integers(h // 4, h // 2)), int(rng.integers(w // 4, w // 2))
        y0, x0 = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        if taken[max(0, y0 - 2) : y0 + bh + 2, max(0, x0 - 2) : x0 + bw + 2].any():
            continue
        m = class_shape_mask(cls, h, w, y0, x0, y0 + bh, x0 + bw)
        taken |= m.astype(bool)
        image[m.astype(bool)] = CLASS_COLORS[cls]
        masks.append(m)
        classes.append(cls)
    return Scene(image, np.stack(masks) if masks else np.zeros([0, h, w], np.uint8), classes)


def synthetic_scene(rng: np.random.Generator, height: int, width: int, num_objects: int, layout: str) -> Scene:
    """A scene of ``layout`` "columns" (exactly ``num_objects``) or "scattered" (at most; see the module)."""
    if layout == "columns":
        return _columns(rng, height, width, num_objects)
    if layout == "scattered":
        return _scattered(rng, height, width, num_objects)
    raise ValueError(f"layout must be 'columns' or 'scattered', got {layout!r}")
