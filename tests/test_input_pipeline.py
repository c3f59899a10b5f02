"""The tf.data input pipeline on tiny TFRecords written here in the prepared layout (features.py keys)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
from synthetic_scene import synthetic_scene
from tiny_layer import encode_example

from hierseg import features as F
from hierseg.config.data import AugmentConfig, DataConfig
from hierseg.config.model import AnchorConfig, ModelConfig, RPNConfig
from hierseg.detections import Detections
from hierseg.features import boxes_to_input_pixels
from hierseg.input.anchor_targets import assign_rpn_targets
from hierseg.input.example_decoder import decode_example
from hierseg.input.pipeline import build_dataset
from hierseg.input.preprocess import decode_image, normalize_image, resize_and_pad
from hierseg.input.transforms import crop_masks_to_boxes
from hierseg.models.factory import build_train_targets
from hierseg.ops.anchors import generate_anchors
from hierseg.ops.box_coding import decode_boxes

ANCHOR = AnchorConfig(min_level=2, max_level=5)
SIZE = 128


def make_scene(seed: int, h: int, w: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A gray image with n coloured, L-shaped, non-overlapping objects and their 0/1 masks."""
    scene = synthetic_scene(np.random.default_rng(seed), h, w, n, "columns")
    return scene.image, scene.masks


def write_records(path, examples: list[bytes]) -> str:
    with tf.io.TFRecordWriter(str(path)) as w:
        for e in examples:
            w.write(e)
    return str(path)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two shards: 6 images of varied size and object count; one with 7 objects, one crowd, weights."""
    d = tmp_path_factory.mktemp("records")
    sizes = [(96, 128, 3), (128, 80, 2), (100, 100, 7), (64, 160, 1), (120, 90, 4), (77, 131, 3)]
    examples = []
    for k, (h, w, n) in enumerate(sizes):
        image, masks = make_scene(k, h, w, n)
        crowd = [1] + [0] * (n - 1) if k == 4 else None
        weight = 2.5 if k == 1 else None
        examples.append(
            encode_example(
                image,
                masks,
                [1 + j % 3 for j in range(n)],
                ["/m/x"] * n,
                f"{k:016x}",
                is_crowd=crowd,
                weight=weight,
                fmt="jpeg" if k == 5 else "png",
            )
        )
    write_records(d / "train-00000-of-00002.tfrecord", examples[:3])
    write_records(d / "train-00001-of-00002.tfrecord", examples[3:])
    return str(d / "train-*"), examples


def data_config(**kw) -> DataConfig:
    base = DataConfig(
        output_size=SIZE,
        max_instances=5,
        gt_mask_size=28,
        shuffle_buffer=4,
        cycle_length=2,
        deterministic=True,
        aug=AugmentConfig(flip_prob=0.5, scale_min=0.8, scale_max=1.25),
    )
    return dataclasses.replace(base, **kw)


def rpn_targets(data: DataConfig, rpn: RPNConfig | None = None):
    """Mask R-CNN's training-targets map for ANCHOR (and ``rpn``, default RPNConfig()) at data.output_size."""
    return build_train_targets(ModelConfig(num_classes=3, anchor=ANCHOR, rpn=rpn or RPNConfig()), data.output_size)


def build(pattern, data, *, is_training, batch_size=6, seed=0, rpn=None) -> tf.data.Dataset:
    targets = rpn_targets(data, rpn) if is_training else None
    return build_dataset(
        pattern, data, is_training=is_training, batch_size=batch_size, seed=seed, train_targets=targets
    )


def first_batch(pattern, data, *, is_training, batch_size=6, seed=0, rpn=None, batches: int | None = 1):
    """The first batch (or the list of the first ``batches``, or of all with None) as numpy, from a NEW pipeline."""
    ds = build(pattern, data, is_training=is_training, batch_size=batch_size, seed=seed, rpn=rpn)
    out = [{k: v.numpy() for k, v in b.items()} for b in (ds if batches is None else ds.take(batches))]
    return out[0] if batches == 1 else out


_BUILT: dict[tuple, object] = {}  # (pattern, arguments) -> batches: each pipeline built once per module


