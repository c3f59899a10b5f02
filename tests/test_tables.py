"""Per-class tables of `hierseg evaluate` (COCO) and `hierseg oid-eval` (challenge metric)."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.detections import Detections
from hierseg.evaluation.coco_metric import evaluate_coco
from hierseg.evaluation.tables import MISSING, MISSING_NOTE, coco_table, label_path, oid_table
from hierseg.hierarchy import Hierarchy
from tests.test_coco_metric import LABEL_MAP, coco_case  # noqa: F401  (the fixture)

PERSON, CAR, MAN = "/m/01g317", "/m/0k4j", "/m/04yx4"


def _table_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("..."):
            break
        rows.append(line.split())
    return rows


def test_coco_per_class_perfect_person_missing_car(coco_case):  # noqa: F811
    path, scenes = coco_case
    dets = [
        Detections.from_dense(sid, mids, np.linspace(0.9, 0.8, len(mids)), masks).select(
            [i for i, m in enumerate(mids) if m == PERSON]
        )
        for sid, (masks, mids) in scenes.items()
    ]
    m = evaluate_coco(dets, path, LABEL_MAP)
    n_person = sum(mids.count(PERSON) for _, mids in scenes.values())
    n_car = sum(mids.count(CAR) for _, mids in scenes.values())
    assert m["per_class"][PERSON]["mask/AP"] == pytest.approx(1.0)
    assert m["per_class"][PERSON]["box/AP50"] == pytest.approx(1.0)
    assert m["per_class"][CAR]["mask/AP"] == pytest.approx(0.0)
    assert m["per_class"][PERSON]["num_gt"] == n_person and m["per_class"][CAR]["num_gt"] == n_car
    # The mean of the per-class APs is COCO's AP.
    assert np.mean([v["mask/AP"] for v in m["per_class"].values()]) == pytest.approx(m["mask/AP"])
    text = coco_table(m, Hierarchy.builtin())
    rows = _table_rows(text)
    assert [r[0] for r in rows] == ["Car", "Person"]  # worst first
    assert rows[1][2:] == [str(n_person), "100.0", "100.0", "100.0", "100.0"]
    assert "summary" in text and "mask/AP" in text
    # The tiny images hold no large objects: COCO's -1 prints as the dash, explained exactly once.
    assert m["mask/APl"] == -1.0 and MISSING in text and text.count(MISSING_NOTE) == 1 and "-1.0" not in text
    assert len(_table_rows(coco_table(m, top=1))) == 1
    assert "1 more classes" in coco_table(m, top=1)


def test_label_path_from_a_root():
    h = Hierarchy.builtin()
    assert label_path(h, MAN) == "Person/Man"
    assert label_path(h, PERSON) == "Person"
    assert label_path(None, MAN) == MAN


def test_oid_table_sorted_worst_first_with_counts():
    h = Hierarchy.builtin()
    metrics = {"per_class": {PERSON: 0.75, MAN: 0.25, CAR: 1.0}, "num_gt": {PERSON: 4.0, MAN: 3.0, CAR: 1.0}}
    rows = _table_rows(oid_table(metrics, h))
    assert rows == [["Man", "Person/Man", "3", "25.0"], ["Person", "Person", "4", "75.0"], ["Car", "Car", "1", "100.0"]]
    assert len(_table_rows(oid_table(metrics, h, top=2))) == 2


def test_oid_eval_command_prints_the_table(synth_dir, tmp_path, capsys):
    """A perfect submission but for Brown bear: Brown bear prints first (AP 0), --top 2 keeps two rows."""
    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.metric.groundtruth_files import load_ground_truth
    from ensembles.submission import write_submission
    from hierseg.oid.layout import OidPaths
    from hierseg_cli.main import main

    hierarchy = OidPaths.from_dir(str(synth_dir)).load_hierarchy()
    brown_bear = hierarchy.mid_of("Brown bear")
    gts = load_ground_truth(str(synth_dir), "validation", hierarchy)[0]
    sub = tmp_path / "sub.csv"
    write_submission(
        (ground_truth_as_detections(g, drop_classes=[brown_bear]) for g in gts.values()), str(sub), hierarchy
    )
    argv = ["oid-eval", "--oid_dir", str(synth_dir), "--submission", str(sub), "--num_workers", "1", "--no_progress"]
    assert main([*argv, "--top", "2"]) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert len(rows) == 2 and rows[0][:3] == ["Brown", "bear", "Carnivore/Bear/Brown"]
    assert rows[0][-1] == "0.0" and "more classes (--top 2" in out


def test_semantic_table_worst_first_with_dash_for_absent_classes():
    from hierseg.evaluation.tables import semantic_table

    metrics = {
        "semantic/mIoU": 0.5,
        "semantic/pixel_accuracy": 0.9,
        "per_class": [
            {"class": "background", "iou": 0.9, "gt_pixels": 1000, "pred_pixels": 990},
            {"class": "Person", "iou": 0.1, "gt_pixels": 50, "pred_pixels": 70},
            {"class": "Car", "iou": None, "gt_pixels": 0, "pred_pixels": 0},
        ],
    }
    text = semantic_table(metrics, Hierarchy.builtin())
    assert [r[0] for r in _table_rows(text)] == ["Person", "background", "Car"]  # unmeasured last
    assert _table_rows(text)[2][-1] == MISSING and "semantic/mIoU" in text and "50.0" in text
