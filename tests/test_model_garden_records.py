"""The prepared TFRecords read as they are by a decoder written to TF Model Garden's published key and
type conventions (official/vision/dataloaders/tf_example_decoder.py and its COCO evaluator), without
depending on its package (issue 11, part 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

# Model Garden's TfExampleDecoder(include_mask=True) parsing spec, key by key.
MODEL_GARDEN_KEYS = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string),
    "image/height": tf.io.FixedLenFeature((), tf.int64, -1),
    "image/width": tf.io.FixedLenFeature((), tf.int64, -1),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/area": tf.io.VarLenFeature(tf.float32),
    "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
    "image/object/mask": tf.io.VarLenFeature(tf.string),
    "image/source_id": tf.io.FixedLenFeature((), tf.string),
}


def decode_like_model_garden(serialized: bytes) -> dict:
    """Model Garden's decode(): masks are the PNG values cast to float32, NOT rescaled (without a
    mask_binarize_threshold), and its COCO evaluator turns source_id into a number."""
    parsed = tf.io.parse_single_example(serialized, MODEL_GARDEN_KEYS)
    dense = {
        k: tf.sparse.to_dense(v, default_value="" if v.dtype == tf.string else 0)
        if isinstance(v, tf.SparseTensor)
        else v
        for k, v in parsed.items()
    }
    masks = [
        tf.cast(tf.squeeze(tf.io.decode_png(p, channels=1, dtype=tf.uint8), axis=-1), tf.float32)
        for p in dense["image/object/mask"]
    ]
    return {
        "source_id": int(tf.strings.to_number(dense["image/source_id"], out_type=tf.int64)),
        "height": int(dense["image/height"]),
        "width": int(dense["image/width"]),
        "classes": dense["image/object/class/label"].numpy(),
        "masks": [m.numpy() for m in masks],
    }


def test_records_decode_with_model_garden_conventions(prepared_dir):
    for layer in ("layer0", "layer1"):
        layer_dir = prepared_dir / layer
        coco = json.loads((layer_dir / "validation_coco.json").read_text())
        images = {im["id"]: im for im in coco["images"]}
        ann_count = {}
        for a in coco["annotations"]:
            ann_count[a["image_id"]] = ann_count.get(a["image_id"], 0) + 1
        seen = set()
        for path in sorted(layer_dir.glob("validation-*.tfrecord")):
            for rec in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                d = decode_like_model_garden(rec)
                filename = tf.train.Example.FromString(rec).features.feature["image/filename"].bytes_list.value[0]
                img = images[d["source_id"]]  # the record's source_id is the COCO JSON image id
                assert img["file_name"] == filename.decode()  # "<ImageID>.jpg"
                assert (img["height"], img["width"]) == (d["height"], d["width"])
                assert len(d["masks"]) == len(d["classes"]) == ann_count[d["source_id"]]
                for m in d["masks"]:
                    assert m.shape == (d["height"], d["width"])
                    assert set(np.unique(m).tolist()) <= {0.0, 1.0} and m.max() == 1.0  # usable mask targets
                seen.add(d["source_id"])
        assert seen == set(images), "every COCO JSON image has its record and vice versa"
        assert len(seen) >= 2
