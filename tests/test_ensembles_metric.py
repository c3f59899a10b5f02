"""The challenge metric against hand-computed cases written from the specification (official
per_image_evaluation / metrics semantics), plus the AP envelope against its reference."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles.metric import ImageGroundTruth, OidChallengeEvaluator, average_precision, precision_recall
from ensembles.metric.average_precision import average_precision_reference
from ensembles.submission import instance_classes
from hierseg.detections import Detections
from hierseg.oid.mask_codec import encode_rle
from hierseg.rle import rle_boxes, tight_boxes

H = W = 20


def rect(y0: int, x0: int, y1: int, x1: int) -> dict:
    """RLE of rows y0..y1-1, cols x0..x1-1 of a 20x20 image."""
    m = np.zeros([H, W], bool)
    m[y0:y1, x0:x1] = True
    return encode_rle(m)


def nbox(y0, x0, y1, x1):
    return [y0 / H, x0 / W, y1 / H, x1 / W]


def gt(image_id, instances=(), pos=(), neg=()):
    """instances: (mid, rect tuple or None, box tuple, is_group_of)."""
    classes = [i[0] for i in instances]
    rles = [rect(*i[1]) if i[1] is not None else None for i in instances]
    boxes = [nbox(*(i[2] if i[2] is not None else i[1])) for i in instances]
    return ImageGroundTruth.from_annotations(
        image_id, H, W, classes, np.asarray(boxes).reshape([-1, 4]), rles, [i[3] for i in instances], pos, neg
    )


def dets(image_id, items):
    """items: (mid, score, rect tuple)."""
    rles = [rect(*r) for _, _, r in items]
    return Detections(
        image_id, H, W, [m for m, _, _ in items], [s for _, s, _ in items], rle_boxes(rles).astype(np.float32), rles
    )


def run(hierarchy, gts, preds, **kw):
    ev = OidChallengeEvaluator(hierarchy, **kw)
    for g in gts:
        ev.add_ground_truth(g)
    ev.add_predictions(preds)
    return ev.evaluate()


@pytest.fixture(scope="module")
def mids(hierarchy):
    return {
        n: hierarchy.mid_of(n)
        for n in ["Person", "Man", "Coin", "Dog", "Carnivore", "Teddy bear", "Toy", "Bear", "Brown bear", "Flag"]
    }


# ------------------------------------------------------------------------------------------ AP
def test_average_precision_hand_computed():
    # Ranked TP/FP = 1 0 1 0 0 1 with 4 ground truth:
    # precision 1, 1/2, 2/3, 1/2, 2/5, 1/2; recall 1/4, 1/4, 1/2, 1/2, 1/2, 3/4.
    # Envelope at the recall steps: 1 (to 1/4), 2/3 (to 1/2), 1/2 (to 3/4) -> AP = (1 + 2/3 + 1/2) / 4.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 0, 1, 0, 0, 1], float)
    p, r = precision_recall(scores[::-1], labels[::-1], 4)  # input order must not matter
    np.testing.assert_allclose(p, [1, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2])
    np.testing.assert_allclose(r, [1 / 4, 1 / 4, 1 / 2, 1 / 2, 1 / 2, 3 / 4])
    assert average_precision(p, r) == pytest.approx((1 + 2 / 3 + 1 / 2) / 4)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="exceed"):
        precision_recall(scores, np.ones(6), 4)


def test_average_precision_matches_reference_loop():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        labels = (rng.random(n) < 0.5).astype(float)
        p, r = precision_recall(rng.random(n), labels, labels.sum() + rng.integers(1, 5))
        assert average_precision(p, r) == pytest.approx(average_precision_reference(p, r), abs=1e-12)


# --------------------------------------------------------------------------- per-image semantics
def test_duplicates_are_false_positives_and_parents_are_not_predicted(hierarchy, mids):
    man, person = mids["Man"], mids["Person"]
    g = gt("img0", [(man, (0, 0, 5, 5), None, False), (man, (10, 10, 15, 15), None, False)])
    d = dets(
        "img0",
        [
            (man, 0.9, (0, 0, 5, 5)),
            (man, 0.8, (0, 0, 5, 5)),  # TP, duplicate FP
            (man, 0.7, (0, 10, 5, 15)),  # nothing there: FP
            (man, 0.6, (10, 10, 15, 15)),
        ],
    )  # TP
    m = run(hierarchy, [g], [d])
    # precision 1, 1/2, 1/3, 1/2 at recall 1/2, 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 1/2.
    assert m["per_class"][man] == pytest.approx(0.75)
    # The ground truth expands to Person (2 instances) but predictions are not expanded: AP 0.
    assert m["per_class"][person] == 0.0 and m["num_gt"][person] == 2
    assert m["mAP"] == pytest.approx(0.375)


def test_iou_threshold_is_inclusive_at_half(hierarchy, mids):
    coin = mids["Coin"]
    g = gt("a", [(coin, (0, 0, 10, 10), None, False)])
    half = dets("a", [(coin, 0.9, (0, 0, 10, 5)), (coin, 0.8, (0, 5, 10, 10))])  # IoU exactly 0.5 each
    m = run(hierarchy, [g], [half])
    assert m["per_class"][coin] == 1.0  # first TP, second a duplicate FP ranked after it


@pytest.mark.parametrize("weight, expected_ap, expected_num_gt", [(1.0, 0.5 + 0.5 * 2 / 3, 2.0), (0.0, 1.0, 1.0)])
def test_group_of_regions(hierarchy, mids, weight, expected_ap, expected_num_gt):
    coin = mids["Coin"]
    g = gt("g", [(coin, (0, 0, 5, 5), None, False), (coin, (10, 0, 20, 20), None, True)])
    d = dets(
        "g",
        [
            (coin, 0.9, (0, 0, 5, 5)),  # TP on the instance
            (coin, 0.85, (0, 10, 5, 15)),  # FP
            (coin, 0.8, (12, 2, 15, 5)),
            (coin, 0.7, (15, 2, 18, 5)),
        ],
    )  # inside the group-of region
    m = run(hierarchy, [g], [d], group_of_weight=weight)
    # weight 1: entries 0.9 TP, 0.85 FP, one group TP at 0.8 (max of its two); 2 ground truth ->
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP 1/2 + 1/2 * 2/3.
    # weight 0: the region only removes its detections: 0.9 TP, 0.85 FP, 1 ground truth -> AP 1.
    assert m["num_gt"][coin] == expected_num_gt
    assert m["per_class"][coin] == pytest.approx(expected_ap)
    assert m["num_detections"][coin] == (3 if weight else 2)


def test_group_of_needs_half_of_the_detection_inside(hierarchy, mids):
    coin = mids["Coin"]
    g = gt("g", [(coin, (10, 0, 20, 20), None, True)])
    # 25 pixels, 10 of them inside the region: IoA 0.4 -> a FP, ranked above the group TP at 0.5.
    d = dets("g", [(coin, 0.9, (7, 0, 12, 5)), (coin, 0.5, (14, 14, 16, 16))])
    m = run(hierarchy, [g], [d])
    # ranked: FP (0.9), group TP (0.5): precision 0, 1/2 at recall 0, 1 -> AP 1/2.
    assert m["per_class"][coin] == pytest.approx(0.5)


# ------------------------------------------------------------ issue 10: adversarial submissions
def test_ioa_of_exactly_half_matches_the_group_of_region(hierarchy, mids):
    # Case 1. 100 pixels, 50 inside the region: IoA = 50 / (100 + 1e-7) in the official float32 = 0.5.
    coin = mids["Coin"]
    g = gt("g", [(coin, (10, 0, 20, 20), None, True)])
    d = dets("g", [(coin, 0.9, (5, 0, 15, 10))])
    m = run(hierarchy, [g], [d])
    # matched: one group TP, 1 ground truth -> precision 1 at recall 1 -> AP 1 (a miss would be a FP: AP 0).
    assert m["per_class"][coin] == 1.0 and m["mAP"] == 1.0


def test_tied_scores_rank_the_same_whatever_the_row_order(hierarchy, mids):
    # Case 2. Image "a" has a TP at 0.5, image "b" a FP at 0.5; 2 ground truth instances.
    coin = mids["Coin"]
    gts = [gt(i, [(coin, (0, 0, 10, 10), None, False)]) for i in ("a", "b")]
    preds = {"a": dets("a", [(coin, 0.5, (0, 0, 10, 10))]), "b": dets("b", [(coin, 0.5, (12, 12, 20, 20))])}
    forward = run(hierarchy, gts, [preds["a"], preds["b"]])["mAP"]
    backward = run(hierarchy, gts, [preds["b"], preds["a"]])["mAP"]
    assert forward == backward
    # The official joins images in ImageID order ([TP of a, FP of b]) and ranks by argsort reversed:
    # FP first gives precision 0, 1/2 at recall 0, 1/2 -> AP 1/4; TP first: 1, 1/2 at 1/2, 1/2 -> 1/2.
    fp_first = np.argsort(np.array([0.5, 0.5]))[::-1][0] == 1
    assert forward == (0.25 if fp_first else 0.5)


def test_scores_keep_float64_precision(hierarchy, mids, tmp_path):
    # Case 3. A TP at 0.500000002 above a FP at 0.500000001 (equal in float32), read from a CSV.
    from ensembles.prediction_io import read_predictions
    from hierseg.oid.mask_codec import oid_mask_from_rle

    coin = mids["Coin"]
    tp, fp = oid_mask_from_rle(rect(0, 0, 10, 10)), oid_mask_from_rle(rect(12, 12, 20, 20))
    path = tmp_path / "sub.csv"
    path.write_text(
        f"ImageID,ImageWidth,ImageHeight,PredictionString\na,{W},{H},{coin} 0.500000001 {fp} {coin} 0.500000002 {tp}\n"
    )
    preds = list(read_predictions(str(path)))
    assert preds[0].scores.dtype == np.float64 and preds[0].scores[1] > preds[0].scores[0]
    m = run(hierarchy, [gt("a", [(coin, (0, 0, 10, 10), None, False)])], preds)
    assert m["per_class"][coin] == 1.0  # TP first: precision 1 at recall 1 (the FP after it does not lower AP)


def test_three_hundred_masks_in_one_image(hierarchy, mids):
    # Case 4 (pycocotools' area() overflowed at 256 masks). 300 one-pixel instances; 200 exact
    # detections ranked above 100 detections on the 100 pixels no instance covers.
    coin = mids["Coin"]
    pixels = [(k // W, k % W) for k in range(H * W)]
    g = gt("a", [(coin, (y, x, y + 1, x + 1), None, False) for y, x in pixels[:300]])
    items = [(coin, 0.9 - k * 1e-4, (y, x, y + 1, x + 1)) for k, (y, x) in enumerate(pixels[:200])]
    items += [(coin, 0.5 - k * 1e-4, (y, x, y + 1, x + 1)) for k, (y, x) in enumerate(pixels[300:])]
    m = run(hierarchy, [g], [dets("a", items)])
    # precision 1 up to recall 200/300, then only FPs -> AP 2/3.
    assert m["num_gt"][coin] == 300 and m["num_detections"][coin] == 300
    assert m["per_class"][coin] == pytest.approx(2 / 3, abs=1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5])
def test_bad_scores_are_an_error(hierarchy, mids, bad):
    # Case 6 (in memory; the files' readers name file and line, see test_prediction_file.py).
    coin = mids["Coin"]
    d = dets("a", [(coin, 0.9, (0, 0, 10, 10)), (coin, bad, (12, 12, 20, 20))])
    with pytest.raises(ValueError, match="image a: instance 1: score .* is not a number in \\[0, 1\\]"):
        run(hierarchy, [gt("a", [(coin, (0, 0, 10, 10), None, False)])], [d])


def test_unknown_classes_are_dropped_and_counted(hierarchy, mids):
    # Case 6, second half: the official drops classes outside its label map; here they are counted.
    coin = mids["Coin"]
    d = dets("a", [(coin, 0.9, (0, 0, 10, 10)), ("/m/not_a_class", 0.95, (0, 0, 10, 10))])
    m = run(hierarchy, [gt("a", [(coin, (0, 0, 10, 10), None, False)])], [d])
    assert m["mAP"] == 1.0
    assert m["unknown_classes"] == {"/m/not_a_class": 1} and m["num_unknown_class_predictions"] == 1


def test_negative_labels_make_false_positives_and_unverified_classes_are_ignored(hierarchy, mids):
    dog, carnivore, man = mids["Dog"], mids["Carnivore"], mids["Man"]
    g1 = gt("i1", [(dog, (0, 0, 5, 5), None, False)], pos=[dog])
    g2 = gt("i2", neg=[carnivore])  # expands down: Dog is verified absent here
    g3 = gt("i3", [(man, (0, 0, 5, 5), None, False)], pos=[man])  # Dog not verified here
    preds = [
        dets("i1", [(dog, 0.5, (0, 0, 5, 5))]),
        dets("i2", [(dog, 0.95, (0, 0, 5, 5))]),
        dets("i3", [(dog, 0.99, (0, 0, 5, 5))]),
        dets("no_gt", [(dog, 0.999, (0, 0, 5, 5))]),
    ]  # an image without ground truth: ignored
    m = run(hierarchy, [g1, g2, g3], preds)
    # Dog: 0.95 FP (negative), 0.5 TP; 0.99 and 0.999 ignored -> precision 0, 1/2 at recall 0, 1 -> 1/2.
    assert m["per_class"][dog] == pytest.approx(0.5)
    assert m["num_detections"][dog] == 2
    assert m["num_images_without_ground_truth"] == 1
    # Without the negative label, the i2 detection is ignored too.
    m = run(hierarchy, [g1, gt("i2"), g3], preds)
    assert m["per_class"][dog] == 1.0


def test_verified_positive_without_ground_truth_counts_false_positives(hierarchy, mids):
    dog = mids["Dog"]
    m = run(
        hierarchy,
        [gt("i1", [(dog, (0, 0, 5, 5), None, False)]), gt("i2", pos=[dog])],
        [dets("i1", [(dog, 0.5, (0, 0, 5, 5))]), dets("i2", [(dog, 0.9, (0, 0, 5, 5))])],
    )
    assert m["per_class"][dog] == pytest.approx(0.5)


def test_boxes_without_masks_are_not_counted_and_their_detections_ignored(hierarchy, mids):
    coin = mids["Coin"]
    g = gt(
        "b",
        [
            (coin, (0, 0, 5, 5), None, False),
            (coin, None, (10, 10, 20, 20), False),  # box only
            (coin, None, (0, 10, 10, 20), True),
        ],
    )  # box-only group-of region
    on_box = (coin, 0.9, (10, 10, 20, 20))
    in_group_box = [(coin, 0.95, (1, 11, 4, 14)), (coin, 0.85, (5, 15, 9, 19))]
    tp = (coin, 0.7, (0, 0, 5, 5))
    m = run(hierarchy, [g], [dets("b", [on_box, tp, *in_group_box])])
    assert m["num_gt"][coin] == 1.0  # neither box counts
    assert m["per_class"][coin] == 1.0  # the detections on them are ignored, no group TP either
    assert m["num_detections"][coin] == 1
    # As the official code does, only the first detection on a box-only instance is ignored: a second
    # one (box IoU 0.9) is a false positive: 0.8 FP, 0.7 TP -> AP 1/2.
    second = (coin, 0.8, (11, 10, 20, 20))
    m = run(hierarchy, [g], [dets("b", [on_box, second, tp])])
    assert m["per_class"][coin] == pytest.approx(0.5)


def test_two_parent_class_expands_to_every_ancestor(hierarchy, mids):
    teddy = mids["Teddy bear"]
    g = gt("t", [(teddy, (2, 2, 12, 12), None, False)], pos=[teddy])
    plain = dets("t", [(teddy, 0.9, (2, 2, 12, 12))])
    m = run(hierarchy, [g], [plain])
    expected = {teddy: 1.0, mids["Toy"]: 0.0, mids["Bear"]: 0.0, mids["Carnivore"]: 0.0}
    assert m["per_class"] == expected
    assert m["mAP"] == pytest.approx(0.25)
    # Submitted once per class of the instance and its ancestors (what write_submission does): all 1.
    classes = instance_classes(hierarchy, teddy, (mids["Toy"], teddy))
    assert set(classes) == set(expected)
    copies = dets("t", [(c, 0.9, (2, 2, 12, 12)) for c in classes])
    m = run(hierarchy, [g], [copies])
    assert m["mAP"] == 1.0 and set(m["per_class"]) == set(expected)


def test_size_mismatch_and_duplicate_images_raise(hierarchy, mids):
    coin = mids["Coin"]
    ev = OidChallengeEvaluator(hierarchy)
    ev.add_ground_truth(gt("s", [(coin, (0, 0, 5, 5), None, False)]))
    m = np.zeros([10, 10], bool)
    m[:5, :5] = True
    with pytest.raises(ValueError, match="original resolution"):
        ev.add_predictions([Detections.from_dense("s", [coin], [0.5], m[None])])
    with pytest.raises(ValueError, match="twice"):
        ev.add_predictions([dets("s", [])])


# -------------------------------------------------------------------------------- round trips
def random_ground_truth(hierarchy, rng, num_images, classes):
    out = []
    for i in range(num_images):
        instances = []
        for _ in range(int(rng.integers(1, 5))):
            y, x = rng.integers(0, 15, size=2)
            instances.append((classes[int(rng.integers(len(classes)))], (y, x, y + 5, x + 5), None, False))
        out.append(gt(f"r{i:03d}", instances, pos=sorted({c for c, *_ in instances})))
    return out


def test_perfect_predictions_score_one_and_a_removed_class_the_computed_value(hierarchy, mids):
    """In memory: ground truth -> perfect submission (ancestor copies) -> mAP 1.0; then one class
    dropped: its AP becomes 0 and every ancestor's AP the share of its instances still predicted."""
    from ensembles.metric.groundtruth import ground_truth_as_detections

    rng = np.random.default_rng(3)
    leaves = [mids[n] for n in ("Man", "Coin", "Dog", "Brown bear", "Teddy bear", "Flag")]
    gts = random_ground_truth(hierarchy, rng, 12, leaves)

    def submitted(drop=()):
        for g in gts:
            d = ground_truth_as_detections(g, drop_classes=drop)
            copies = [
                (c, float(s), r)
                for k, (s, r) in enumerate(zip(d.scores, d.rles))
                for c in instance_classes(hierarchy, d.classes[k])
            ]
            yield Detections(
                g.image_id,
                H,
                W,
                [c for c, _, _ in copies],
                [s for _, s, _ in copies],
                rle_boxes([r for *_, r in copies]).astype(np.float32),
                [r for *_, r in copies],
            )

    m = run(hierarchy, gts, submitted(), num_workers=2)
    assert m["mAP"] == 1.0
    classes = set(m["per_class"])
    assert classes == {c for leaf in leaves for c in hierarchy.expand_positive(leaf)}

    dropped = mids["Brown bear"]
    count = {
        c: sum(g.classes.count(leaf) for g in gts for leaf in leaves if c in hierarchy.expand_positive(leaf))
        for c in classes
    }
    lost = {
        c: sum(g.classes.count(dropped) for g in gts) if c in hierarchy.expand_positive(dropped) else 0 for c in classes
    }
    expected = {c: (count[c] - lost[c]) / count[c] for c in classes}  # all scores 1: precision stays 1
    assert expected[dropped] == 0.0 and 0 < expected[mids["Carnivore"]] < 1
    m = run(hierarchy, gts, submitted(drop=[dropped]))
    assert m["per_class"] == pytest.approx(expected)
    assert m["mAP"] == pytest.approx(sum(expected.values()) / len(expected))


