"""GT_SEMANTIC targets: instance masks -> class map (numpy reference), gray fill, frame moves, pipeline."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from data_prep.pixels import gray_fill_region
from hierseg import features as F
from hierseg.input.semantic_targets import (
    class_map_from_instances,
    gray_fill_mask,
    labels_to_input_frame,
)

IGNORE = F.SEMANTIC_IGNORE


def class_map_numpy(masks, classes, boxes, gray, ignore_boxes_without_mask=True):
    """Slow reference: ignore rules first, then every instance painted in order (later on top)."""
    n, h, w = masks.shape
    out = np.zeros((h, w), np.int32)
    if gray is not None:
        out[gray] = IGNORE
    for i in range(n):
        if ignore_boxes_without_mask and not masks[i].any():
            y0, x0 = int(np.floor(boxes[i, 0] * h)), int(np.floor(boxes[i, 1] * w))
            y1, x1 = int(np.ceil(boxes[i, 2] * h)), int(np.ceil(boxes[i, 3] * w))
            out[max(y0, 0) : y1, max(x0, 0) : x1] = IGNORE
    for i in range(n):
        out[masks[i] > 0] = classes[i]
    return out


def test_class_map_matches_numpy_on_random_overlaps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w, n = rng.integers(5, 30), rng.integers(5, 30), rng.integers(0, 6)
        masks = (rng.random((n, h, w)) < 0.3).astype(np.uint8)
        masks[rng.random(n) < 0.3] = 0  # some instances carry no mask
        classes = rng.integers(1, 9, n).astype(np.int32)
        lo = rng.random((n, 2)) * 0.7
        boxes = np.concatenate([lo, lo + rng.random((n, 2)) * 0.3], axis=1).astype(np.float32)
        gray = rng.random((h, w)) < 0.2
        got = class_map_from_instances(tf.constant(masks), tf.constant(classes), tf.constant(boxes), tf.constant(gray))
        np.testing.assert_array_equal(got.numpy(), class_map_numpy(masks, classes, boxes, gray))


def test_class_map_hand_case_overlap_ignore_and_gray():
    masks = np.zeros((3, 4, 6), np.uint8)
    masks[0, 0:2, 0:3] = 1  # class 1
    masks[1, 1:3, 2:4] = 1  # class 2, on top of instance 0 at (1, 2)
    # instance 2 (class 3) has no mask: its box rows 2..3, cols 3..5 are unknown
    boxes = np.array([[0, 0, 0.5, 0.5], [0.25, 1 / 3, 0.75, 2 / 3], [0.5, 0.5, 1.0, 1.0]], np.float32)
    gray = np.zeros((4, 6), bool)
    gray[3, 0:3] = True
    gray[2, 2] = True  # under instance 1's mask: the mask wins
    got = class_map_from_instances(masks, tf.constant([1, 2, 3]), boxes, gray).numpy()
    expected = np.array(
        [
            [1, 1, 1, 0, 0, 0],
            [1, 1, 2, 2, 0, 0],
            [0, 0, 2, 2, IGNORE, IGNORE],
            [IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE],
        ]
    )
    np.testing.assert_array_equal(got, expected)


def test_gray_fill_found_after_jpeg_and_natural_gray_kept():
    rng = np.random.default_rng(1)
    h, w = 48, 64
    rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    rgb[40:42, 5:7] = 128  # a natural 2x2 gray patch: smaller than min_side, stays labelled
    target = np.zeros((h, w), bool)
    target[12:20, 20:30] = True  # a target mask inside the gray box is never painted
    region = gray_fill_region(np.array([[0.1, 0.2, 0.6, 0.7]], np.float32), [target], h, w)
    rgb[region] = 128
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    decoded = np.array(Image.open(io.BytesIO(buf.getvalue())))
    found = gray_fill_mask(tf.constant(decoded), 128, 10, 4).numpy()
    # JPEG blurs the block edges next to random texture: compare away from the edges.
    core = (
        region & ~np.pad(~region, 1, constant_values=True)[2:, 2:] & ~np.pad(~region, 1, constant_values=True)[:-2, :-2]
    )
    assert found[core].mean() > 0.97
    assert not found[40:42, 5:7].any()
    assert found[~region].mean() < 0.01


def test_labels_to_input_frame_resizes_crops_and_pads_with_ignore():
    labels = np.arange(4 * 6, dtype=np.int32).reshape(4, 6) % 7
    # No crop: scaled 8 x 12 inside a 16 x 16 input; nearest doubling.
    info = tf.constant([[4, 6], [8, 12], [2, 2], [0, 0]], tf.float32)
    out = labels_to_input_frame(tf.constant(labels), info, 16).numpy()
    np.testing.assert_array_equal(out[:8, :12], np.repeat(np.repeat(labels, 2, 0), 2, 1))
    assert (out[8:] == IGNORE).all() and (out[:, 12:] == IGNORE).all()
    # Crop window at offset (2, 4) of the doubled map.
    info = tf.constant([[4, 6], [8, 12], [2, 2], [2, 4]], tf.float32)
    out = labels_to_input_frame(tf.constant(labels), info, 4).numpy()
    np.testing.assert_array_equal(out, np.repeat(np.repeat(labels, 2, 0), 2, 1)[2:6, 4:8])


def _interior(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` whose 4 neighbours are in it too: resizing the image (bilinear) and the labels
    (nearest) moves a boundary by up to a pixel, which must not count as misalignment."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def test_pipeline_gt_semantic_follows_the_flipped_image(tmp_path):
    """Training with flip_prob 1: every pixel labelled c shows class c's colour, and vice versa."""
    from synthetic_scene import CLASS_COLORS as COLORS
    from tiny_layer import write_tiny_layer

    from hierseg.config.data import DataConfig
    from hierseg.config.deeplab import SemanticTargetConfig
    from hierseg.input.pipeline import build_dataset

    layer = write_tiny_layer(tmp_path / "layer", num_images=2)
    data = DataConfig(output_size=128, max_instances=8, gt_mask_size=28, semantic=SemanticTargetConfig(enabled=True))
    data.aug.flip_prob, data.aug.scale_min, data.aug.scale_max = 1.0, 1.0, 1.0
    ds = build_dataset(str(layer / "train-*"), data, is_training=True, batch_size=2, seed=1)
    batch = next(iter(ds))
    labels = batch[F.GT_SEMANTIC].numpy()
    assert labels.shape == (2, 128, 128) and labels.dtype == np.int32
    rgb = batch[F.IMAGE].numpy() * np.array(F.IMAGE_STD) + np.array(F.IMAGE_MEAN)
    checked = 0
    for b in range(2):
        sh, sw = batch[F.IMAGE_INFO].numpy()[b, 1].astype(int)
        assert (labels[b, sh:] == IGNORE).all() and (labels[b, :, sw:] == IGNORE).all()
        for c, color in COLORS.items():
            colored = np.abs(rgb[b, :sh, :sw] - np.array(color)).max(-1) < 20
            if not colored.any():
                continue
            checked += 1
            assert (labels[b, :sh, :sw][colored] == c).mean() > 0.97
            assert (colored[_interior(labels[b, :sh, :sw] == c)]).mean() > 0.9
    assert checked >= 2


