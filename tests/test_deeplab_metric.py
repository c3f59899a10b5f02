"""Confusion-matrix mIoU and hierarchical mIoU against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.evaluation.semantic_metric import ConfusionMatrix, HierarchicalConfusion, confusion_matrix, iou_table


def test_miou_hand_case():
    # True 255 is ignored; class 3 never occurs (no IoU); a prediction 9 is out of range (a miss).
    labels = np.array([[0, 0, 1, 0], [1, 2, 255, 2]])
    preds = np.array([[0, 1, 1, 9], [1, 1, 0, 2]])
    cm = ConfusionMatrix(num_classes=4, ignore_label=255)
    cm.update(labels[:1], preds[:1])  # two batches accumulate
    cm.update(labels[1:], preds[1:])
    # Pixels: t0p0, t0p1, t1p1, t0p9(miss), t1p1, t2p1, t2p2.
    np.testing.assert_array_equal(cm.matrix[:3, :3], [[1, 1, 0], [0, 2, 0], [0, 1, 1]])
    r = cm.result()
    # IoU0 = 1 / (3 + 1 - 1); IoU1 = 2 / (2 + 4 - 2); IoU2 = 1 / (2 + 1 - 1); class 3: no IoU.
    np.testing.assert_allclose(r.iou[:3], [1 / 3, 1 / 2, 1 / 2])
    assert np.isnan(r.iou[3])
    assert r.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    assert r.pixel_accuracy == pytest.approx(4 / 7)
    np.testing.assert_array_equal(r.gt_pixels, [3, 2, 2, 0])
    np.testing.assert_array_equal(r.pred_pixels, [1, 4, 1, 0])
    table = iou_table(r, ["background", "cat", "dog", "cow"])
    assert (
        "cat" in table
        and "50.00" in table
        and "33.33" in table
        and table.splitlines()[4].split() == ["cow", "-", "0", "0"]
    )
    d = r.as_dict(["background", "cat", "dog", "cow"])
    assert d["semantic/mIoU"] == pytest.approx(r.miou) and "semantic/IoU/cow" not in d


def test_confusion_matrix_matches_loop_on_random_input():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (3, 17, 9))
    labels[rng.random(labels.shape) < 0.1] = 255
    preds = rng.integers(0, 5, labels.shape)
    m, missed = confusion_matrix(labels, preds, 5, 255)
    ref = np.zeros((5, 5), int)
    ref_missed = np.zeros(5, int)
    for t, p in zip(labels.ravel(), preds.ravel()):
        if t < 5:
            ref[t, p] += 1
    np.testing.assert_array_equal(m, ref)
    np.testing.assert_array_equal(missed, ref_missed)


def test_hierarchical_miou_counts_each_level_of_the_path():
    # Level 0: 0 background, 1 Person. Level 1: 1 Man, 2 Woman; true 255 = the path stops, predicted 0 = stops.
    true = np.array([[[1, 1, 1, 0]], [[1, 1, 255, 255]]])  # (Person, Man) x2, (Person), background
    pred = np.array([[[1, 1, 1, 0]], [[2, 0, 1, 0]]])  # (Person, Woman), (Person), (Person, Man), background
    h = HierarchicalConfusion([2, 3], 255)
    h.update(true, pred)
    out = h.result()
    assert out["levels"][0]["mIoU"] == pytest.approx(1.0)  # level 0 all correct
    # Level 1 over the two pixels whose true path reaches it (both Man): predicted Woman and "stop".
    # IoU Man = 0 / 2, Woman = 0 / 1; the stop id 0 is no class.
    assert out["levels"][1]["mIoU"] == pytest.approx(0.0)
    assert out["levels"][1]["pixel_accuracy"] == pytest.approx(0.0)
    assert out["hierarchical_mIoU"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    h2 = HierarchicalConfusion([2, 3], 255)
    h2.update(true, np.array([[[1, 1, 1, 0]], [[1, 0, 1, 0]]]))  # one Man right, one missed
    assert h2.result()["hierarchical_mIoU"] == pytest.approx((1 + 1 + 0.5) / 3)
