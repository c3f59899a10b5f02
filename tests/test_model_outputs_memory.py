"""Model outputs -> Detections one detection at a time inside its box (issue 11, part 4): the same masks
as the full-image paste, RLEs equal to pycocotools' encoding, memory of one box rather than the image."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from hierseg import features as F
from hierseg.evaluation.model_outputs import image_detections, paste_one
from hierseg.label_map import LabelMap
from hierseg.ops.mask_paste import paste_masks_numpy
from hierseg.rle import encode_rle, encode_rle_window


@pytest.mark.parametrize("seed", range(3))
def test_encode_rle_window_equals_full_mask_encoding(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        h, w = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        window = rng.random((h, w)) < rng.random() * 1.2  # all-zero and all-one windows included
        full = np.zeros((height, width), bool)
        full[top : top + h, left : left + w] = window
        assert encode_rle_window(window, top, left, height, width) == encode_rle(full)
    with pytest.raises(ValueError, match="outside"):
        encode_rle_window(np.ones((3, 3), bool), 8, 0, 10, 10)


def test_paste_one_matches_the_slow_reference():
    rng = np.random.default_rng(0)
    for t in range(60):
        height, width = (int(v) for v in rng.integers(4, 40, 2))
        size = int(rng.choice([4, 7, 14]))
        ys, xs = np.sort(rng.random(2)), np.sort(rng.random(2))
        box = np.array([ys[0], xs[0], ys[1], xs[1]], np.float32) if t % 6 else np.array([0, 0, 1, 1], np.float32)
        mask = rng.random((size, size)).astype(np.float32)
        soft = paste_masks_numpy(mask[None], box[None], height, width)[0]
        top, left, window = paste_one(mask, box, height, width, 0.5)
        full = np.zeros((height, width), bool)
        full[top : top + window.shape[0], left : left + window.shape[1]] = window
        decided = np.abs(soft - 0.5) > 1e-5  # float32 vs float64: pixels on the threshold may go either way
        assert np.array_equal(full[decided], soft[decided] >= 0.5)


def test_memory_is_per_box_not_per_image():
    """40 detections on a 4000 x 3000 image: the old full-size float32 paste held 40 x 48 MB at once."""
    rng = np.random.default_rng(1)
    height, width, num, size = 3000, 4000, 40, 28
    y0, x0 = rng.random(num) * 0.85, rng.random(num) * 0.85
    boxes = np.stack([y0, x0, y0 + 0.1, x0 + 0.1], axis=1).astype(np.float32)
    outputs = {
        F.NUM_DETECTIONS: np.array([num]),
        F.DET_SCORES: np.full((1, num), 0.9, np.float32),
        F.DET_CLASSES: np.ones((1, num), np.int32),
        F.DET_BOXES: boxes[None],
        F.DET_MASKS: (rng.random((1, num, size, size)) > 0.3).astype(np.float32),
    }
    label_map = LabelMap.from_classes(["/m/01g317"], {"/m/01g317": "Person"})
    tracemalloc.start()
    dets = image_detections(outputs, 0, "img", height, width, label_map)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(dets) == num and all(r["size"] == [height, width] for r in dets.rles)
    assert peak < 0.25 * height * width, f"peak {peak / 1e6:.1f} MB: a full-size mask was allocated"


def test_decode_in_strips_gives_the_whole_image():
    """decode_bytes copies PIL's pixels out in strips of rows (bounded memory): the same array as a whole copy."""
    import io

    from PIL import Image

    from hierseg.serving import image_io

    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (image_io.STRIP_ROWS + 1, 7), (2 * image_io.STRIP_ROWS, 33), (300, 513)]:
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        assert np.array_equal(image_io.decode_bytes(buf.getvalue()), rgb)
        gray = io.BytesIO()
        Image.fromarray(rgb[..., 0]).save(gray, format="PNG")
        assert np.array_equal(image_io.decode_bytes(gray.getvalue()), np.repeat(rgb[..., :1], 3, axis=2))
