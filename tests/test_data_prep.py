"""data_prep: layer assignment, gray fill on pixels, balancing, TFRecord keys, COCO JSON (issue 3).

Runs on the synthetic dataset (``synth_dir``) and its prepared output (``prepared_dir``).
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import annotations as A
from data_prep.balance import cap_images, stochastic_round
from data_prep.config import PrepareConfig
from data_prep.plan import load_tables, plan_layers
from hierseg.config.params import merge
from hierseg.oid.layout import OidPaths

PERSON, MAN, CAR = "/m/01g317", "/m/04yx4", "/m/0k4j"
BROWN_BEAR, CARNIVORE, TEDDY, TOY = "/m/01dxs", "/m/01lrl", "/m/0kmg4", "/m/0138tl"


def _examples(path) -> list[dict]:
    import tensorflow as tf

    from data_prep.tf_example import parsing_spec

    out = []
    for rec in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        ex = tf.io.parse_single_example(rec, parsing_spec())
        out.append(
            {k: (tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy()) for k, v in ex.items()}
        )
    return out


def _layer_examples(layer_dir) -> dict[str, dict]:
    # Keyed by ImageID: image/filename is "<ImageID>.jpg" (image/source_id is the COCO JSON id).
    return {
        e["image/filename"].decode()[: -len(".jpg")]: e
        for p in sorted(layer_dir.glob("*.tfrecord"))
        for e in _examples(p)
    }


def _plans(synth_dir, **overrides):
    paths = OidPaths.from_dir(str(synth_dir))
    h = paths.load_hierarchy()
    cfg = merge(PrepareConfig(), overrides)
    return plan_layers(load_tables(paths, h, cfg), h, cfg), h


# ----------------------------------------------------------------------------------------- layers
def test_layer_roles_on_real_hierarchy(hierarchy):
    layer0, layer1 = hierarchy.layers()
    r0 = A.layer_roles(hierarchy, layer0)
    assert r0[MAN] == (PERSON, "target")
    assert r0[BROWN_BEAR] == (CARNIVORE, "target")
    assert r0[TEDDY] == (TOY, "target")
    assert r0[PERSON] == (PERSON, "target")
    r1 = A.layer_roles(hierarchy, layer1)
    assert r1[MAN] == (MAN, "target") and r1[BROWN_BEAR] == (BROWN_BEAR, "target")
    assert r1[PERSON][1] == "gray" and r1[CAR][1] == "gray" and r1[CARNIVORE][1] == "gray"
    apple = hierarchy.mid_of("Apple")
    assert r1[apple] == (None, "drop")
    assert all(role != "drop" for _, role in r0.values())


def test_relabel_in_prepared_layer0(prepared_dir, synth_dir):
    man = pd.read_parquet(prepared_dir / "layer0" / "manifest.parquet")
    pairs = set(zip(man["source_mid"], man["mid"]))
    assert (MAN, PERSON) in pairs and (BROWN_BEAR, CARNIVORE) in pairs and (TEDDY, TOY) in pairs
    assert set(man["mid"]) <= set(OidPaths.from_dir(str(synth_dir)).load_hierarchy().layers()[0])
    # The TFRecords carry the relabeled class: every Man mask appears as Person.
    ex = _layer_examples(prepared_dir / "layer0")
    row = man[man["source_mid"] == MAN].iloc[0]
    e = ex[row["image_id"]]
    assert PERSON.encode() in list(e["image/object/class/text"]) and MAN.encode() not in list(
        e["image/object/class/text"]
    )


def test_layer1_drops_and_leaves_out_images(prepared_dir, synth_dir):
    paths = OidPaths.from_dir(str(synth_dir))
    h = paths.load_hierarchy()
    layer1 = set(h.layers()[1])
    masks = pd.concat([pd.read_csv(paths.masks_csv(s), dtype=str) for s in ("train", "validation")])
    ex1 = _layer_examples(prepared_dir / "layer1")
    ex0 = _layer_examples(prepared_dir / "layer0")
    has_target = masks.groupby("ImageID")["LabelName"].agg(lambda s: bool(set(s) & layer1))
    no_target = has_target[~has_target].index
    assert len(no_target) > 0, "synthetic data should have images without Layer1 classes"
    for image_id in no_target:
        assert image_id not in ex1
    assert set(no_target) & set(ex0), "those images are still in Layer0"
    for e in ex1.values():
        assert {m.decode() for m in e["image/object/class/text"]} <= layer1
    man1 = pd.read_parquet(prepared_dir / "layer1" / "manifest.parquet")
    assert (man1["source_mid"] == man1["mid"]).all()  # Layer1 never relabels (its classes are all targets)


def test_layer1_gray_fill_on_pixels(prepared_dir, synth_dir):
    paths = OidPaths.from_dir(str(synth_dir))
    ex1 = _layer_examples(prepared_dir / "layer1")
    ex0 = _layer_examples(prepared_dir / "layer0")
    checked = 0
    for split in ("train", "validation"):
        masks = pd.read_csv(paths.masks_csv(split), dtype={"ImageID": str})
        for _, row in masks[masks["LabelName"] == PERSON].iterrows():
            if row["ImageID"] not in ex1:
                continue
            e = ex1[row["ImageID"]]
            img = np.array(Image.open(io.BytesIO(e["image/encoded"])).convert("RGB")).astype(int)
            orig = np.array(Image.open(paths.image_path(split, row["ImageID"])).convert("RGB")).astype(int)
            assert e["image/encoded"] != ex0[row["ImageID"]]["image/encoded"]  # re-encoded in Layer1 only
            h, w = img.shape[:2]
            target = np.zeros((h, w), bool)
            for png in e["image/object/mask"]:
                target |= np.array(Image.open(io.BytesIO(png))) > 0
            box = np.zeros((h, w), bool)
            box[
                math.floor(row["BoxYMin"] * h) : math.ceil(row["BoxYMax"] * h),
                math.floor(row["BoxXMin"] * w) : math.ceil(row["BoxXMax"] * w),
            ] = True
            gray = _erode(box & ~target, 3)
            if gray.sum() < 50:
                continue
            diff = np.abs(img[gray] - 128)
            assert np.median(diff) <= 2 and np.percentile(diff, 95) <= 10, "box area is gray 128"
            assert diff.mean() < 0.4 * np.abs(orig[gray] - 128).mean(), "the original was not already gray there"
            kept = _erode(box & target, 3)
            if kept.sum() >= 20:  # target mask pixels inside the box keep the original image
                assert np.abs(img[kept] - orig[kept]).mean() < 0.4 * np.abs(orig[kept] - 128).mean()
            checked += 1
    assert checked >= 2


def _erode(m: np.ndarray, r: int) -> np.ndarray:
    out = m.copy()
    for _ in range(r):
        out[1:, :] &= out[:-1, :].copy()
        out[:-1, :] &= out[1:, :].copy()
        out[:, 1:] &= out[:, :-1].copy()
        out[:, :-1] &= out[:, 1:].copy()
    return out


# ---------------------------------------------------------------------------------------- balance
def test_cap_images_hand_example():
    # images 0..5; class 1 on images 0-4 (frequent), class 2 on images 4, 5 (rare).
    pair_img = np.array([0, 1, 2, 3, 4, 4, 5])
    pair_cls = np.array([1, 1, 1, 1, 1, 2, 2])
    kept = cap_images(pair_img, pair_cls, 6, cap=2, seed=0)
    # class 2 (rarest) keeps both its images 4 and 5; image 4 already counts for class 1, so class 1 adds one.
    assert kept[4] and kept[5] and kept.sum() == 3
    assert (cap_images(pair_img, pair_cls, 6, cap=2, seed=0) == kept).all()
    assert cap_images(pair_img, pair_cls, 6, cap=10, seed=0).all()


def test_balance_cap_counts(synth_dir):
    plans, _ = _plans(synth_dir, balance={"mode": "cap", "cap": 3})
    for lp in plans:
        rep = lp.splits["train"].report
        assert (rep["images_after"] <= rep["images_before"]).all()
        rare = rep[rep["images_before"] <= 3]
        assert (rare["images_after"] == rare["images_before"]).all(), "rare classes keep all images"
        assert (rep["images_after"] >= np.minimum(rep["images_before"], 3)).all()
        assert rep["images_after"].sum() < rep["images_before"].sum()
        sp = lp.splits["train"]
        # Slow reference: classes rarest first, each tops up to the cap with its not-yet-kept images in
        # the seeded random order.
        inst = sp.instances
        idx = {i: k for k, i in enumerate(sp.images)}
        priority = np.random.default_rng([0, 1]).permutation(len(sp.images))
        per_class = {
            c: sorted({idx[i] for i in g}, key=lambda k: priority[k]) for c, g in inst.groupby("class_id")["image_id"]
        }
        kept: set[int] = set()
        for c in sorted(per_class, key=lambda c: (len(per_class[c]), c)):
            need = 3 - len(kept & set(per_class[c]))
            for k in per_class[c]:
                if need <= 0:
                    break
                if k not in kept:
                    kept.add(k)
                    need -= 1
        assert set(np.flatnonzero(sp.balanced.copies)) == kept
        assert lp.splits["validation"].balanced.copies.min() == 1, "validation is never balanced"
    again, _ = _plans(synth_dir, balance={"mode": "cap", "cap": 3})
    assert (again[0].splits["train"].balanced.copies == plans[0].splits["train"].balanced.copies).all()


def test_balance_repeat_factor_matches_hand_computation(synth_dir):
    t = 0.3
    plans, _ = _plans(synth_dir, balance={"mode": "repeat_factor", "repeat_threshold": t, "realize": "weights"})
    sp = plans[0].splits["train"]
    images = list(sp.images)
    classes_of = {i: set(sp.instances.loc[sp.instances["image_id"] == i, "class_id"]) for i in images}
    n = len(images)
    freq = {}
    for cs in classes_of.values():
        for c in cs:
            freq[c] = freq.get(c, 0) + 1
    r_c = {c: max(1.0, math.sqrt(t / (k / n))) for c, k in freq.items()}
    expected = np.array([max(r_c[c] for c in classes_of[i]) for i in images])
    np.testing.assert_allclose(sp.balanced.weights, expected, rtol=1e-6)
    assert (sp.balanced.copies == 1).all() and expected.max() > 1.5
    np.testing.assert_allclose(sp.examples.sort_values("image_index")["weight"], expected, rtol=1e-6)

    plans_s, _ = _plans(synth_dir, balance={"mode": "repeat_factor", "repeat_threshold": t, "realize": "shards"})
    sps = plans_s[0].splits["train"]
    copies = sps.balanced.copies
    assert ((copies == np.floor(expected)) | (copies == np.ceil(expected))).all()
    assert len(sps.examples) == copies.sum() and (sps.examples["weight"] == 1.0).all()
    big = stochastic_round(np.full(20000, 1.25), seed=1)
    assert abs(big.mean() - 1.25) < 0.02 and set(np.unique(big)) == {1, 2}


def test_balance_none_keeps_everything(synth_dir):
    plans, _ = _plans(synth_dir, balance={"mode": "none"})
    for lp in plans:
        for sp in lp.splits.values():
            assert (sp.balanced.copies == 1).all() and len(sp.examples) == len(sp.images)
            assert (sp.report["images_after"] == sp.report["images_before"]).all()


def test_balance_report_files(prepared_dir):
    rep = pd.read_csv(prepared_dir / "layer0" / "balance_train.csv")
    assert list(rep.columns)[:7] == [
        "class_id",
        "mid",
        "name",
        "instances_before",
        "images_before",
        "instances_after",
        "images_after",
    ]
    assert Image.open(prepared_dir / "layer0" / "balance_train.png").format == "PNG"


# ---------------------------------------------------------------------------------- output files
def test_tfrecord_exact_keys(prepared_dir):
    """The OD API / Model Garden keys, spelled out: this is the contract with external readers."""
    import tensorflow as tf

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/source_id": tf.io.FixedLenFeature([], tf.string),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64),
        "image/object/class/text": tf.io.VarLenFeature(tf.string),
        "image/object/is_crowd": tf.io.VarLenFeature(tf.int64),
        "image/object/mask": tf.io.VarLenFeature(tf.string),
        "image/object/mask_valid": tf.io.VarLenFeature(tf.int64),  # issue 12: 0 = box-only instance
        "image/weight": tf.io.FixedLenFeature([], tf.float32),
    }
    path = sorted((prepared_dir / "layer1").glob("train-*.tfrecord"))[0]
    rec = next(iter(tf.data.TFRecordDataset(str(path))))
    keys = set(tf.train.Example.FromString(rec.numpy()).features.feature)
    assert keys == set(spec) | {"image/key/sha256"}
    ex = tf.io.parse_single_example(rec, spec)
    h, w = int(ex["image/height"]), int(ex["image/width"])
    img = tf.io.decode_image(ex["image/encoded"], channels=3)
    assert img.shape == (h, w, 3) and ex["image/format"].numpy() in (b"jpeg", b"png")
    n = ex["image/object/class/label"].values.shape[0]
    assert n >= 1
    for k in ("xmin", "xmax", "ymin", "ymax"):
        v = ex[f"image/object/bbox/{k}"].values.numpy()
        assert v.shape == (n,) and (v >= 0).all() and (v <= 1).all()
    labels = ex["image/object/class/label"].values.numpy()
    assert (labels >= 1).all() and (labels <= 10).all()
    for png in ex["image/object/mask"].values.numpy():
        m = tf.io.decode_png(png).numpy()
        assert m.shape[:2] == (h, w) and set(np.unique(m)) <= {0, 1}  # Model Garden's 0/1 convention


def test_label_map_and_prepare_json(prepared_dir, synth_dir):
    from hierseg.label_map import LabelMap

    h = OidPaths.from_dir(str(synth_dir)).load_hierarchy()
    for i, layer in enumerate(h.layers()):
        lm = LabelMap.load(str(prepared_dir / f"layer{i}" / "label_map.pbtxt"))
        assert lm.mids == layer
        info = json.loads((prepared_dir / f"layer{i}" / "prepare.json").read_text())
        assert info["layer"] == i and info["config"]["balance"]["mode"] == "cap"
        written = sum(1 for p in (prepared_dir / f"layer{i}").glob("train-*.tfrecord") for _ in _examples(p))
        assert info["splits"]["train"]["examples_written"] == written


def test_validation_coco_json(prepared_dir, synth_dir):
    from pycocotools.coco import COCO

    paths = OidPaths.from_dir(str(synth_dir))
    coco = COCO(str(prepared_dir / "layer1" / "validation_coco.json"))
    assert len(coco.getImgIds()) >= 1 and len(coco.getAnnIds()) >= 1
    cats = coco.loadCats(coco.getCatIds())
    assert all("mid" in c for c in cats) and cats[0]["id"] == 1
    for img in coco.loadImgs(coco.getImgIds()):
        assert img["file_name"].endswith(".jpg") and "source_id" not in img  # plain COCO
        w, hgt = Image.open(paths.image_path("validation", img["file_name"][: -len(".jpg")])).size
        assert (img["height"], img["width"]) == (hgt, w)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            assert isinstance(ann["segmentation"]["counts"], str)
            m = coco.annToMask(ann)
            assert m.shape == (hgt, w) and m.sum() == ann["area"] > 0


def test_held_out_validation_when_no_validation_files(synth_dir, tmp_path):
    import shutil

    data = tmp_path / "oid"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns("*validation*"))
    paths = OidPaths.from_dir(str(data))
    h = paths.load_hierarchy()
    cfg = merge(PrepareConfig(), {"validation_fraction": 0.25})
    tables = load_tables(paths, h, cfg)
    train, val = tables["train"], tables["validation"]
    assert val.source_split == "train" and train.source_split == "train"
    n_train, n_val = train.masks["ImageID"].nunique(), val.masks["ImageID"].nunique()
    assert set(train.masks["ImageID"]).isdisjoint(val.masks["ImageID"])
    assert abs(n_val / (n_train + n_val) - 0.25) < 0.05
    again = load_tables(paths, h, cfg)["validation"]
    assert set(again.masks["ImageID"]) == set(val.masks["ImageID"])


def test_attach_group_of_matches_boxes_by_coordinates():
    masks = pd.DataFrame(
        {
            "MaskPath": ["a.png", "b.png", "c.png"],
            "ImageID": ["0001", "0001", "0002"],
            "LabelName": ["/m/x", "/m/x", "/m/y"],
            "BoxXMin": [0.1, 0.5, 0.1],
            "BoxXMax": [0.2, 0.6, 0.2],
            "BoxYMin": [0.1, 0.5, 0.1],
            "BoxYMax": [0.3, 0.7, 0.3],
        }
    )
    boxes = pd.DataFrame(
        {
            "ImageID": ["0001", "0001", "0002"],
            "LabelName": ["/m/x", "/m/x", "/m/x"],
            "XMin": [0.1, 0.5, 0.1],
            "XMax": [0.2, 0.6, 0.2],
            "YMin": [0.1, 0.5, 0.1],
            "YMax": [0.3, 0.7000001, 0.3],
            "IsGroupOf": [False, True, True],
        }
    )
    out = A.attach_group_of(masks, boxes)
    # b matches its box within 1e-5; c's box is of another class, so it stays False.
    assert out["IsGroupOf"].tolist() == [False, True, False]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_example_bytes_equal_tensorflow_serialization(n):
    """build_example's TF-free messages serialize exactly as tf.train.Example does."""
    import tensorflow as tf

    from data_prep.tf_example import build_example

    rng = np.random.default_rng(n)
    ex = build_example(
        image=rng.bytes(100),
        image_format="jpeg",
        height=7,
        width=9,
        source_id="17",
        filename="00ab12cd34ef5678.jpg",
        boxes=rng.random((n, 4)).astype(np.float32),
        class_ids=rng.integers(1, 300, n),
        mids=[f"/m/{i:03d}" for i in range(n)],
        is_crowd=rng.random(n) < 0.5,
        mask_pngs=[rng.bytes(20) for _ in range(n)],
        weight=1.7,
    )
    data = ex.SerializeToString(deterministic=True)
    parsed = tf.train.Example.FromString(data)
    assert parsed.SerializeToString(deterministic=True) == data
    assert parsed.features.feature["image/height"].int64_list.value == [7]
    assert len(parsed.features.feature["image/object/mask"].bytes_list.value) == n


