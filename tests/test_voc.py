"""`hierseg prepare-voc` on a tiny VOC-layout folder written here; the records through the input pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data_prep.voc import VocFormatError, prepare_voc
from hierseg import features as F
from hierseg.label_map import LabelMap
from hierseg_cli.main import main

TRAIN, VAL, AUG_ONLY = ["2007_000032", "2007_000039"], ["2007_000063"], ["2008_000001"]


def _palette() -> list[int]:
    # VOC's colour map (bit-interleaved); only its existence matters: indices are the classes.
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_voc(root: Path, with_aug: bool = True) -> dict[str, np.ndarray]:
    """VOC2012 layout with 4 small images; returns id -> label array."""
    rng = np.random.default_rng(0)
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    labels = {}
    for k, image_id in enumerate(TRAIN + VAL + AUG_ONLY):
        h, w = 40 + 4 * k, 56 - 4 * k
        lab = np.zeros((h, w), np.uint8)
        lab[5:20, 8:30] = 1 + k  # an object of class 1 + k, with a 255 boundary
        lab[4, 8:30] = 255
        labels[image_id] = lab
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        if image_id in AUG_ONLY:
            if with_aug:
                Image.fromarray(lab, mode="L").save(root / "SegmentationClassAug" / f"{image_id}.png")
            continue
        png = Image.fromarray(lab, mode="P")
        png.putpalette(_palette())
        png.save(root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(VAL) + "\n")
    return labels


def read_records(pattern: str) -> dict[str, tf.train.Example]:
    out = {}
    for path in sorted(tf.io.gfile.glob(pattern)):
        for raw in tf.data.TFRecordDataset(path):
            ex = tf.train.Example.FromString(raw.numpy())
            out[ex.features.feature[F.IMAGE_FILENAME].bytes_list.value[0].decode()[: -len(".jpg")]] = ex
    return out


def test_prepare_voc_writes_splits_labels_and_label_map(tmp_path):
    labels = write_voc(tmp_path / "VOC2012")
    out = tmp_path / "out"
    assert main(["prepare-voc", "--voc_dir", str(tmp_path / "VOC2012"), "--out", str(out), "--no_progress"]) == 0
    assert sorted(read_records(str(out / "train-*.tfrecord"))) == sorted(TRAIN)
    assert sorted(read_records(str(out / "validation-*.tfrecord"))) == VAL
    aug = read_records(str(out / "train_aug-*.tfrecord"))
    assert sorted(aug) == sorted(TRAIN + AUG_ONLY)  # Aug-labelled or original, minus val
    for image_id, ex in aug.items():
        f = ex.features.feature
        got = tf.io.decode_png(f[F.SEMANTIC_ENCODED].bytes_list.value[0]).numpy()[:, :, 0]
        np.testing.assert_array_equal(got, labels[image_id])  # palette removed: raw class ids, 255 kept
        assert f[F.IMAGE_HEIGHT].int64_list.value[0] == labels[image_id].shape[0]
        assert len(f[F.OBJECT_CLASS_LABEL].int64_list.value) == 0
    lm = LabelMap.load(str(out / "label_map.pbtxt"))
    assert lm.num_classes == 20 and lm.names[14] == "person"
    # Resumable: a second run keeps the finished shards.
    mtime = (out / "validation-00000-of-00001.tfrecord").stat().st_mtime_ns
    prepare_voc(str(tmp_path / "VOC2012"), str(out), show_progress=False)
    assert (out / "validation-00000-of-00001.tfrecord").stat().st_mtime_ns == mtime


def test_voc_records_through_the_pipeline_give_gt_semantic(tmp_path):
    from hierseg.config.data import DataConfig
    from hierseg.config.deeplab import SemanticTargetConfig
    from hierseg.input.pipeline import build_dataset

    labels = write_voc(tmp_path / "VOC2012", with_aug=False)
    prepare_voc(str(tmp_path / "VOC2012"), str(tmp_path / "out"), show_progress=False)
    data = DataConfig(output_size=64, semantic=SemanticTargetConfig(enabled=True))
    ds = build_dataset(str(tmp_path / "out/validation-*"), data, is_training=False, batch_size=1)
    batch = next(iter(ds))
    got = batch[F.GT_SEMANTIC].numpy()[0]
    lab = labels[VAL[0]]  # 48 x 48 -> scaled 64 x 64 (longer side), nearest
    ys = np.minimum(((np.arange(64) + 0.5) * lab.shape[0] / 64).astype(int), lab.shape[0] - 1)
    xs = np.minimum(((np.arange(64) + 0.5) * lab.shape[1] / 64).astype(int), lab.shape[1] - 1)
    np.testing.assert_array_equal(got, lab[ys][:, xs])


def test_bad_label_png_names_the_file(tmp_path):
    write_voc(tmp_path / "VOC2012")
    bad = tmp_path / "VOC2012/SegmentationClass" / f"{TRAIN[1]}.png"
    Image.fromarray(np.full((44, 52), 42, np.uint8), mode="L").save(bad)
    with pytest.raises(VocFormatError, match=f"{TRAIN[1]}.png: label value 42"):
        prepare_voc(str(tmp_path / "VOC2012"), str(tmp_path / "out"), show_progress=False)
    Image.fromarray(np.zeros((44, 52, 3), np.uint8)).save(bad)
    with pytest.raises(VocFormatError, match="mode RGB"):
        prepare_voc(str(tmp_path / "VOC2012"), str(tmp_path / "out"), show_progress=False)
