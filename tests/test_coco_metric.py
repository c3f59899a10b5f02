"""COCO box/mask mAP on a tiny hand-built validation JSON (the layout `hierseg prepare` writes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from synthetic_scene import synthetic_scene

from hierseg.detections import Detections, encode_rles
from hierseg.evaluation.coco_metric import (
    STAT_NAMES,
    evaluate_coco,
    load_ground_truth,
    to_coco_results,
    write_metrics_json,
)
from hierseg.label_map import LabelMap

MIDS = ("/m/01g317", "/m/0k4j")  # Person, Car
LABEL_MAP = LabelMap.from_classes(MIDS, ["Person", "Car"])


def _scene(seed: int, h: int, w: int, n: int) -> tuple[np.ndarray, list[str]]:
    """n non-overlapping L-shaped objects (not boxes: mask AP != box AP) on an h x w image; their classes."""
    scene = synthetic_scene(np.random.default_rng(seed), h, w, n, "columns")
    return scene.masks, [MIDS[(c + seed) % 2] for c in scene.classes]


@pytest.fixture(scope="module")
def coco_case(tmp_path_factory):
    """(json path, {source_id: (masks, mids)}) for three images of different sizes."""
    images, annotations, scenes = [], [], {}
    for k, (h, w, n) in enumerate([(60, 80, 3), (90, 70, 2), (50, 120, 4)]):
        source_id = f"{k:016x}"
        masks, mids = _scene(k, h, w, n)
        scenes[source_id] = (masks, mids)
        images.append({"id": k + 1, "file_name": f"{source_id}.jpg", "source_id": source_id, "height": h, "width": w})
        for m, mid, rle in zip(masks, mids, encode_rles(masks)):
            ys, xs = np.nonzero(m)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": LABEL_MAP.id_of(mid),
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() + 1 - xs.min()),
                        float(ys.max() + 1 - ys.min()),
                    ],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "mid": m} for i, (m, n) in enumerate(zip(MIDS, ["Person", "Car"]))]
    path = tmp_path_factory.mktemp("coco") / "validation_coco.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path), scenes


def _perfect(scenes) -> list[Detections]:
    return [
        Detections.from_dense(sid, mids, np.linspace(0.9, 0.8, len(mids)), masks)
        for sid, (masks, mids) in scenes.items()
    ]


def test_perfect_detections_score_one(coco_case):
    path, scenes = coco_case
    m = evaluate_coco(_perfect(scenes), path, LABEL_MAP)
    for t in ("box", "mask"):
        assert m[f"{t}/AP"] == pytest.approx(1.0)
        assert m[f"{t}/AP50"] == pytest.approx(1.0)
        assert m[f"{t}/ARmax100"] == pytest.approx(1.0)
    assert set(f"box/{s}" for s in STAT_NAMES) <= set(m)
    assert m["num_images"] == 3 and m["num_detections"] == 9
    assert m["skipped_unknown_image"] == 0 and m["skipped_unknown_class"] == 0


def test_dicts_and_class_ids_are_accepted(coco_case):
    path, scenes = coco_case
    dicts = [
        {
            "source_id": d.image_id,
            "height": d.height,
            "width": d.width,
            "classes": [LABEL_MAP.id_of(c) for c in d.classes],
            "scores": d.scores,
            "boxes": d.boxes,
            "rles": d.rles,
        }
        for d in _perfect(scenes)
    ]
    m = evaluate_coco(dicts, path, LABEL_MAP)
    assert m["mask/AP"] == pytest.approx(1.0)


def test_perturbed_detections_score_lower(coco_case):
    path, scenes = coco_case
    perfect = evaluate_coco(_perfect(scenes), path, LABEL_MAP)
    shifted = []
    for sid, (masks, mids) in scenes.items():
        moved = np.roll(masks, shift=(4, 3), axis=(1, 2))
        shifted.append(Detections.from_dense(sid, mids, np.full(len(mids), 0.9), moved))
    m = evaluate_coco(shifted, path, LABEL_MAP)
    assert 0.0 < m["mask/AP"] < perfect["mask/AP"]
    assert 0.0 < m["box/AP"] < perfect["box/AP"]
    # A wrong class on every instance: nothing matches.
    swapped = [
        Detections.from_dense(sid, [MIDS[1 - MIDS.index(c)] for c in mids], np.full(len(mids), 0.9), masks)
        for sid, (masks, mids) in scenes.items()
    ]
    assert evaluate_coco(swapped, path, LABEL_MAP)["mask/AP"] == pytest.approx(0.0)


def test_missing_and_unknown_images(coco_case):
    path, scenes = coco_case
    dets = _perfect(scenes)
    stranger = Detections.from_dense("ffffffffffffffff", [MIDS[0]], np.array([0.5]), np.ones([1, 10, 10]))
    m = evaluate_coco(dets[1:] + [stranger], path, LABEL_MAP)  # the first image has no detections
    assert m["skipped_unknown_image"] == 1
    assert m["mask/ARmax100"] < 1.0 and m["mask/AP"] < 1.0
    empty = evaluate_coco([], path, LABEL_MAP)
    assert empty["box/AP"] == 0.0 and empty["mask/AP"] == 0.0 and empty["num_detections"] == 0


def test_masks_at_another_resolution_are_resized(coco_case):
    path, scenes = coco_case
    dets = []
    for sid, (masks, mids) in scenes.items():
        big = masks.repeat(2, axis=1).repeat(2, axis=2)  # predicted at twice the resolution
        dets.append(Detections.from_dense(sid, mids, np.full(len(mids), 0.9), big))
    m = evaluate_coco(dets, path, LABEL_MAP)
    assert m["resized_masks"] == 9
    assert m["mask/AP"] == pytest.approx(1.0)


def test_masks_are_resized_with_pils_nearest(coco_case):
    """Predicted masks at another, non-integer resolution become exactly PIL's NEAREST resize (the
    convention of the ground truth everywhere, hierseg/mask_resize.py), not a formula of their own."""
    path, scenes = coco_case
    gt = load_ground_truth(path, LABEL_MAP)
    rng = np.random.default_rng(7)
    dets, expected = [], []
    for sid, (masks, mids) in scenes.items():
        h, w = masks.shape[1:]
        small = rng.random([len(mids), 40, 32]) < 0.5  # 40x32 -> h x w: PIL differs from exact centres here
        dets.append(Detections.from_dense(sid, mids, np.full(len(mids), 0.9), small))
        for m in small:
            pil = Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)
            expected.append(np.array(pil) > 127)
    _, mask_results, counts = to_coco_results(dets, gt, LABEL_MAP)
    assert counts["resized_masks"] == len(expected) == 9
    for result, want in zip(mask_results, expected):
        np.testing.assert_array_equal(coco_mask.decode(result["segmentation"]).astype(bool), want)


def test_label_map_mismatch_is_an_error(coco_case):
    path, scenes = coco_case
    wrong = LabelMap.from_classes(MIDS[::-1], ["Car", "Person"])
    with pytest.raises(ValueError, match="disagrees with the label map"):
        evaluate_coco(_perfect(scenes), path, wrong)


def test_write_metrics_json_is_atomic_and_plain(tmp_path):
    out = tmp_path / "sub" / "metrics.json"
    write_metrics_json({"mask/AP": np.float32(0.25), "n": np.int64(3), "bad": float("nan")}, str(out))
    assert json.loads(out.read_text()) == {"mask/AP": 0.25, "n": 3, "bad": None}
    assert not (tmp_path / "sub" / "metrics.json.tmp").exists()


def test_images_without_source_id_match_by_file_name(coco_case, tmp_path):
    path, scenes = coco_case
    coco = json.loads(open(path).read())
    for img in coco["images"]:
        del img["source_id"]
    other = tmp_path / "plain_coco.json"
    other.write_text(json.dumps(coco))
    assert evaluate_coco(_perfect(scenes), str(other), LABEL_MAP)["mask/AP"] == pytest.approx(1.0)
