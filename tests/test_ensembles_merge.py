"""Ensembling Layer0 and Layer1 detections into parent-child labeled instances (hand-built cases on
the real 300-class hierarchy), and the prediction file formats it reads and writes."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles.config import EnsembleConfig
from ensembles.merge import ensemble_files, ensemble_image, match_layers, pair_by_image
from ensembles.prediction_io import read_predictions, write_predictions
from hierseg.detections import Detections
from hierseg.oid.mask_codec import decode_rle, encode_rle
from hierseg.rle import rle_boxes

H, W = 16, 24


def mask(y0, x0, y1, x1):
    m = np.zeros([H, W], bool)
    m[y0:y1, x0:x1] = True
    return m


def dets(items, image_id="0a1b2c3d4e5f6789"):
    """items: (mid, score, dense mask)."""
    rles = [encode_rle(m) for _, _, m in items]
    return Detections(
        image_id, H, W, [c for c, _, _ in items], [s for _, s, _ in items], rle_boxes(rles).astype(np.float32), rles
    )


@pytest.fixture(scope="module")
def m(hierarchy):
    names = ["Person", "Man", "Woman", "Toy", "Teddy bear", "Carnivore", "Bear", "Brown bear", "Dog", "Coin"]
    return {n: hierarchy.mid_of(n) for n in names}


def paths(out, m):
    inv = {v: k for k, v in m.items()}
    return sorted(tuple(inv[c] for c in p) for p in out.label_paths)


A, B, C = mask(0, 0, 8, 8), mask(8, 12, 16, 24), mask(0, 14, 6, 22)
A_SHIFTED = mask(1, 0, 9, 8)  # IoU with A: 56 / 72 = 0.78


def test_matched_pairs_get_the_path_through_the_hierarchy(hierarchy, m):
    l0 = dets([(m["Person"], 0.8, A), (m["Toy"], 0.7, B), (m["Carnivore"], 0.6, C)])
    l1 = dets([(m["Man"], 0.9, A_SHIFTED), (m["Teddy bear"], 0.5, B), (m["Brown bear"], 0.4, C)])
    out = ensemble_image(l0, l1, hierarchy)
    assert len(out) == 3
    assert paths(out, m) == [("Carnivore", "Bear", "Brown bear"), ("Person", "Man"), ("Toy", "Teddy bear")]
    # Defaults: the child's mask and score; output by descending score.
    assert [out.classes[0], float(out.scores[0])] == [m["Man"], pytest.approx(0.9)]
    np.testing.assert_array_equal(decode_rle(out.rles[0]), A_SHIFTED)
    np.testing.assert_allclose(out.scores, [0.9, 0.5, 0.4])


def test_teddy_bear_under_carnivore_goes_through_bear(hierarchy, m):
    out = ensemble_image(dets([(m["Carnivore"], 0.8, A)]), dets([(m["Teddy bear"], 0.9, A)]), hierarchy)
    assert paths(out, m) == [("Carnivore", "Bear", "Teddy bear")]


def test_unmatched_detections_keep_their_labels_and_get_full_paths(hierarchy, m):
    l0 = dets([(m["Person"], 0.8, A), (m["Coin"], 0.3, C)])
    l1 = dets([(m["Teddy bear"], 0.9, B), (m["Brown bear"], 0.7, C)])  # nothing of theirs overlaps
    out = ensemble_image(l0, l1, hierarchy)
    assert paths(out, m) == [("Carnivore", "Bear", "Brown bear"), ("Coin",), ("Person",), ("Toy", "Teddy bear")]
    # Empty sides.
    assert paths(ensemble_image(l0, dets([]), hierarchy), m) == [("Coin",), ("Person",)]
    assert paths(ensemble_image(dets([]), l1, hierarchy), m) == [
        ("Carnivore", "Bear", "Brown bear"),
        ("Toy", "Teddy bear"),
    ]


def test_child_never_goes_under_a_non_ancestor(hierarchy, m):
    # Man lies exactly on a Carnivore detection: not an ancestor of Man, so no match.
    out = ensemble_image(dets([(m["Carnivore"], 0.8, A)]), dets([(m["Man"], 0.9, A)]), hierarchy)
    assert paths(out, m) == [("Carnivore",), ("Person", "Man")]
    assert len(out) == 2


def test_below_threshold_stays_unmatched(hierarchy, m):
    low = mask(4, 0, 12, 8)  # IoU with A: 32 / 96 = 1/3
    out = ensemble_image(dets([(m["Person"], 0.8, A)]), dets([(m["Man"], 0.9, low)]), hierarchy)
    assert len(out) == 2
    out = ensemble_image(
        dets([(m["Person"], 0.8, A)]), dets([(m["Man"], 0.9, low)]), hierarchy, EnsembleConfig(iou_threshold=0.3)
    )
    assert paths(out, m) == [("Person", "Man")]


def test_greedy_one_to_one_by_score_then_best_iou(hierarchy, m):
    l0 = dets([(m["Person"], 0.6, A_SHIFTED), (m["Person"], 0.5, A)])
    l1 = dets([(m["Woman"], 0.7, A), (m["Man"], 0.9, A)])
    # Man (higher score) first: takes the Person with IoU 1 (index 1); Woman takes the other (IoU 0.78).
    assert match_layers(l0, l1, hierarchy, 0.5) == [(1, 1), (0, 0)]
    # With a single Person, Woman is left unmatched and keeps its own full path.
    out = ensemble_image(dets([(m["Person"], 0.6, A)]), l1, hierarchy)
    assert paths(out, m) == [("Person", "Man"), ("Person", "Woman")]
    assert out.classes == [m["Man"], m["Woman"]]


@pytest.mark.parametrize(
    "mask_source, expected",
    [
        ("layer1", A_SHIFTED),
        ("layer0", A),
        ("union", A | A_SHIFTED),
        ("intersection", A & A_SHIFTED),
        ("average", A_SHIFTED),  # the child is more confident (0.9 > 0.6)
    ],
)
def test_mask_sources(hierarchy, m, mask_source, expected):
    out = ensemble_image(
        dets([(m["Person"], 0.6, A)]),
        dets([(m["Man"], 0.9, A_SHIFTED)]),
        hierarchy,
        EnsembleConfig(mask_source=mask_source),
    )
    np.testing.assert_array_equal(decode_rle(out.rles[0]), expected)
    ys, xs = np.nonzero(expected)
    np.testing.assert_allclose(out.boxes[0], [ys.min() / H, xs.min() / W, (ys.max() + 1) / H, (xs.max() + 1) / W])


def test_average_mask_on_equal_scores_is_the_union(hierarchy, m):
    out = ensemble_image(
        dets([(m["Person"], 0.5, A)]),
        dets([(m["Man"], 0.5, A_SHIFTED)]),
        hierarchy,
        EnsembleConfig(mask_source="average"),
    )
    np.testing.assert_array_equal(decode_rle(out.rles[0]), A | A_SHIFTED)


@pytest.mark.parametrize(
    "score_source, expected", [("child", 0.9), ("parent", 0.6), ("product", 0.54), ("max", 0.9), ("mean", 0.75)]
)
def test_score_sources(hierarchy, m, score_source, expected):
    out = ensemble_image(
        dets([(m["Person"], 0.6, A)]),
        dets([(m["Man"], 0.9, A_SHIFTED)]),
        hierarchy,
        EnsembleConfig(score_source=score_source),
    )
    assert float(out.scores[0]) == pytest.approx(expected)


def test_bad_inputs_raise(hierarchy, m):
    with pytest.raises(ValueError, match="different images"):
        ensemble_image(dets([], "a"), dets([], "b"), hierarchy)
    with pytest.raises(ValueError, match="not in the hierarchy"):
        ensemble_image(dets([("/m/nothing", 0.5, A)]), dets([]), hierarchy)


def test_pairing_streams_in_any_order():
    def e(i):
        return Detections(i, H, W)

    pairs = list(pair_by_image([e("a"), e("b"), e("c")], [e("c"), e("a"), e("d")]))
    got = sorted((d0.image_id, d1.image_id) for d0, d1 in pairs)
    assert got == [("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")]
    with pytest.raises(ValueError, match="twice"):
        list(pair_by_image([e("a"), e("a")], []))


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_ensemble_files_round_trip(tmp_path, hierarchy, m, ext):
    l0 = [dets([(m["Person"], 0.8, A)], "img1"), dets([(m["Toy"], 0.7, B)], "img2")]
    l1 = [dets([(m["Teddy bear"], 0.6, B)], "img2"), dets([(m["Man"], 0.9, A_SHIFTED)], "img1"), dets([], "img3")]
    write_predictions(str(tmp_path / "l0.jsonl"), l0)
    write_predictions(str(tmp_path / f"l1.{ext}"), l1)
    out = tmp_path / f"out.{ext}"
    assert (
        ensemble_files(
            str(tmp_path / "l0.jsonl"), str(tmp_path / f"l1.{ext}"), str(out), hierarchy, show_progress=False
        )
        == 3
    )
    got = {d.image_id: d for d in read_predictions(str(out))}
    assert sorted(got) == ["img1", "img2", "img3"]
    assert got["img1"].label_paths == [(m["Person"], m["Man"])]
    assert got["img2"].label_paths == [(m["Toy"], m["Teddy bear"])]
    assert len(got["img3"]) == 0
    np.testing.assert_array_equal(decode_rle(got["img1"].rles[0]), A_SHIFTED)
    assert not list(tmp_path.glob("*.tmp*"))