def test_tfrecord_writer_matches_tensorflow(tmp_path):
    import tensorflow as tf

    from data_prep.tfrecord import TFRecordWriter, read_records

    rng = np.random.default_rng(0)
    records = [rng.bytes(int(k)) for k in rng.integers(0, 3000, 20)] + [b""]
    ours, theirs = tmp_path / "ours.tfrecord", tmp_path / "tf.tfrecord"
    w = TFRecordWriter(str(ours))
    for r in records:
        w.write(r)
    w.close()
    with tf.io.TFRecordWriter(str(theirs)) as tw:
        for r in records:
            tw.write(r)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records
    assert list(read_records(ours.read_bytes())) == records
    broken = bytearray(ours.read_bytes())
    broken[40] ^= 0xFF
    with pytest.raises(ValueError, match="corrupt"):
        list(read_records(bytes(broken), "x.tfrecord"))


def test_manifest_matches_examples_slow_reference(synth_dir):
    from data_prep.plan import manifest

    plans, _ = _plans(synth_dir, balance={"mode": "repeat_factor", "repeat_threshold": 0.5})
    man = manifest(plans)
    for lp in plans:
        for split, sp in lp.splits.items():
            # A multiset: box-only instances (issue 12) all have mask_path "".
            expected = Counter()
            for _, ex in sp.examples.iterrows():
                image_id = sp.images[int(ex["image_index"])]
                for _, r in sp.instances[sp.instances["image_id"] == image_id].iterrows():
                    expected[(r["mask_path"], r["mid"], int(ex["shard"]), int(ex["copy"]))] += 1
            got = man[(man["layer"] == lp.layer) & (man["split"] == split)]
            assert len(got) == sum(expected.values())
            assert Counter(zip(got["mask_path"], got["mid"], got["shard"], got["copy"])) == expected
    assert (man["copy"] > 0).any(), "some images are repeated"
