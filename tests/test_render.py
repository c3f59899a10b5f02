"""Pictures: captions inside the image and disjoint, one font size, styles by annotation kind, legend,
ground truth beside the prediction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.serving.render import (
    FONT_PX,
    Instance,
    display_size,
    place_captions,
    render,
    render_prediction,
    tile,
)
from hierseg.serving.visualize import class_color

H = Hierarchy.builtin()
MAN, WOMAN, CAR, PERSON = (H.mid_of(n) for n in ("Man", "Woman", "Car", "Person"))


def disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_place_captions_inside_and_disjoint_on_random_crowds():
    rng = np.random.default_rng(0)
    for _ in range(20):
        width, height = int(rng.integers(80, 400)), int(rng.integers(60, 300))
        n = int(rng.integers(1, 40))
        sizes = [(int(rng.integers(10, 120)), 16) for _ in range(n)]
        anchors = []
        for _ in range(n):
            x0, y0 = int(rng.integers(-20, width)), int(rng.integers(-20, height))
            anchors.append((x0, y0, x0 + int(rng.integers(1, 100)), y0 + int(rng.integers(1, 100))))
        spots = place_captions(sizes, anchors, width, height)
        boxes = [(x, y, x + w, y + h) for (w, h), s in zip(sizes, spots) if s for x, y in [s]]
        for b in boxes:
            assert 0 <= b[0] and b[2] <= width and 0 <= b[1] and b[3] <= height
        for i in range(len(boxes)):
            for j in range(i):
                assert disjoint(boxes[i], boxes[j])
        if n <= 3 and all(w <= width for w, _ in sizes):
            assert all(s is not None for s in spots)  # a few captions always find a place


def test_first_caption_sits_above_its_box():
    (spot,) = place_captions([(50, 16)], [(30, 60, 90, 120)], 200, 200)
    assert spot == (30, 44)


def _rect(h, w, y0, x0, y1, x1):
    m = np.zeros([h, w], bool)
    m[y0:y1, x0:x1] = True
    return m


def test_render_styles_and_caption_boxes():
    h, w = 100, 200
    image = np.full([h, w, 3], 100, np.uint8)
    instances = [
        Instance(MAN, (0.05, 0.025, 0.7, 0.35), "Man", _rect(h, w, 10, 10, 60, 60), "mask"),  # box > mask
        Instance(CAR, (0.1, 0.4, 0.6, 0.7), "Car (group)", _rect(h, w, 10, 80, 60, 140), "group_of"),
        Instance(WOMAN, (0.7, 0.75, 0.95, 0.95), "Woman (box)", None, "box_only"),
    ] + [Instance(PERSON, (0.3, 0.3, 0.5, 0.5), f"Person {k}", None, "box_only") for k in range(12)]
    pic, captions = render(image, instances, long_side=400)
    out = np.asarray(pic).astype(int)
    assert pic.size == (400, 200)  # display size: long side 400, aspect kept
    free = np.ones(out.shape[:2], bool)  # pixels no caption covers
    for x0, y0, x1, y1 in captions:
        free[y0:y1, x0:x1] = False

    def region(y0, y1, x0, x1):  # display pixels (2x) of an image region, outside captions
        return out[2 * y0 : 2 * y1, 2 * x0 : 2 * x1][free[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]]

    man = np.array(class_color(MAN))
    row = 139  # the bottom edge of the Man's box: 0.7 of the 200-pixel display height, last pixel
    edge = out[row, 12:138][free[row, 12:138]]
    assert len(edge) > 50 and (edge == man).all(-1).all()  # a thin solid box, apart from the mask
    inside = region(15, 55, 15, 55)
    assert len(inside) > 1000
    np.testing.assert_allclose(inside, np.broadcast_to(0.55 * 100 + 0.45 * man, inside.shape), atol=1)
    untouched = (region(15, 55, 85, 135) == 100).all(-1).mean()
    assert 0.3 < untouched < 0.7  # hatched group-of region: about half of it keeps the image
    woman_inside = region(75, 90, 160, 180)
    assert len(woman_inside) > 100 and (woman_inside == 100).all()  # a box without a mask is not filled
    assert len(captions) >= 3
    for b in captions:
        assert 0 <= b[0] and b[2] <= pic.width and 0 <= b[1] and b[3] <= pic.height
        assert FONT_PX <= b[3] - b[1] <= FONT_PX + 8  # one font size
    for i in range(len(captions)):
        for j in range(i):
            assert disjoint(captions[i], captions[j])


def test_prediction_picture_has_ground_truth_beside_and_a_legend(tmp_path):
    h, w = 60, 80
    image = np.full([h, w, 3], 90, np.uint8)
    masks = np.stack([_rect(h, w, 5, 5, 40, 30), _rect(h, w, 10, 40, 55, 75)])
    det = Detections.from_dense("00000000000000aa", [MAN, CAR], np.array([0.9, 0.8]), masks)
    truth = [Instance(WOMAN, (0.1, 0.1, 0.6, 0.4), "Woman", masks[0])]
    alone = render_prediction(image, det, H.name, long_side=256)
    both = render_prediction(image, det, H.name, ground_truth=truth, long_side=256)
    ph, pw = display_size(h, w, 256)
    assert alone.width == pw and alone.height > ph  # the legend below
    assert both.width == 2 * pw + 6
    legend = np.asarray(both)[-(FONT_PX + 10) :].reshape(-1, 3)
    for mid in (MAN, CAR, WOMAN):  # one swatch per class shown on either side
        assert (legend == np.array(class_color(mid))).all(-1).sum() > 20
    with pytest.raises(ValueError, match="image is"):
        render_prediction(image[:30], det, H.name)
    paths = []
    for k, pic in enumerate((alone, both)):
        paths.append(str(tmp_path / f"{k}.png"))
        pic.save(paths[-1])
    grid = tile(paths, str(tmp_path / "grid.png"), columns=2)
    assert grid.size == (alone.width + 6 + both.width, max(alone.height, both.height))
    assert Image.open(tmp_path / "grid.png").size == grid.size