def shared_batch(pattern, data, *, is_training, batch_size=6, seed=0, rpn=None, batches: int | None = 1):
    """:func:`first_batch`, memoised: tests that read the same pipeline share one build of it."""
    key = (pattern, repr(data), is_training, batch_size, seed, repr(rpn), batches)
    if key not in _BUILT:
        _BUILT[key] = first_batch(
            pattern, data, is_training=is_training, batch_size=batch_size, seed=seed, rpn=rpn, batches=batches
        )
    return _BUILT[key]


# ----------------------------------------------------------------------------------------- preprocess
def test_resize_and_pad_matches_numpy():
    h, w = 50, 80
    ramp = np.tile((np.arange(w) * 3).astype(np.uint8)[None, :, None], [h, 1, 3])
    image, info = resize_and_pad(tf.constant(ramp), 64)
    image, info = image.numpy(), info.numpy()
    sh, sw = round(h * 64 / w), 64
    np.testing.assert_allclose(info, [[h, w], [sh, sw], [sh / h, sw / w], [0, 0]], rtol=1e-6)
    assert image.shape == (64, 64, 3)
    assert np.all(image[sh:] == 0)  # padding bottom
    # Bilinear with half-pixel centres keeps a linear ramp linear: column j samples source x = (j+.5)/s - .5.
    x_src = (np.arange(sw) + 0.5) / (sw / w) - 0.5
    expect = (np.clip(x_src, 0, w - 1) * 3 - np.array(F.IMAGE_MEAN)[:, None]) / np.array(F.IMAGE_STD)[:, None]
    np.testing.assert_allclose(image[10, 1:-1, :], expect.T[1:-1], atol=1e-3)
    np.testing.assert_allclose(normalize_image(tf.constant([[F.IMAGE_MEAN]])).numpy(), 0.0, atol=1e-6)
    # image_info maps normalized boxes to input pixels.
    px = boxes_to_input_pixels(tf.constant([[0.5, 0.25, 1.0, 1.0]]), tf.constant(info)).numpy()
    np.testing.assert_allclose(px, [[0.5 * sh, 16, sh, 64]], rtol=1e-6)


def test_decode_image_formats():
    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30, 1)
    rgba = np.concatenate([np.full([20, 30, 3], 7, np.uint8), np.full([20, 30, 1], 128, np.uint8)], axis=-1)
    for enc in (tf.io.encode_png(gray), tf.io.encode_png(rgba), tf.io.encode_jpeg(np.repeat(gray, 3, -1))):
        out = decode_image(enc)
        assert out.dtype == tf.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(decode_image(tf.io.encode_png(gray)).numpy()[..., 2], gray[..., 0])
    np.testing.assert_array_equal(decode_image(tf.io.encode_png(rgba)).numpy(), rgba[..., :3])


def test_crop_masks_to_a_tight_box_is_the_mask():
    mask = np.zeros([1, 40, 60], np.uint8)
    mask[0, 10:30, 20:40] = 1
    crop = crop_masks_to_boxes(tf.constant(mask), tf.constant([[10 / 40, 20 / 60, 30 / 40, 40 / 60]]), 20).numpy()
    np.testing.assert_allclose(crop, 1.0)
    half = crop_masks_to_boxes(tf.constant(mask), tf.constant([[10 / 40, 0.0, 30 / 40, 40 / 60]]), 20).numpy()
    np.testing.assert_allclose(half[0, :, :10], 0.0)
    np.testing.assert_allclose(half[0, :, 10:], 1.0)


# -------------------------------------------------------------------------------------------- decoder
def test_decoder_reads_the_record_layout(records):
    _, examples = records
    d = decode_example(tf.constant(examples[1]))
    image, masks = make_scene(1, 128, 80, 2)
    np.testing.assert_array_equal(d["image"].numpy(), image)
    np.testing.assert_array_equal(d["masks"].numpy(), masks)
    assert d["weight"].numpy() == pytest.approx(2.5)
    assert decode_example(tf.constant(examples[0]))["weight"].numpy() == 1.0  # missing -> 1.0
    assert d["classes"].numpy().tolist() == [1, 2] and d["source_id"].numpy() == b"0000000000000001"
    ys, xs = np.nonzero(masks[0])
    np.testing.assert_allclose(
        d["boxes"].numpy()[0], [ys.min() / 128, xs.min() / 80, (ys.max() + 1) / 128, (xs.max() + 1) / 80], rtol=1e-6
    )