# ------------------------------------------------------------------ dense reference, random inputs
def reference_single_class(det_boxes, det_scores, det_masks, gt_boxes, gt_masks, gt_group, weight, thr=0.5):
    """The official ``_compute_tp_fp_for_single_class`` in mask mode, on dense masks, step by step."""
    order = np.argsort(det_scores)[::-1]
    det_boxes, det_scores, det_masks = det_boxes[order], det_scores[order], det_masks[order]
    n = len(det_scores)
    if len(gt_boxes) == 0:
        return det_scores, np.zeros(n)
    present = gt_masks.reshape(len(gt_masks), H * W).sum(1) > 0

    def mask_iou_ioa(gm):
        # np_mask_ops: float32 pixel sums, so the ratios are float32 (and 1e-7 vanishes next to an area).
        dm, gm = det_masks.reshape(n, H * W).astype(np.float32), gm.reshape(len(gm), H * W).astype(np.float32)
        inter = dm @ gm.T
        a, b = dm.sum(1)[:, None], gm.sum(1)[None, :]
        return inter / np.maximum(a + b - inter, np.float32(1e-7)), inter / (a + np.float32(1e-7))

    def box_iou_ioa(gb):
        ih = np.maximum(
            np.minimum(det_boxes[:, None, 2], gb[None, :, 2]) - np.maximum(det_boxes[:, None, 0], gb[None, :, 0]), 0
        )
        iw = np.maximum(
            np.minimum(det_boxes[:, None, 3], gb[None, :, 3]) - np.maximum(det_boxes[:, None, 1], gb[None, :, 1]), 0
        )
        inter = ih * iw
        a = ((det_boxes[:, 2] - det_boxes[:, 0]) * (det_boxes[:, 3] - det_boxes[:, 1]))[:, None]
        b = ((gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1]))[None, :]
        return inter / (a + b - inter), inter / a

    iou_m, ioa_m = mask_iou_ioa(gt_masks[present])
    iou_b, ioa_b = box_iou_ioa(gt_boxes[~present])
    gm, gb = gt_group[present], gt_group[~present]
    iou_m, ioa_m, iou_b, ioa_b = iou_m[:, ~gm], ioa_m[:, gm], iou_b[:, ~gb], ioa_b[:, gb]
    tp, is_box, is_group = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)

    def match_iou(iou, box):
        if iou.shape[1] == 0:
            return
        detected = np.zeros(iou.shape[1], bool)
        for i in range(n):
            g = np.argmax(iou[i])
            if not tp[i] and iou[i, g] >= thr and not is_group[i] and not detected[g]:
                tp[i], detected[g], is_box[i] = True, True, box

    def match_ioa(ioa, box):
        top = np.zeros(ioa.shape[1])
        for i in range(n):
            if ioa.shape[1] == 0:
                break
            g = np.argmax(ioa[i])
            if not tp[i] and ioa[i, g] >= thr and not is_group[i]:
                is_group[i], is_box[i] = True, box
                top[g] = max(top[g], det_scores[i])
        w = weight * np.ones(ioa.shape[1])
        sel = (top > 0) & (w > 0)
        return top[sel], w[sel]

    match_iou(iou_m, False)
    gs, gl = match_ioa(ioa_m, False)
    match_iou(iou_b, True)
    match_ioa(ioa_b, True)
    valid = ~is_group & ~is_box
    return np.concatenate([det_scores[valid], gs]), np.concatenate([tp[valid].astype(float), gl])


