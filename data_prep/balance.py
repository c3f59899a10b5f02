"""Class balance of a training split: which images are written, how many times, with which weight.

Inputs are the unique (image, class) pairs of a layer split: ``pair_img`` int64 [P] indexes the split's
sorted image list, ``pair_cls`` int64 [P] holds class ids 1..K. Outputs are per image: ``copies``
int32 [I] (0 = left out) and ``weights`` float32 [I] (``image/weight``).

* ``cap`` (the seed project's scheme): classes are visited from the rarest to the most frequent; each
  tops up its image count to ``cap`` with its not-yet-kept images in a random order fixed by the seed.
  An image is therefore kept when some class under its cap needs it, classes with at most ``cap``
  images keep all of them, and frequent classes are counted with the images rarer classes already
  brought in (they can end above ``cap`` through co-occurrence, never through their own picks).
* ``repeat_factor`` (LVIS, Gupta et al. 2019): ``f_c`` = fraction of images containing class c,
  ``r_c = max(1, sqrt(t / f_c))``, image factor ``r_i = max_c r_c`` over its classes. Realised either
  as copies (stochastic rounding: ``floor(r)`` plus one with probability ``r - floor(r)``, seeded) with
  weight 1, or as one copy with weight ``r_i`` for the input pipeline to use.
* ``none``: every image once, weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.config import BalanceConfig


@dataclass
class Balanced:
    """Per image of a split: copies written (int32 [I]), image/weight (float32 [I]), repeat factor
    (float32 [I]; 1 outside repeat_factor mode)."""

    copies: np.ndarray
    weights: np.ndarray
    factors: np.ndarray


def cap_images(pair_img: np.ndarray, pair_cls: np.ndarray, num_images: int, cap: int, seed: int) -> np.ndarray:
    """Images kept by the per-class cap (rarest class first), bool [num_images]; see the module docstring."""
    kept = np.zeros(num_images, bool)
    if len(pair_img) == 0:
        return kept
    rng = np.random.default_rng([seed, 1])
    priority = rng.permutation(num_images)  # random visiting order of images, the same for every class
    order = np.lexsort((priority[pair_img], pair_cls))
    cls_sorted = pair_cls[order]
    img_sorted = pair_img[order]
    classes, starts, counts = np.unique(cls_sorted, return_index=True, return_counts=True)
    for k in np.lexsort((classes, counts)):  # rarest first; ties by class id
        imgs = img_sorted[starts[k] : starts[k] + counts[k]]
        need = cap - int(kept[imgs].sum())
        if need > 0:
            kept[imgs[~kept[imgs]][:need]] = True
    return kept


def class_repeat_factors(pair_cls: np.ndarray, num_images: int, threshold: float, num_classes: int) -> np.ndarray:
    """r_c = max(1, sqrt(t / f_c)) per class id (index 0 unused), float64 [num_classes + 1]; classes
    without images get 1."""
    n_c = np.bincount(pair_cls, minlength=num_classes + 1).astype(np.float64)
    f_c = n_c / max(num_images, 1)
    with np.errstate(divide="ignore"):
        r = np.where(n_c > 0, np.sqrt(threshold / np.where(f_c > 0, f_c, 1.0)), 1.0)
    return np.maximum(1.0, r)


def image_repeat_factors(
    pair_img: np.ndarray, pair_cls: np.ndarray, num_images: int, threshold: float, num_classes: int
) -> np.ndarray:
    """r_i = max over the image's classes of r_c, float64 [num_images] (1 for images without classes)."""
    r_c = class_repeat_factors(pair_cls, num_images, threshold, num_classes)
    r_i = np.ones(num_images, np.float64)
    np.maximum.at(r_i, pair_img, r_c[pair_cls])
    return r_i


def stochastic_round(r: np.ndarray, seed: int) -> np.ndarray:
    """floor(r) + Bernoulli(r - floor(r)), int32, deterministic for ``seed``; E[result] = r."""
    u = np.random.default_rng([seed, 2]).random(len(r))
    base = np.floor(r)
    return (base + (u < (r - base))).astype(np.int32)


def balance(
    pair_img: np.ndarray, pair_cls: np.ndarray, num_images: int, num_classes: int, config: BalanceConfig, seed: int
) -> Balanced:
    """Copies and weights per image for ``config.mode``."""
    ones = np.ones(num_images, np.float32)
    if config.mode == "none":
        return Balanced(np.ones(num_images, np.int32), ones, ones.copy())
    if config.mode == "cap":
        if config.cap < 1:
            raise ValueError(f"balance.cap must be >= 1, got {config.cap}")
        kept = cap_images(pair_img, pair_cls, num_images, config.cap, seed)
        return Balanced(kept.astype(np.int32), ones, ones.copy())
    if config.mode == "repeat_factor":
        if not config.repeat_threshold > 0:
            raise ValueError(f"balance.repeat_threshold must be > 0, got {config.repeat_threshold}")
        r = image_repeat_factors(pair_img, pair_cls, num_images, config.repeat_threshold, num_classes)
        if config.realize == "weights":
            return Balanced(np.ones(num_images, np.int32), r.astype(np.float32), r.astype(np.float32))
        return Balanced(stochastic_round(r, seed), ones, r.astype(np.float32))
    raise ValueError(f"unknown balance.mode {config.mode!r}; expected cap, repeat_factor or none")
