"""Annotated pictures for people: ground truth and predictions drawn the same way, side by side, with
captions that stay inside the picture and never overlap, one caption font size, and a colour legend.

Every picture is rendered at a *display size* (the image scaled so its long side is ``long_side``
pixels; masks scaled with it, nearest neighbour), so a caption is :data:`FONT_PX` pixels high in every
picture and every grid built from them. An instance is drawn by style:

* ``"mask"``: its mask blended in the class colour (:func:`hierseg.serving.visualize.class_color`),
  outlined, and its box drawn as a thin solid line;
* ``"group_of"``: the mask hatched with diagonal stripes (not filled) and a dashed box: one region
  standing for several objects;
* ``"box_only"``: a dashed box, no fill: an object annotated without a mask.

Captions are placed by :func:`place_captions` (above the object's box, else inside it, else the nearest
free row); a caption that finds no free place inside the picture is left out, and the legend below the
picture still names every class shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from hierseg.serving.visualize import MASK_ALPHA, caption_font, class_color, text_color

FONT_PX = 13  # caption and legend text height, in display pixels
STYLES = ("mask", "group_of", "box_only")
PAD = 2  # caption box padding


@dataclass
class Instance:
    """One object to draw on an image of ``[H, W]``.

    Attributes:
      mid: its class (colours the instance).
      box: ``(ymin, xmin, ymax, xmax)`` normalized to [0, 1].
      text: its caption, e.g. ``"Person › Man 0.91"``.
      mask: bool ``[H, W]`` at the image's resolution, or None (box only).
      style: one of :data:`STYLES`.
    """

    mid: str
    box: tuple[float, float, float, float]
    text: str
    mask: np.ndarray | None = None
    style: str = "mask"


def display_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """``(H, W)`` of the picture with its long side ``long_side`` pixels (aspect kept)."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = np.minimum(((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.int64), mask.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.int64), mask.shape[1] - 1)
    return mask[ys][:, xs]


def place_captions(
    sizes: Sequence[tuple[int, int]], anchors: Sequence[tuple[int, int, int, int]], width: int, height: int
) -> list[tuple[int, int] | None]:
    """Top-left corners for caption boxes, in order (earlier captions get the better places).

    Args:
      sizes: ``(w, h)`` of each caption box, pixels.
      anchors: ``(x0, y0, x1, y1)`` pixel box of each caption's object.
      width, height: the picture.
    Returns:
      per caption, ``(x, y)`` with the box ``[x, x + w) x [y, y + h)`` inside the picture and disjoint
      from every other placed box; None where no such place exists.
    """
    placed: list[tuple[int, int, int, int]] = []
    out: list[tuple[int, int] | None] = []

    def free(x: int, y: int, w: int, h: int) -> bool:
        return all(x + w <= a or a2 <= x or y + h <= b or b2 <= y for a, b, a2, b2 in placed)

    for (w, h), (x0, y0, x1, y1) in zip(sizes, anchors):
        if w > width or h > height:
            out.append(None)
            continue
        x = int(np.clip(x0, 0, width - w))
        preferred = [y0 - h, y0, y1]  # above the box, inside its top, below it
        rows = sorted(range(0, height - h + 1), key=lambda y: min(abs(y - p) for p in preferred))
        spot = None
        for y in rows:
            for xx in (x, int(np.clip(x1 - w, 0, width - w)), 0, width - w):
                if free(xx, y, w, h):
                    spot = (xx, y)
                    break
            if spot:
                break
        out.append(spot)
        if spot:
            placed.append((spot[0], spot[1], spot[0] + w, spot[1] + h))
    return out