@pytest.mark.parametrize("seed", range(6))
def test_evaluate_image_matches_dense_reference(hierarchy, mids, seed):
    from ensembles.metric import evaluate_image

    rng = np.random.default_rng(seed)
    classes = [mids["Coin"], mids["Flag"]]

    def rand_rect():
        y, x = rng.integers(0, 14, size=2)
        return (int(y), int(x), int(y + rng.integers(2, 7)), int(x + rng.integers(2, 7)))

    instances = []
    for _ in range(8):
        r = rand_rect()
        kind = rng.random()
        instances.append((classes[int(rng.integers(2))], None if kind < 0.3 else r, r, bool(rng.random() < 0.35)))
    g = gt("r", instances, pos=classes)
    items = []
    for _ in range(14):  # detections near ground truth (often overlapping) and random ones
        if rng.random() < 0.6:
            y0, x0, y1, x1 = instances[int(rng.integers(len(instances)))][2]
            dy, dx = rng.integers(-1, 2, size=2)
            r = (max(y0 + dy, 0), max(x0 + dx, 0), y1 + dy, x1 + dx)
        else:
            r = rand_rect()
        items.append((classes[int(rng.integers(2))], float(rng.random()), r))
    d = dets("r", items)
    for weight in (1.0, 0.0):
        got = evaluate_image(g.expand(hierarchy), d, group_of_weight=weight)
        for c in classes:
            di = [k for k, x in enumerate(items) if x[0] == c]
            gi = [k for k, x in enumerate(instances) if x[0] == c]
            dm = d.dense_masks()[di]
            gmasks = np.zeros([len(gi), H, W], bool)
            for j, k in enumerate(gi):
                if instances[k][1] is not None:
                    y0, x0, y1, x1 = instances[k][1]
                    gmasks[j, y0:y1, x0:x1] = True
            ref = reference_single_class(
                tight_boxes(dm).astype(np.float64),
                np.array([items[k][1] for k in di]),
                dm,
                g.boxes[gi],
                gmasks,
                g.is_group_of[gi],
                weight,
            )
            if len(ref[0]) == 0:
                assert c not in got
                continue
            np.testing.assert_allclose(got[c][0], ref[0])
            np.testing.assert_array_equal(got[c][1], ref[1])


