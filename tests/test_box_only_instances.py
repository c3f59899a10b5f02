"""Learn from every box (issue 12 §3): target boxes without a mask are instances with mask_valid = 0.

On the synthetic dataset (which has box-only objects: a bbox-CSV row and no mask row): data preparation
writes them to the train split with an empty mask and ``image/object/mask_valid = 0``; the input
pipeline carries GT_MASK_VALID; the Mask R-CNN trains the RPN and Fast R-CNN on them and leaves them out
of the mask loss. ``box_only_instances: false`` keeps the behaviour before (not written: background).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hierseg import features as F
from hierseg.oid.layout import OidPaths
from tests.test_data_prep import _layer_examples, _plans


def _box_only_rows(synth_dir, split: str) -> pd.DataFrame:
    """bbox-CSV rows of ``split`` without a mask row of the same image, class and box (IsGroupOf 0)."""
    paths = OidPaths.from_dir(str(synth_dir))
    boxes = pd.read_csv(paths.bbox_csv(split), dtype={"ImageID": str})
    masks = pd.read_csv(paths.masks_csv(split), dtype={"ImageID": str})
    key = ["ImageID", "LabelName", "q0", "q1"]
    boxes = boxes.assign(q0=(boxes["XMin"] * 1e5).round(), q1=(boxes["YMin"] * 1e5).round())
    masks = masks.assign(q0=(masks["BoxXMin"] * 1e5).round(), q1=(masks["BoxYMin"] * 1e5).round())
    merged = boxes.merge(masks[key].drop_duplicates(), on=key, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"]


def test_prepare_writes_box_only_instances_with_empty_masks(prepared_dir, synth_dir):
    rows = _box_only_rows(synth_dir, "train")
    ex = _layer_examples(prepared_dir / "layer0")
    found = 0
    for image_id, e in ex.items():
        valid = e["image/object/mask_valid"]
        assert len(valid) == len(e["image/object/class/label"]) == len(e["image/object/mask"])
        for i in np.flatnonzero(valid == 0):
            found += 1
            assert not np.array(Image.open(io.BytesIO(e["image/object/mask"][i]))).any(), "box-only mask is empty"
            own = rows[rows["ImageID"] == image_id]
            box = (e["image/object/bbox/xmin"][i], e["image/object/bbox/ymin"][i])
            assert np.any(np.hypot(own["XMin"] - box[0], own["YMin"] - box[1]) < 1e-5), "box of a bbox row w/o mask"
        assert int(valid.sum()) >= 1, "an image is written for its masks"
    n_group_of = int(rows["IsGroupOf"].sum())
    assert found >= 3 and found <= len(rows), (found, len(rows), n_group_of)
    # Validation keeps only masked instances (the mask metric needs a mask for every ground truth).
    val_ids = set(pd.read_csv(OidPaths.from_dir(str(synth_dir)).masks_csv("validation"), dtype=str)["ImageID"])
    assert all((e["image/object/mask_valid"] == 1).all() for k, e in ex.items() if k in val_ids)


def test_switch_keeps_the_old_behaviour(synth_dir):
    new, _ = _plans(synth_dir)
    old, _ = _plans(synth_dir, box_only_instances=False)
    inst_new = new[0].splits["train"].instances
    inst_old = old[0].splits["train"].instances
    assert (~inst_new["has_mask"]).sum() >= 3
    assert inst_old["has_mask"].all()
    pd.testing.assert_frame_equal(inst_new[inst_new["has_mask"]].reset_index(drop=True), inst_old)
    task = new[0].splits["train"].task(int(np.flatnonzero(~inst_new.groupby("img")["has_mask"].all())[0]))
    assert "" in task.mask_paths and not task.has_mask.all()


@pytest.fixture(scope="module")
def batch_with_box_only(prepared_dir):
    """A training batch (tiny Mask R-CNN at 128 px) holding at least one box-only instance."""
    from hierseg.config.data import AugmentConfig, DataConfig
    from hierseg.config.model import ModelConfig
    from hierseg.input.pipeline import build_dataset
    from hierseg.label_map import LabelMap
    from hierseg.models.factory import build_train_targets

    num_classes = LabelMap.load(str(prepared_dir / "layer0" / "label_map.pbtxt")).num_classes
    config = ModelConfig.tiny(num_classes)
    data = DataConfig(
        output_size=128,
        max_instances=16,
        gt_mask_size=32,
        aug=AugmentConfig(flip_prob=0.0, scale_min=1.0, scale_max=1.0),
        shuffle_buffer=1,
        deterministic=True,
    )
    ds = build_dataset(
        str(prepared_dir / "layer0" / "train-*"),
        data,
        is_training=True,
        batch_size=2,
        seed=0,
        train_targets=build_train_targets(config, 128),
    )
    for batch in ds.take(60):
        if np.any(batch[F.GT_VALID].numpy() & ~batch[F.GT_MASK_VALID].numpy()):
            return config, batch
    pytest.fail("no box-only instance in 60 training batches of the synthetic data")


def test_box_only_instances_are_box_positives_and_not_mask_targets(batch_with_box_only, monkeypatch):
    import tensorflow as tf

    from hierseg.input.anchor_targets import label_anchors
    from hierseg.models import losses
    from hierseg.models import mask_rcnn as mr
    from hierseg.ops.anchors import generate_anchors

    config, batch = batch_with_box_only
    valid = batch[F.GT_VALID].numpy()
    box_only = valid & ~batch[F.GT_MASK_VALID].numpy()  # [B, N]
    assert not batch[F.GT_MASKS].numpy()[box_only].any(), "box-only rows carry an empty mask"

    # RPN: some sampled positive anchors are matched to a box-only box.
    anchors = generate_anchors(config.anchor, 128)
    all_pixels = F.boxes_to_input_pixels(batch[F.GT_BOXES], batch[F.IMAGE_INFO])
    rpn_hits = 0
    for b in range(box_only.shape[0]):
        pixels = all_pixels[b]
        _, matched = label_anchors(anchors, pixels, batch[F.GT_VALID][b] & ~batch[F.GT_IS_CROWD][b], config.rpn)
        pos = batch[F.RPN_SCORE_TARGETS].numpy()[b] == 1
        rpn_hits += int(box_only[b][matched.numpy()[pos]].sum())
    assert rpn_hits > 0, "box-only objects are RPN positives"

    seen = {}
    real_sample, real_mask_loss = mr.sample_rois, losses.mask_loss

    def sample(*args, **kw):
        seen["sampled"] = real_sample(*args, **kw)
        return seen["sampled"]

    def mask_loss(logits, targets, foreground, weights):
        seen["mask_fg"] = foreground
        return real_mask_loss(logits, targets, foreground, weights)

    monkeypatch.setattr(mr, "sample_rois", sample)
    monkeypatch.setattr(losses, "mask_loss", mask_loss)
    tf.keras.utils.set_random_seed(0)
    model = mr.MaskRCNN(config, config.num_classes, 128)
    out = model(dict(batch), training=True)
    assert all(np.isfinite(float(v)) for v in out.values())
    s = seen["sampled"]
    matched = s["matched_index"].numpy()
    fg = s["is_fg"].numpy()
    on_box_only = np.take_along_axis(box_only, matched, axis=1) & fg  # [B, S] fg ROIs of box-only objects
    assert on_box_only.any(), "box-only objects give foreground ROIs (class and box losses)"
    assert (s["classes"].numpy()[on_box_only] > 0).all()
    num_masks = seen["mask_fg"].shape[1]
    mask_fg = seen["mask_fg"].numpy()
    assert not mask_fg[on_box_only[:, :num_masks]].any(), "box-only objects are not in the mask loss"
    masked = np.take_along_axis(valid & ~box_only, matched, axis=1) & fg
    assert mask_fg[masked[:, :num_masks]].all(), "objects with masks still are"