def _dashed_rect(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], color, dash: int = 5) -> None:
    x0, y0, x1, y1 = box
    for a in range(x0, x1, 2 * dash):
        draw.line([(a, y0), (min(a + dash, x1), y0)], fill=color, width=2)
        draw.line([(a, y1), (min(a + dash, x1), y1)], fill=color, width=2)
    for b in range(y0, y1, 2 * dash):
        draw.line([(x0, b), (x0, min(b + dash, y1))], fill=color, width=2)
        draw.line([(x1, b), (x1, min(b + dash, y1))], fill=color, width=2)


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def render(
    image: np.ndarray, instances: Sequence[Instance], *, long_side: int = 512, title: str = ""
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Draws ``instances`` (first = most important: drawn on top, captioned first) on ``image``.

    Args:
      image: uint8 ``[H, W, 3]`` RGB; masks must be ``[H, W]``.
      long_side: display size of the picture's long side, pixels.
      title: a line above the picture ("ground truth", "prediction"), or none.
    Returns:
      (the picture, the caption boxes ``(x0, y0, x1, y1)`` drawn, in picture pixels including the
      title band).
    """
    image = np.asarray(image, np.uint8)
    h, w = display_size(image.shape[0], image.shape[1], long_side)
    canvas = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    hatch = ((yy + xx) // 4) % 2 == 0
    boxes_px = []
    for inst in reversed(instances):  # the most important on top
        color = np.array(class_color(inst.mid), np.float32)
        ymin, xmin, ymax, xmax = inst.box
        boxes_px.append((int(xmin * w), int(ymin * h), int(np.ceil(xmax * w)) - 1, int(np.ceil(ymax * h)) - 1))
        if inst.mask is None or inst.style == "box_only":
            continue
        m = _resize_mask(np.asarray(inst.mask, bool), h, w)
        region = m & hatch if inst.style == "group_of" else m
        canvas[region] = (1.0 - MASK_ALPHA) * canvas[region] + MASK_ALPHA * color
        canvas[_outline(m)] = color
    boxes_px.reverse()
    picture = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(picture)
    for inst, box in zip(instances, boxes_px):
        if inst.style == "mask":  # a thin solid box around the mask
            draw.rectangle(box, outline=class_color(inst.mid), width=1)
        else:
            _dashed_rect(draw, box, class_color(inst.mid))
    font = caption_font(FONT_PX)
    sizes = []
    for inst in instances:
        left, top, right, bottom = draw.textbbox((0, 0), inst.text, font=font)
        sizes.append((right - left + 2 * PAD, bottom - top + 2 * PAD))
    spots = place_captions(sizes, boxes_px, w, h)
    drawn = []
    for inst, (tw, th), spot in zip(instances, sizes, spots):
        if spot is None:
            continue
        x, y = spot
        fill = class_color(inst.mid)
        draw.rectangle([x, y, x + tw - 1, y + th - 1], fill=fill)
        left, top, _, _ = draw.textbbox((0, 0), inst.text, font=font)
        draw.text((x + PAD - left, y + PAD - top), inst.text, fill=text_color(fill), font=font)
        drawn.append((x, y, x + tw, y + th))
    if not title:
        return picture, drawn
    band = FONT_PX + 2 * PAD + 4
    out = Image.new("RGB", (w, h + band), (255, 255, 255))
    out.paste(picture, (0, band))
    ImageDraw.Draw(out).text((PAD, PAD), title, fill=(0, 0, 0), font=font)
    return out, [(a, b + band, c, d + band) for a, b, c, d in drawn]


def legend(entries: Sequence[tuple[str, str]], width: int) -> Image.Image:
    """A white strip ``width`` pixels wide: a colour swatch and the name of each ``(mid, name)``, in
    rows that wrap at the width."""
    font = caption_font(FONT_PX)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_h = FONT_PX + 2 * PAD + 4
    items, x, rows = [], 4, 0
    for mid, name in entries:
        left, _, right, _ = probe.textbbox((0, 0), name, font=font)
        item_w = row_h + (right - left) + 12
        if x + item_w > width and x > 4:
            x, rows = 4, rows + 1
        items.append((x, rows, mid, name))
        x += item_w
    strip = Image.new("RGB", (width, (rows + 1) * row_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for x, r, mid, name in items:
        y = 2 + r * row_h
        draw.rectangle([x, y + 2, x + row_h - 6, y + row_h - 4], fill=class_color(mid))
        left, top, _, _ = draw.textbbox((0, 0), name, font=font)
        draw.text((x + row_h - 2 - left, y + PAD + 2 - top), name, fill=(0, 0, 0), font=font)
    return strip


def compose(panels: Sequence[Image.Image], legend_entries: Sequence[tuple[str, str]] = (), gap: int = 6) -> Image.Image:
    """Panels side by side (tops aligned) over a legend spanning their width."""
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    height = max(p.height for p in panels)
    strip = legend(legend_entries, width) if legend_entries else None
    out = Image.new("RGB", (width, height + (strip.height if strip else 0)), (255, 255, 255))
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + gap
    if strip:
        out.paste(strip, (0, height))
    return out


def detection_instances(detections, name, *, min_score: float = 0.0) -> list[Instance]:
    """:class:`hierseg.detections.Detections` -> instances, best score first, captioned by label path
    and score (``"Person › Man 0.91"``); those scoring below ``min_score`` are left out."""
    from hierseg.serving.visualize import caption

    order = [int(i) for i in np.argsort(-detections.scores, kind="stable") if detections.scores[i] >= min_score]
    masks = detections.select(order).dense_masks() if order else []
    return [
        Instance(
            detections.classes[i],
            tuple(float(v) for v in detections.boxes[i]),
            caption(detections.label_paths[i] or (detections.classes[i],), float(detections.scores[i]), name),
            m,
        )
        for i, m in zip(order, masks)
    ]


def legend_entries(instances: Sequence[Instance], name) -> list[tuple[str, str]]:
    """``(mid, name)`` of each class drawn, once, sorted by name."""
    mids = dict.fromkeys(i.mid for i in instances)
    return sorted(((m, name(m)) for m in mids), key=lambda e: e[1])


def render_prediction(
    image: np.ndarray,
    detections,
    name,
    *,
    ground_truth: Sequence[Instance] | None = None,
    min_score: float = 0.0,
    long_side: int = 512,
) -> Image.Image:
    """The prediction picture of ``predict --visualize``: the ground truth ("ground truth" panel) beside
    the prediction when ``ground_truth`` is given, and a legend of the classes' colours below.

    Raises:
      ValueError: if the image is not at the detections' resolution.
    """
    image = np.asarray(image, np.uint8)
    if image.shape[:2] != (detections.height, detections.width):
        raise ValueError(
            f"{detections.image_id}: image is {image.shape[:2]}, detections are {(detections.height, detections.width)}"
        )
    shown = detection_instances(detections, name, min_score=min_score)
    panels = []
    if ground_truth is not None:
        panels.append(render(image, ground_truth, long_side=long_side, title="ground truth")[0])
    panels.append(render(image, shown, long_side=long_side, title="prediction" if panels else "")[0])
    return compose(panels, legend_entries([*shown, *(ground_truth or [])], name))


def tile(pngs: Sequence[str], out_path: str, *, columns: int = 2, gap: int = 6) -> Image.Image:
    """Pictures at their own size (not rescaled, so every caption keeps :data:`FONT_PX`), row by row,
    ``columns`` per row, written to ``out_path`` (atomically) and returned."""
    from hierseg.serving.visualize import save_png

    if not pngs:
        raise ValueError("tile: no images")
    images = []
    for path in pngs:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    rows = [images[i : i + columns] for i in range(0, len(images), columns)]
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in rows)
    height = sum(max(im.height for im in row) for row in rows) + gap * (len(rows) - 1)
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    y = 0
    for row in rows:
        x = 0
        for im in row:
            grid.paste(im, (x, y))
            x += im.width + gap
        y += max(im.height for im in row) + gap
    save_png(grid, out_path)
    return grid
