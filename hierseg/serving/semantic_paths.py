"""Fusing the Layer0 and Layer1 semantic label maps into per-pixel label paths, and drawing them.

A pixel whose Layer1 class descends from its Layer0 class (in the hierarchy) gets the path
``(Layer0 MID, Layer1 MID)``, e.g. (Person, Man); otherwise its Layer0 class alone, (Person); a
Layer0 background pixel is background, the empty path, whatever Layer1 says. Label maps hold class
ids of each layer's label map (0 = background).

The fused map is a ``path id`` per pixel into a per-image list of paths, path id 0 = background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from hierseg.hierarchy import Hierarchy
from hierseg.serving.visualize import MASK_ALPHA, PATH_SEPARATOR, caption_font, class_color, text_color


class PathFuser:
    """Holds the compatibility table ``[K0 + 1, K1 + 1]``: Layer1 class j descends from Layer0 class i."""

    def __init__(self, layer0_mids: Sequence[str], layer1_mids: Sequence[str], hierarchy: Hierarchy):
        self.layer0_mids = tuple(layer0_mids)
        self.layer1_mids = tuple(layer1_mids)
        compat = np.zeros((len(layer0_mids) + 1, len(layer1_mids) + 1), bool)
        for i, parent in enumerate(self.layer0_mids, start=1):
            below = hierarchy.descendants(parent) if parent in hierarchy else frozenset()
            for j, child in enumerate(self.layer1_mids, start=1):
                compat[i, j] = child in below
        self.compatible = compat

    def fuse(self, layer0: np.ndarray, layer1: np.ndarray) -> tuple[np.ndarray, list[tuple[str, ...]]]:
        """``(path_ids int32 [H, W], paths)``: ``paths[k]`` is the MID path of id k; ``paths[0] = ()``.

        Args:
          layer0, layer1: int ``[H, W]`` class ids of the two layers (same size).
        """
        if layer0.shape != layer1.shape:
            raise ValueError(f"label maps differ in size: {layer0.shape} vs {layer1.shape}")
        k1 = len(self.layer1_mids) + 1
        a = np.clip(layer0.astype(np.int64), 0, len(self.layer0_mids))
        b = np.clip(layer1.astype(np.int64), 0, len(self.layer1_mids))
        child = np.where(self.compatible[a, b], b, 0)
        code = a * k1 + child  # background is code 0
        codes, inverse = np.unique(code, return_inverse=True)
        if codes[0] != 0:  # keep id 0 for background even when no pixel is background
            codes = np.concatenate([[0], codes])
            inverse = inverse + 1
        paths = [self._path(int(c), k1) for c in codes]
        return inverse.reshape(layer0.shape).astype(np.int32), paths

    def levels(self, layer0: np.ndarray, layer1: np.ndarray, stop: int) -> np.ndarray:
        """int64 ``[2, H, W]`` path ids per level: Layer0's map, and the Layer1 class where it descends
        from the pixel's Layer0 class, else ``stop`` (0 for predictions, the ignore label for ground
        truth; see :class:`hierseg.evaluation.semantic_metric.HierarchicalConfusion`)."""
        a = layer0.astype(np.int64)
        b = layer1.astype(np.int64)
        ok = (a >= 0) & (a <= len(self.layer0_mids)) & (b >= 0) & (b <= len(self.layer1_mids))
        compat = ok & self.compatible[np.clip(a, 0, len(self.layer0_mids)), np.clip(b, 0, len(self.layer1_mids))]
        return np.stack([a, np.where(compat, b, stop)])

    def _path(self, code: int, k1: int) -> tuple[str, ...]:
        i, j = divmod(code, k1)
        if i == 0:
            return ()
        return (self.layer0_mids[i - 1],) if j == 0 else (self.layer0_mids[i - 1], self.layer1_mids[j - 1])


def resize_labels_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ``[h, w]`` labels to ``[height, width]`` (pixel-centre sampling)."""
    h, w = labels.shape
    ys = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return labels[ys[:, None], xs[None, :]]


def draw_paths(
    image: np.ndarray, path_ids: np.ndarray, paths: Sequence[tuple[str, ...]], name, legend_font_size: int = 14
) -> Image.Image:
    """The image with each path's pixels blended in its colour (that of its most specific class),
    and a legend of the paths ("Person › Man") below it; background is left as is."""
    out = image.astype(np.float32).copy()
    colors = [class_color(p[-1]) if p else (0, 0, 0) for p in paths]
    for k, color in enumerate(colors):
        if k == 0:
            continue
        sel = path_ids == k
        out[sel] = (1 - MASK_ALPHA) * out[sel] + MASK_ALPHA * np.asarray(color, np.float32)
    canvas_img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    font = caption_font(legend_font_size)
    line = legend_font_size + 6
    shown = [k for k in range(1, len(paths))]
    legend_h = line * max(1, len(shown)) + 6
    canvas = Image.new("RGB", (canvas_img.width, canvas_img.height + legend_h), (255, 255, 255))
    canvas.paste(canvas_img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = canvas_img.height + 3
    for k in shown:
        color = colors[k]
        draw.rectangle([4, y, 4 + line - 4, y + line - 4], fill=color)
        text = PATH_SEPARATOR.join(name(m) for m in paths[k])
        draw.text((line + 6, y), text, fill=text_color((255, 255, 255)), font=font)
        y += line
    return canvas