def test_pipeline_box_only_instance_is_ignored_inside_its_box(tmp_path):
    """A record as prepare writes it with a box-only instance (mask_valid 0, empty mask PNG)."""
    from data_prep.pixels import encode_mask_png
    from data_prep.tf_example import build_example
    from hierseg.config.data import DataConfig
    from hierseg.config.deeplab import SemanticTargetConfig
    from hierseg.input.pipeline import build_dataset

    h, w = 32, 64
    real = np.zeros((h, w), bool)
    real[4:12, 4:20] = True
    image = tf.io.encode_png(np.full((h, w, 3), 30, np.uint8)).numpy()
    example = build_example(
        image=image,
        image_format="png",
        height=h,
        width=w,
        source_id="1",
        filename="a.jpg",
        boxes=np.array([[4 / h, 4 / w, 12 / h, 20 / w], [16 / h, 32 / w, 28 / h, 60 / w]], np.float32),
        class_ids=[1, 2],
        mids=["/m/a", "/m/b"],
        is_crowd=[False, False],
        mask_pngs=[encode_mask_png(real), encode_mask_png(np.zeros((h, w), bool))],
        mask_valid=[True, False],
    )
    path = tmp_path / "validation-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString(deterministic=True))
    data = DataConfig(output_size=64, max_instances=4, semantic=SemanticTargetConfig(enabled=True))
    labels = next(iter(build_dataset(str(path), data, is_training=False, batch_size=1)))[F.GT_SEMANTIC].numpy()[0]
    expected = np.zeros((h, w), np.int32)
    expected[real] = 1
    expected[16:28, 32:60] = IGNORE  # the box-only instance: unknown inside its box, never background
    np.testing.assert_array_equal(labels[:h], expected)
    assert (labels[h:] == IGNORE).all()  # padding below the 32-row content