def test_masks_pair_with_bbox_rows_by_coordinates():
    import pandas as pd

    from ensembles.metric.groundtruth_files import _match_masks_to_boxes

    masks = pd.DataFrame(
        {
            "ImageID": ["a", "a", "b"],
            "LabelName": ["/m/x", "/m/x", "/m/x"],
            "BoxXMin": [0.1, 0.5, 0.1],
            "BoxXMax": [0.2, 0.6, 0.2],
            "BoxYMin": [0.1, 0.5, 0.1],
            "BoxYMax": [0.2, 0.6, 0.2],
        }
    )
    boxes = pd.DataFrame(
        {
            "ImageID": ["a", "a", "a", "b"],
            "LabelName": ["/m/x", "/m/x", "/m/x", "/m/y"],
            "XMin": [0.50001, 0.1, 0.7, 0.1],
            "XMax": [0.6, 0.2, 0.8, 0.2],
            "YMin": [0.5, 0.1, 0.7, 0.1],
            "YMax": [0.6, 0.2, 0.8, 0.2],
            "IsGroupOf": [True, False, False, False],
        }
    )
    mi, bi = _match_masks_to_boxes(masks, boxes, 1e-4)
    # mask 0 <-> box 1 (exact), mask 1 <-> box 0 (within tolerance); box 2 and b's mask/box stay unpaired.
    assert sorted(zip(mi.tolist(), bi.tolist())) == [(0, 1), (1, 0)]
    mi, _ = _match_masks_to_boxes(masks, boxes, 1e-6)
    assert mi.tolist() == [0]
