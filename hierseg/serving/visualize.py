"""Drawing predictions: each instance's mask in colour, its outline, and its label path as a caption.

A caption reads down the label path with the score of the instance: ``"Person › Man 0.91"``. The
colour of an instance is a function of its most specific class (:func:`class_color`), so the same
class has the same colour in every image of a run. Masks are alpha-blended onto the image
(``out = (1 - alpha) * image + alpha * colour`` inside the mask) and outlined in the full colour.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hierseg import atomic_write
from hierseg.detections import Detections

PATH_SEPARATOR = " › "
MASK_ALPHA = 0.45


def class_color(mid: str) -> tuple[int, int, int]:
    """A bright RGB colour (0..255) fixed for a MID: a hue from its hash, full saturation."""
    h = int.from_bytes(hashlib.sha1(mid.encode("utf-8")).digest()[:4], "big") / 2**32
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light caption backgrounds, white on dark ones (by Rec. 601 luma)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b >= 128 else (255, 255, 255)


@lru_cache(maxsize=8)
def caption_font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, has '›') at ``size`` px; PIL's default font otherwise."""
    try:
        import matplotlib

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def caption(label_path: Sequence[str], score: float, name: Callable[[str], str]) -> str:
    """``("/m/01g317", "/m/04yx4"), 0.913`` -> ``"Person › Man 0.91"``."""
    return f"{PATH_SEPARATOR.join(name(m) for m in label_path)} {score:.2f}"


def draw_detections(
    image: np.ndarray,
    detections: Detections,
    name: Callable[[str], str] | None = None,
    *,
    alpha: float = MASK_ALPHA,
    min_score: float = 0.0,
) -> Image.Image:
    """Draws every instance of ``detections`` onto ``image``.

    Args:
      image: uint8 ``[H, W, 3]`` RGB at the detections' resolution (``detections.height, .width``).
      detections: one image's instances; an instance without a label path is captioned by its class.
      name: MID -> display name (e.g. ``Hierarchy.name``); the MID itself by default.
      alpha: mask opacity in [0, 1].
      min_score: instances scoring below are not drawn.

    Returns:
      An RGB PIL image of the same size. Instances are drawn lowest score first, so the best one
      is on top and its caption is readable.
    """
    image = np.asarray(image, np.uint8)
    if image.shape[:2] != (detections.height, detections.width):
        raise ValueError(
            f"{detections.image_id}: image is {image.shape[:2]}, detections are {(detections.height, detections.width)}"
        )
    name = name or (lambda m: m)
    canvas = image.astype(np.float32)
    order = [i for i in np.argsort(detections.scores, kind="stable") if detections.scores[i] >= min_score]
    masks = detections.select(order).dense_masks() if order else np.zeros([0, *image.shape[:2]], bool)
    colors = [np.array(class_color(detections.classes[i]), np.float32) for i in order]
    for mask, color in zip(masks, colors):
        canvas[mask] = (1.0 - alpha) * canvas[mask] + alpha * color
        # Outline: mask pixels with a 4-neighbour outside the mask.
        inner = mask.copy()
        inner[1:, :] &= mask[:-1, :]
        inner[:-1, :] &= mask[1:, :]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        canvas[mask & ~inner] = color
    out = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    font = caption_font(max(10, min(28, int(round(min(image.shape[:2]) / 28)))))
    for i, color in zip(order, colors):
        path = detections.label_paths[i] or (detections.classes[i],)
        text = caption(path, float(detections.scores[i]), name)
        ymin, xmin = detections.boxes[i][0] * detections.height, detections.boxes[i][1] * detections.width
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 4, bottom - top + 4
        x = int(np.clip(xmin, 0, max(0, detections.width - tw)))
        y = int(np.clip(ymin - th, 0, max(0, detections.height - th)))
        draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=tuple(int(c) for c in color))
        fill = tuple(int(c) for c in color)
        draw.text((x + 2 - left, y + 2 - top), text, fill=text_color(fill), font=font)
    return out


def save_png(img: Image.Image, path: str) -> None:
    """Writes a PNG atomically (temporary file, then rename)."""
    with atomic_write.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def make_grid(
    pngs: Sequence[str], out_path: str, *, cell: int = 384, columns: int | None = None, gap: int = 4
) -> Image.Image:
    """Tiles images into one PNG: each scaled (aspect kept) to fit a ``cell`` x ``cell`` square.

    Args:
      pngs: image files, laid out row by row in this order.
      columns: per row; default ``ceil(sqrt(len(pngs)))``.

    Returns:
      The grid image (also written to ``out_path``).
    """
    if not pngs:
        raise ValueError("make_grid: no images")
    columns = columns or math.ceil(math.sqrt(len(pngs)))
    rows = math.ceil(len(pngs) / columns)
    grid = Image.new("RGB", (columns * cell + (columns + 1) * gap, rows * cell + (rows + 1) * gap), (255, 255, 255))
    for k, path in enumerate(pngs):
        with Image.open(path) as im:
            tile = im.convert("RGB")
        scale = min(cell / tile.width, cell / tile.height)  # fit the cell: small images are enlarged too
        tile = tile.resize(
            (max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.Resampling.LANCZOS
        )
        r, c = divmod(k, columns)
        x = gap + c * (cell + gap) + (cell - tile.width) // 2
        y = gap + r * (cell + gap) + (cell - tile.height) // 2
        grid.paste(tile, (x, y))
    save_png(grid, out_path)
    return grid