# ------------------------------------------------------------------------------------------- pipeline
def test_element_spec_is_static(records):
    pattern, _ = records
    a = int(generate_anchors(ANCHOR, SIZE).shape[0])
    train = build_dataset(
        pattern, data_config(), is_training=True, batch_size=2, seed=1, train_targets=rpn_targets(data_config())
    ).element_spec
    expect = {
        F.IMAGE: [2, SIZE, SIZE, 3],
        F.IMAGE_INFO: [2, 4, 2],
        F.GT_BOXES: [2, 5, 4],
        F.GT_CLASSES: [2, 5],
        F.GT_VALID: [2, 5],
        F.GT_IS_CROWD: [2, 5],
        F.GT_MASKS: [2, 5, 28, 28],
        F.GT_MASK_VALID: [2, 5],  # issue 12: False for box-only instances
        F.RPN_SCORE_TARGETS: [2, a],
        F.RPN_BOX_TARGETS: [2, a, 4],
        F.WEIGHT: [2],
        F.NUM_DROPPED: [2],
    }
    assert {k: v.shape.as_list() for k, v in train.items()} == expect
    assert train[F.GT_VALID].dtype == tf.bool and train[F.RPN_SCORE_TARGETS].dtype == tf.int32
    ev = build_dataset(pattern, data_config(), is_training=False, batch_size=4).element_spec
    assert ev[F.SOURCE_ID].dtype == tf.string and F.RPN_SCORE_TARGETS not in ev
    for k, v in ev.items():
        assert v.shape[0] is None and v.shape[1:].is_fully_defined(), k


