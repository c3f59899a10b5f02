"""`hierseg analyze`: every error kind on a hand-built image where each detection's cause is known."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles.error_analysis import analyze, analyze_image, metric_status, relation
from ensembles.metric.groundtruth import ImageGroundTruth
from ensembles.metric.per_image import evaluate_image
from hierseg.detections import Detections, encode_rles
from hierseg.hierarchy import Hierarchy

H = Hierarchy.builtin()
MAN, WOMAN, PERSON, CAR = (H.mid_of(n) for n in ("Man", "Woman", "Person", "Car"))
SIZE = 100


def rect(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros([SIZE, SIZE], np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


# Annotated instances: A Man, B Woman, C Person only, D Car, E Man.
A, B, C, D, E = rect(5, 5, 35, 35), rect(5, 60, 35, 90), rect(60, 5, 90, 35), rect(60, 60, 90, 90), rect(40, 40, 58, 58)
GT_MASKS = [A, B, C, D, E]
GT_CLASSES = [MAN, WOMAN, PERSON, CAR, MAN]
# One detection per kind: (class, score, mask, its expected verdict).
DETS = [
    (MAN, 0.95, A, "tp"),
    (MAN, 0.90, A, "duplicate"),
    (WOMAN, 0.85, A, "sibling"),
    (MAN, 0.80, C, "too_fine"),
    (CAR, 0.75, B, "other_class"),
    (CAR, 0.70, rect(60, 75, 90, 98), "localization"),  # IoU 15*30 / (2*900 - 450) = 1/3 with D
    (WOMAN, 0.65, rect(91, 91, 99, 99), "background"),
    (WOMAN, 0.60, rect(60, 25, 90, 45), "class_and_loc"),  # a Woman a third over the Person C
    (PERSON, 0.55, E, "tp"),
]


def _gt() -> ImageGroundTruth:
    return ImageGroundTruth.from_annotations(
        "img",
        SIZE,
        SIZE,
        list(GT_CLASSES),
        np.asarray([[0, 0, 1, 1]] * len(GT_CLASSES), np.float64),
        encode_rles(np.stack(GT_MASKS)),
        np.zeros(len(GT_CLASSES), bool),
        positive_labels=(MAN, WOMAN, PERSON, CAR),
    )


def _dets() -> Detections:
    return Detections.from_dense(
        "img", [d[0] for d in DETS], np.asarray([d[1] for d in DETS], np.float32), np.stack([d[2] for d in DETS])
    )


def test_relations():
    assert relation(H, PERSON, MAN) == "same"  # the expansion makes Person match a Man instance
    assert relation(H, MAN, PERSON) == "too_fine"
    assert relation(H, WOMAN, MAN) == "sibling"
    assert relation(H, CAR, MAN) == "other_class"


def test_each_false_positive_gets_its_known_cause():
    e = analyze_image(_gt(), _dets(), H)
    expect = [d[3] for d in DETS]
    assert e.status == ["tp" if x == "tp" else "fp" for x in expect]
    assert e.fp_kind == ["" if x == "tp" else x for x in expect]


def test_each_miss_gets_the_related_detection_on_it():
    e = analyze_image(_gt(), _dets(), H)
    misses = sorted(e.misses)
    assert misses == sorted(
        [
            (PERSON, "missed_too_fine", 0),  # A's Person copy: the Man TP (finer) is on it
            (WOMAN, "missed_other_class", 4),  # B: only the Car is on it
            (PERSON, "missed_other_class", 4),  # B's Person copy
            (PERSON, "missed_too_fine", 3),  # C: a Man on a Person-only instance
            (CAR, "missed_localization", -1),  # D: its Car a third over it
            (MAN, "missed_too_coarse", 8),  # E: found as Person only
        ]
    )


def test_metric_status_is_the_metrics_labels_on_random_detections():
    rng = np.random.default_rng(0)
    gt = _gt().expand(H)
    for _ in range(5):
        n = 12
        masks = np.stack([rect(*sorted(rng.integers(0, SIZE, 2)), *sorted(rng.integers(0, SIZE, 2))) for _ in range(n)])
        masks[:, 0, 0] = 1  # never empty
        classes = list(rng.choice([MAN, WOMAN, PERSON, CAR], n))
        det = Detections.from_dense("img", classes, rng.random(n).astype(np.float32), masks)
        status = metric_status(gt, det)
        res = evaluate_image(gt, det)
        for c, (_, labels) in res.items():
            mine = [s for s, k in zip(status, det.classes) if k == c and s != "ignored"]
            assert sorted(mine) == sorted("tp" if t > 0 else "fp" for t in labels)


def test_counts_and_map_gains():
    out = analyze({"img": _gt()}, [_dets()], H)
    c = out["counts"]
    assert c["tp"] == 2 and c["fp"] == 7 and c["ignored"] == 0
    for kind in ("duplicate", "too_fine", "sibling", "other_class", "localization", "background", "class_and_loc"):
        assert c[kind] == 1, kind
    assert c["missed_too_fine"] == 2 and c["missed_other_class"] == 2
    assert c["missed_too_coarse"] == 1 and c["missed_localization"] == 1 and c["missed_no_detection"] == 0
    assert out["per_class"][MAN]["duplicate"] == 1 and out["per_class"][MAN]["missed_too_coarse"] == 1
    g = out["map_gain"]
    # Man: TP at 0.95, FPs at 0.9 (duplicate) and 0.8 (too fine); 2 instances -> AP 0.5; without the
    # duplicate nothing changes below the single TP's recall, relabeling the Person on E adds a TP.
    assert out["per_class_ap"][MAN] == pytest.approx(0.5)
    assert g["missed_too_coarse"] > 0 and g["missed_too_fine"] > 0
    assert all(v >= -1e-12 for k, v in g.items() if not k.startswith("missed")), g
    assert g["background"] == pytest.approx(0.0)  # the Woman background FP ranks below Woman's nothing


def test_analyze_command_on_the_synthetic_dataset(synth_dir, tmp_path, capsys):
    """Every Man, Boy and Girl relabeled Woman in an otherwise perfect submission: each is a miss with a
    sibling detection on it, no other false-positive kind appears, and fixing it recovers mAP."""
    import json

    from PIL import Image

    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.metric.groundtruth_files import load_ground_truth
    from ensembles.submission import write_submission
    from hierseg.oid.layout import OidPaths
    from hierseg_cli.main import main

    hierarchy = OidPaths.from_dir(str(synth_dir)).load_hierarchy()
    gts = load_ground_truth(str(synth_dir), "validation", hierarchy)[0]
    woman = hierarchy.mid_of("Woman")
    renamed = {hierarchy.mid_of(n) for n in ("Man", "Boy", "Girl")}
    dets = []
    for g in gts.values():
        d = ground_truth_as_detections(g)
        d.classes = [woman if c in renamed else c for c in d.classes]
        dets.append(d)
    num_man = sum(
        1 for g in gts.values() for c, r, grp in zip(g.classes, g.rles, g.is_group_of) if c in renamed and r is not None
    )
    assert num_man >= 3
    sub = tmp_path / "sub.csv"
    write_submission(dets, str(sub), hierarchy)
    out = tmp_path / "out"
    argv = ["analyze", "--oid_dir", str(synth_dir), "--submission", str(sub), "--out", str(out), "--num_workers", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "missed_sibling" in printed and "per class" in printed
    result = json.loads((out / "error_analysis.json").read_text())
    c = result["counts"]
    assert c["missed_sibling"] == num_man == sum(result["per_class"][m]["missed_sibling"] for m in renamed)
    assert c["sibling"] > 0
    for kind in ("duplicate", "too_fine", "other_class", "localization", "class_and_loc", "background"):
        assert c[kind] == 0, kind
    assert result["map_gain"]["missed_sibling"] > 0 and result["mAP"] < 1.0
    image = np.asarray(Image.open(out / "error_summary.png").convert("RGB"))
    assert image.shape[0] > 300 and (image != 255).any()
    assert (out / "per_class_errors.csv").read_text().splitlines()[0].startswith("mid,name,label_path,num_gt,AP50")
