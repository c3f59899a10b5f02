"""Drawing the synthetic objects and backgrounds: pure numpy/PIL functions, no file I/O.

Coordinates are pixels, ``y`` down and ``x`` right, with pixel centres at ``+0.5``. An object is drawn
on its own ``[h, w]`` canvas (its box) as a set of *parts*: a boolean mask each, painted with the
class's main colour and texture or with a fixed colour (wheels, lamps, stems). The object's mask is
the union of its parts, exactly the pixels painted; holes (the wheel's) stay background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from hierseg.synth.classes import RGB, Look

MAIN = "main"  # paint a part with the class's colour and texture
DARK: RGB = (25, 25, 28)
LIGHT: RGB = (200, 225, 240)


@dataclass(frozen=True)
class Sprite:
    """One drawn object on its own canvas.

    Attributes:
      mask: bool ``[h, w]``, the object's pixels.
      rgb: float32 ``[h, w, 3]`` in [0, 255], meaningful where ``mask``.
    """

    mask: np.ndarray
    rgb: np.ndarray


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _disk(yy, xx, cy, cx, r) -> np.ndarray:
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _rounded_rect(yy, xx, y0, x0, y1, x1, r) -> np.ndarray:
    """Pixels inside the rectangle [y0, y1] x [x0, x1] with corners rounded by radius ``r``."""
    r = max(0.0, min(r, (y1 - y0) / 2, (x1 - x0) / 2))
    dy = np.maximum(np.maximum(y0 + r - yy, yy - (y1 - r)), 0)
    dx = np.maximum(np.maximum(x0 + r - xx, xx - (x1 - r)), 0)
    inside = (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)
    return inside & (dy * dy + dx * dx <= r * r)


def _polygon(h: int, w: int, points: list[tuple[float, float]]) -> np.ndarray:
    """Pixels inside a polygon given as (x, y) vertices (PIL rasterization)."""
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def shape_parts(look: Look, h: int, w: int) -> list[tuple[np.ndarray, str | RGB]]:
    """The parts of a ``look.family`` shape on an ``[h, w]`` canvas: ``[(bool [h, w], paint)]`` where
    paint is :data:`MAIN` or an RGB tuple. Later parts are painted over earlier ones."""
    yy, xx = _grid(h, w)
    fam = look.family
    if fam == "person":
        r = 0.23 * w
        head = _disk(yy, xx, r + 0.02 * h, w / 2, r)
        top = 2 * r + 0.02 * h
        body = _ellipse(yy, xx, (top + h) / 2, w / 2, (h - top) / 2 + 0.04 * h, w / 2)
        return [(body & (yy >= top - 0.04 * h), MAIN), (head, MAIN)]
    if fam == "car":
        rw = min(0.3 * h, 0.13 * w)
        body = _rounded_rect(yy, xx, 0.38 * h, 0, h - 0.45 * rw, w, 0.18 * h)
        cx0, cx1 = (0.14 * w, 0.86 * w) if look.aspect < 0.45 else (0.2 * w, 0.78 * w)
        cabin = _rounded_rect(yy, xx, 0, cx0, 0.5 * h, cx1, 0.15 * h)
        window = _rounded_rect(yy, xx, 0.09 * h, cx0 + 0.05 * w, 0.38 * h, cx1 - 0.05 * w, 0.06 * h)
        wheels = _disk(yy, xx, h - rw, 0.2 * w, rw) | _disk(yy, xx, h - rw, 0.8 * w, rw)
        hubs = _disk(yy, xx, h - rw, 0.2 * w, 0.4 * rw) | _disk(yy, xx, h - rw, 0.8 * w, 0.4 * rw)
        return [(body | cabin, MAIN), (window, LIGHT), (wheels, DARK), (hubs, (170, 170, 175))]
    if fam == "animal":
        body = _ellipse(yy, xx, 0.6 * h, 0.5 * w, 0.4 * h, 0.5 * w)
        if look.variant == "pointed":
            ears = _polygon(h, w, [(0.1 * w, 0.45 * h), (0.16 * w, 0.0), (0.4 * w, 0.3 * h)]) | _polygon(
                h, w, [(0.9 * w, 0.45 * h), (0.84 * w, 0.0), (0.6 * w, 0.3 * h)]
            )
        else:
            ears = _disk(yy, xx, 0.17 * h, 0.22 * w, 0.15 * w) | _disk(yy, xx, 0.17 * h, 0.78 * w, 0.15 * w)
        eyes = _disk(yy, xx, 0.45 * h, 0.37 * w, 0.045 * w) | _disk(yy, xx, 0.45 * h, 0.63 * w, 0.045 * w)
        nose = _ellipse(yy, xx, 0.6 * h, 0.5 * w, 0.05 * h, 0.07 * w)
        return [(body | ears, MAIN), (eyes | nose, DARK)]
    if fam == "star":
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 0.5, 0.21)
        pts = [(w / 2 + r * w * np.cos(a), h * 0.53 + r * h * np.sin(a)) for a, r in zip(ang, rad)]
        return [(_polygon(h, w, pts), MAIN)]
    if fam == "wheel":
        d2 = (yy - h / 2) ** 2 + (xx - w / 2) ** 2
        r = min(h, w) / 2
        ring = (d2 <= r * r) & (d2 >= (0.62 * r) ** 2)
        inner = d2 < (0.62 * r) ** 2
        spokes = inner & ((np.abs(yy - h / 2) <= 0.07 * r) | (np.abs(xx - w / 2) <= 0.07 * r))
        hub = d2 <= (0.22 * r) ** 2
        return [(ring, MAIN), (spokes | hub, look.accent)]
    if fam == "apple":
        fruit = _disk(yy, xx, 0.57 * h, 0.5 * w, 0.43 * min(h, w) + 0.02 * w)
        stem = (xx >= 0.46 * w) & (xx <= 0.54 * w) & (yy <= 0.22 * h)
        leaf = _ellipse(yy, xx, 0.09 * h, 0.67 * w, 0.07 * h, 0.14 * w)
        return [(fruit, MAIN), (stem, (90, 55, 20)), (leaf, look.accent)]
    if fam == "banana":
        cy, cx = -0.9 * h, 0.5 * w
        r_out = h - cy
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        band = (d <= r_out) & (d >= r_out - 0.55 * h)
        taper = np.abs(xx - cx) <= 0.5 * w * (1 - 0.25 * np.clip((r_out - d) / (0.55 * h), 0, 1))
        tips = band & taper & ((xx <= 0.06 * w) | (xx >= 0.94 * w))
        return [(band & taper, MAIN), (tips, (95, 70, 20))]
    if fam == "traffic_light":
        body = _rounded_rect(yy, xx, 0, 0.05 * w, h, 0.95 * w, 0.2 * w)
        r = 0.3 * w
        parts: list[tuple[np.ndarray, str | RGB]] = [(body, MAIN)]
        for frac, colour in ((0.19, (235, 30, 25)), (0.5, (250, 200, 0)), (0.81, (20, 210, 60))):
            parts.append((_disk(yy, xx, frac * h, 0.5 * w, r), colour))
        return parts
    if fam == "pizza":
        slice_ = _polygon(h, w, [(0, 0.12 * h), (w, 0.12 * h), (0.5 * w, h)])
        crust = _rounded_rect(yy, xx, 0, 0, 0.22 * h, w, 0.1 * h)
        return [(slice_, MAIN), (crust, (165, 95, 35))]
    raise ValueError(f"unknown shape family {fam!r}")


def _texture(look: Look, yy: np.ndarray, xx: np.ndarray, w: int) -> np.ndarray:
    """bool ``[h, w]``: where the texture's accent colour replaces the main colour."""
    period = max(4.0, w / 5.0)
    if look.texture == "solid":
        return np.zeros(yy.shape, dtype=bool)
    if look.texture == "hstripes":
        return (yy // (period / 2)) % 2 == 1
    if look.texture == "vstripes":
        return (xx // (period / 2)) % 2 == 1
    if look.texture == "checker":
        return ((yy // (period / 2)) + (xx // (period / 2))) % 2 == 1
    if look.texture == "dots":
        fy, fx = (yy % period) - period / 2, (xx % period) - period / 2
        return fy * fy + fx * fx <= (0.28 * period) ** 2
    raise ValueError(f"unknown texture {look.texture!r}")


def draw_sprite(look: Look, h: int, w: int, brightness: float = 1.0) -> Sprite:
    """Draws one object of ``look`` on an ``[h, w]`` canvas.

    Args:
      brightness: multiplies the main and accent colours (per-instance variation, e.g. 0.85..1.1).
    Returns:
      a :class:`Sprite`; its mask has a 1-pixel darker outline painted inside it (an edge cue that
      survives JPEG) and is never empty for h, w >= 4.
    """
    yy, xx = _grid(h, w)
    mask = np.zeros((h, w), dtype=bool)
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    main = np.array(look.colour, np.float32) * brightness
    accent = np.array(look.accent, np.float32) * brightness
    tex = _texture(look, yy, xx, w)
    for part, paint in shape_parts(look, h, w):
        mask |= part
        if paint == MAIN:
            rgb[part] = np.where(tex[part][:, None], accent, main)
        else:
            rgb[part] = np.array(paint, np.float32)
    inner = mask.copy()  # 4-neighbour erosion: the outline is mask minus its erosion
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    rgb[mask & ~inner] *= 0.55
    return Sprite(mask=mask, rgb=np.clip(rgb, 0, 255))


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth, tinted background, float32 ``[H, W, 3]`` in [0, 255].

    A coarse random grid of pastel colours around one hue (saturation 0.2..0.45, value 0.45..0.8,
    unlike the saturated or neutral-grey objects), upsampled bicubically, plus faint fine noise.
    """
    gh, gw = rng.integers(2, 5, size=2)
    hue = rng.uniform(0, 255)
    hsv = np.stack(
        [
            (hue + rng.uniform(-25, 25, (gh, gw))) % 255,
            rng.uniform(0.2, 0.45, (gh, gw)) * 255,
            rng.uniform(0.45, 0.8, (gh, gw)) * 255,
        ],
        axis=-1,
    ).astype(np.uint8)
    coarse = Image.fromarray(hsv, "HSV").convert("RGB")
    smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.float32)
    return smooth + rng.normal(0, 4, (height, width, 1)).astype(np.float32)


def downsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool ``[H, W]`` -> bool ``[height, width]``: area-weighted resize then threshold at one half,
    the lower-resolution PNG a reader upsamples back with nearest neighbour."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    return np.asarray(img.resize((width, height), Image.BILINEAR)) >= 128


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """bool ``[H, W]`` (non-empty) -> pixel box ``(x0, x1, y0, y1)`` with exclusive ends."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        raise ValueError("tight_box of an empty mask")
    return int(xs[0]), int(xs[-1]) + 1, int(ys[0]), int(ys[-1]) + 1