def test_eval_reads_every_image_in_order_with_gt(records):
    pattern, _ = records
    data = data_config(max_instances=10)
    batches = shared_batch(pattern, data, is_training=False, batch_size=4, batches=None)
    assert [len(b[F.SOURCE_ID]) for b in batches] == [4, 2]
    ids = [s.decode() for b in batches for s in b[F.SOURCE_ID]]
    assert ids == [
        "0000000000000000",
        "0000000000000003",
        "0000000000000001",
        "0000000000000004",
        "0000000000000002",
        "0000000000000005",
    ]  # the two shards interleaved, deterministically
    b = batches[0]
    assert b[F.GT_VALID].sum(axis=1).tolist() == [3, 1, 2, 4]  # eval keeps crowd, nothing dropped below cap
    # Eval images are exactly resize_and_pad of the decoded image (what export/predict use).
    image, _ = make_scene(0, 96, 128, 3)
    ref, info = resize_and_pad(tf.constant(image), SIZE)
    np.testing.assert_allclose(b[F.IMAGE][0], ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(b[F.IMAGE_INFO][0], info.numpy())


def test_flip_keeps_boxes_masks_and_pixels_aligned(records):
    pattern, _ = records
    still = first_batch(pattern, data_config(aug=AugmentConfig(0.0, 1.0, 1.0), shuffle_buffer=1), is_training=True)
    flipped = first_batch(pattern, data_config(aug=AugmentConfig(1.0, 1.0, 1.0), shuffle_buffer=1), is_training=True)
    assert still[F.NUM_DROPPED].tolist() == flipped[F.NUM_DROPPED].tolist()
    for i in range(6):
        sh, sw = still[F.IMAGE_INFO][i, 1].astype(int)
        np.testing.assert_allclose(flipped[F.IMAGE][i, :sh, :sw], still[F.IMAGE][i, :sh, :sw][:, ::-1], atol=1e-4)
        valid_f = np.flatnonzero(flipped[F.GT_VALID][i])
        assert len(valid_f) == still[F.GT_VALID][i].sum()
        for j in np.flatnonzero(still[F.GT_VALID][i]):
            y0, x0, y1, x1 = still[F.GT_BOXES][i, j]
            mirrored = np.array([y0, 1 - x1, y1, 1 - x0])
            k = [k for k in valid_f if np.allclose(flipped[F.GT_BOXES][i, k], mirrored, atol=1e-6)]
            assert len(k) == 1, (i, j)
            mask_a, mask_b = still[F.GT_MASKS][i, j], flipped[F.GT_MASKS][i, k[0]]
            np.testing.assert_allclose(mask_b, mask_a[:, ::-1], atol=1e-4)
            assert mask_a[-1, 0] > 0.5 and mask_a[0, -1] < 0.5  # the L: bottom-left on, top-right off
            assert flipped[F.GT_CLASSES][i, k[0]] == still[F.GT_CLASSES][i, j]


def test_scale_jitter_keeps_boxes_inside_and_on_their_objects(records):
    pattern, _ = records
    data = data_config(aug=AugmentConfig(0.5, 0.6, 1.6), max_instances=10, skip_crowd_during_training=False)
    checked, scales = 0, set()
    for b in shared_batch(pattern, data, is_training=True, batches=3):  # three epochs, three augmentations
        scales |= {round(float(v), 3) for v in b[F.IMAGE_INFO][:, 1].max(axis=1)}
        boxes, valid = b[F.GT_BOXES], b[F.GT_VALID]
        assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0)
        assert np.all(boxes[~valid] == 0) and np.all(b[F.GT_MASKS][~valid] == 0)
        for i in range(6):
            px = boxes_to_input_pixels(boxes[i], b[F.IMAGE_INFO][i]).numpy()
            for j in np.flatnonzero(valid[i]):
                ymin, xmin, ymax, xmax = px[j]
                assert -1e-3 <= ymin < ymax <= SIZE + 1e-3 and -1e-3 <= xmin < xmax <= SIZE + 1e-3
                # Where the cropped mask says "object", the input image is not the gray background.
                m = b[F.GT_MASKS][i, j]
                if m.max() < 0.99:
                    continue
                r, c = np.argwhere(m > 0.99)[len(np.argwhere(m > 0.99)) // 2]
                y = int(ymin + (r + 0.5) * (ymax - ymin) / m.shape[0])
                x = int(xmin + (c + 0.5) * (xmax - xmin) / m.shape[1])
                gray = (90 - np.array(F.IMAGE_MEAN)) / np.array(F.IMAGE_STD)
                assert np.abs(b[F.IMAGE][i, y, x] - gray).max() > 0.3
                checked += 1
    assert checked > 20
    assert len(scales) > 10 and min(scales) < 0.9 * SIZE and max(scales) > 1.1 * SIZE  # the jitter happened


def test_max_instances_cap_counts_dropped(records, capfd):
    pattern, _ = records
    b = shared_batch(
        pattern, data_config(max_instances=3, shuffle_buffer=1, aug=AugmentConfig(0.0, 1.0, 1.0)), is_training=True
    )
    # Image 2 has 7 objects, image 4 has 4 (one crowd, skipped in training): 4 and 0 over the cap of 3.
    assert sorted(b[F.NUM_DROPPED].tolist()) == [0, 0, 0, 0, 0, 4]
    assert sorted(b[F.GT_VALID].sum(axis=1).tolist()) == [1, 2, 3, 3, 3, 3]
    assert b[F.GT_VALID][b[F.NUM_DROPPED] == 4].sum() == 3
    assert "dropped" in capfd.readouterr().err


def test_weights_and_crowd(records):
    pattern, _ = records
    b = shared_batch(pattern, data_config(max_instances=10), is_training=False, batch_size=4, batches=None)[0]
    weights = dict(zip(b[F.SOURCE_ID], b[F.WEIGHT]))
    assert weights.pop(b"0000000000000001") == 2.5 and set(weights.values()) == {1.0}
    crowd = dict(zip(b[F.SOURCE_ID], b[F.GT_IS_CROWD]))
    assert crowd[b"0000000000000004"].tolist()[:4] == [True, False, False, False]
    off = first_batch(pattern, data_config(shuffle_buffer=1, use_example_weights=False), is_training=False)
    assert off[F.WEIGHT].tolist() == [1.0] * 6
    train = shared_batch(
        pattern, data_config(shuffle_buffer=1, max_instances=10, aug=AugmentConfig(0.0, 1.0, 1.0)), is_training=True
    )
    assert (
        sorted(train[F.GT_VALID].sum(axis=1).tolist()) == [1, 2, 3, 3, 3, 7] and not train[F.GT_IS_CROWD].any()
    )  # crowd skipped in training


@pytest.mark.parametrize("rpn", [RPNConfig(), RPNConfig(batch_size_per_im=32, box_coding_weights=[10, 10, 5, 5])])
def test_rpn_targets_decode_back_to_each_gt(records, rpn):
    pattern, _ = records
    b = shared_batch(pattern, data_config(max_instances=10), is_training=True, rpn=rpn)
    anchors = generate_anchors(ANCHOR, SIZE)
    for i in range(6):
        scores, deltas = b[F.RPN_SCORE_TARGETS][i], b[F.RPN_BOX_TARGETS][i]
        assert (scores >= 0).sum() == rpn.batch_size_per_im and (scores == 1).sum() <= rpn.batch_size_per_im // 2
        assert set(np.unique(scores)) <= {-1, 0, 1} and np.all(deltas[scores != 1] == 0)
        decoded = decode_boxes(tf.constant(deltas), anchors, weights=rpn.box_coding_weights).numpy()
        gt = boxes_to_input_pixels(b[F.GT_BOXES][i], b[F.IMAGE_INFO][i]).numpy()[b[F.GT_VALID][i]]
        pos = decoded[scores == 1]
        assert len(pos) >= min(len(gt), rpn.batch_size_per_im // 2)
        if len(gt) <= 5:  # all positives fit in the sample: every object has one regressing onto it
            for g in gt:
                assert np.abs(pos - g).max(axis=1).min() < 1e-2, (i, g)


def test_assign_rpn_targets_thresholds_and_sampling():
    anchors = tf.constant(
        [[0, 0, 10, 10], [0, 0, 10, 12], [0, 0, 10, 20], [50, 50, 60, 60], [0, 0, 5, 5], [100, 100, 110, 110]],
        tf.float32,
    )
    gt = tf.constant([[0, 0, 10, 10], [50, 50, 62, 70], [0, 0, 0, 0]], tf.float32)
    valid = tf.constant([True, True, False])
    scores, deltas = assign_rpn_targets(
        anchors,
        gt,
        valid,
        RPNConfig(batch_size_per_im=6, box_coding_weights=[10.0, 10.0, 5.0, 5.0]),
        seed=tf.constant([1, 2]),
    )
    # IoUs: a0=1, a1=10/12 (>=.7), a2=.5 (ignored), a3=100/240 best of gt1 (low-quality positive),
    # a4=.25 (negative), a5=0 (negative).
    assert scores.numpy().tolist() == [1, 1, -1, 1, 0, 0]
    np.testing.assert_allclose(
        decode_boxes(deltas, anchors, weights=(10.0, 10.0, 5.0, 5.0)).numpy()[3], [50, 50, 62, 70], atol=1e-3
    )
    few, _ = assign_rpn_targets(
        anchors, gt, valid, RPNConfig(batch_size_per_im=2, fg_fraction=0.5), seed=tf.constant([3, 4])
    )
    assert (few.numpy() == 1).sum() == 1 and (few.numpy() == 0).sum() == 1
    none, nd = assign_rpn_targets(anchors, gt[:0], valid[:0], RPNConfig(batch_size_per_im=4))
    assert (none.numpy() == 0).sum() == 4 and (none.numpy() == 1).sum() == 0 and np.all(nd.numpy() == 0)


def test_seeded_training_pipeline_is_reproducible(records):
    pattern, _ = records
    a = first_batch(pattern, data_config(), is_training=True, seed=7, batch_size=3)
    b = first_batch(pattern, data_config(), is_training=True, seed=7, batch_size=3)
    c = first_batch(pattern, data_config(), is_training=True, seed=8, batch_size=3)
    assert not np.array_equal(a[F.IMAGE_INFO], c[F.IMAGE_INFO])  # the seed matters
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_input_context_shards_and_bad_sizes(records):
    pattern, _ = records
    seen = []
    for pipe in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipe, num_replicas_in_sync=2)
        ds = build_dataset(pattern, data_config(), is_training=False, batch_size=4, input_context=ctx)
        assert ds.element_spec[F.IMAGE].shape.as_list() == [None, SIZE, SIZE, 3]
        seen.append({s.decode() for b in ds for s in b[F.SOURCE_ID].numpy()})
    assert seen[0].isdisjoint(seen[1]) and len(seen[0] | seen[1]) == 6
    with pytest.raises(ValueError, match="multiple of 2"):
        build_dataset(
            pattern,
            data_config(output_size=100),
            is_training=True,
            batch_size=2,
            train_targets=rpn_targets(data_config(output_size=100)),
        )
    with pytest.raises(FileNotFoundError, match="no TFRecord"):
        build_dataset(pattern + "-nothing", data_config(), is_training=True, batch_size=2)


def test_images_without_instances(tmp_path):
    image, _ = make_scene(0, 70, 90, 1)
    empty = encode_example(image, np.zeros([0, 70, 90], np.uint8), [], [], "00000000000000aa", weight=0.5)
    pattern = write_records(tmp_path / "train-00000-of-00001.tfrecord", [empty, empty])
    b = first_batch(pattern, data_config(), is_training=True, batch_size=2)
    assert not b[F.GT_VALID].any() and b[F.NUM_DROPPED].tolist() == [0, 0] and b[F.WEIGHT].tolist() == [0.5, 0.5]
    assert (b[F.RPN_SCORE_TARGETS] == 1).sum() == 0 and (b[F.RPN_SCORE_TARGETS] == 0).sum() == 2 * 256
    ev = first_batch(pattern, data_config(), is_training=False, batch_size=2)
    assert ev[F.GT_MASKS].shape == (2, 5, 28, 28) and not ev[F.GT_VALID].any()


def test_inconsistent_record_names_its_image():
    image, masks = make_scene(0, 40, 50, 2)
    bad = encode_example(image, masks, [1, 2, 3], ["/m/x"] * 3, "0000000000000bad")
    with pytest.raises(tf.errors.InvalidArgumentError, match="0000000000000bad.*class labels"):
        decode_example(tf.constant(bad))


# ------------------------------------------------------------------------- data_prep's real output
@pytest.mark.slow
def test_reads_prepared_layer_and_matches_its_coco_json(prepared_dir):
    """The pipeline reads `hierseg prepare` shards, and their masks agree with validation_coco.json."""
    from hierseg.evaluation.coco_metric import evaluate_coco
    from hierseg.label_map import LabelMap
    from hierseg.layout import PreparedLayer

    layer = PreparedLayer.of(prepared_dir, 0)
    label_map = LabelMap.load(layer.label_map)
    data = data_config(max_instances=20)
    b = first_batch(layer.shard_pattern("train"), data, is_training=True, batch_size=4)
    valid = b[F.GT_VALID]
    assert valid.any() and np.all(b[F.GT_CLASSES][valid] >= 1) and np.all(b[F.GT_CLASSES][valid] <= len(label_map.mids))
    assert np.all(b[F.GT_BOXES] >= 0) and np.all(b[F.GT_BOXES] <= 1)
    assert b[F.GT_MASKS][valid].mean() > 0.3  # masks cropped to their boxes are mostly inside
    assert (b[F.RPN_SCORE_TARGETS] == 1).any()

    # Ground truth read back from the validation shards is a perfect detection of the COCO JSON.
    with open(layer.validation_coco_json) as f:
        coco = json.load(f)
    detections = []
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(layer.shard_pattern("validation"))))
    for d in records.map(decode_example):
        mids = [label_map.mid_of(int(c)) for c in d["classes"].numpy()]
        masks = d["masks"].numpy()
        detections.append(
            Detections.from_dense(d["source_id"].numpy().decode(), mids, np.ones(len(mids), np.float32), masks)
        )
    # The decoder's source_id is the ImageID (image/filename's stem), the JSON's file_name "<ImageID>.jpg".
    assert {det.image_id for det in detections} == {img["file_name"][: -len(".jpg")] for img in coco["images"]}
    metrics = evaluate_coco(detections, layer.validation_coco_json, label_map)
    assert metrics["mask/AP"] > 0.99, metrics
