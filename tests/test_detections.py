"""The host-side Detections type and the label map."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.detections import Detections, read_jsonl, tight_boxes, write_jsonl
from hierseg.label_map import LabelMap


def random_masks(rng, n, h, w):
    masks = np.zeros([n, h, w], bool)
    for i in range(n):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        masks[i, y0 : y0 + rng.integers(1, h // 2), x0 : x0 + rng.integers(1, w // 2)] = True
    return masks


def test_dense_round_trip_and_tight_boxes():
    rng = np.random.default_rng(0)
    masks = random_masks(rng, 4, 37, 53)
    d = Detections.from_dense("0012abcd0012abcd", ["/m/01g317"] * 4, rng.random(4), masks)
    np.testing.assert_array_equal(d.dense_masks(), masks)
    ys, xs = np.nonzero(masks[0])
    np.testing.assert_allclose(d.boxes[0], [ys.min() / 37, xs.min() / 53, (ys.max() + 1) / 37, (xs.max() + 1) / 53])
    assert tight_boxes(np.zeros([1, 5, 5], bool)).tolist() == [[0, 0, 0, 0]]


def test_jsonl_round_trip_keeps_ids_paths_and_masks(tmp_path):
    rng = np.random.default_rng(1)
    masks = random_masks(rng, 2, 20, 30)
    d = Detections.from_dense(
        "0000000000000001",
        ["/m/04yx4", "/m/0kmg4"],
        [0.9, 0.5],
        masks,
        label_paths=[("/m/01g317", "/m/04yx4"), ("/m/0138tl", "/m/0kmg4")],
    )
    empty = Detections("00000000000000ff", 10, 12)
    path = tmp_path / "p.jsonl"
    write_jsonl(str(path), [d, empty])
    back = list(read_jsonl(str(path)))
    assert [b.image_id for b in back] == ["0000000000000001", "00000000000000ff"]
    assert back[0].label_paths == d.label_paths and back[0].classes == d.classes
    np.testing.assert_array_equal(back[0].dense_masks(), masks)
    assert len(back[1]) == 0 and back[1].dense_masks().shape == (0, 10, 12)


def test_mismatched_counts_and_bad_lines_raise(tmp_path):
    with pytest.raises(ValueError, match="counts differ"):
        Detections("a", 2, 2, ["/m/x"], np.zeros(2), np.zeros([1, 4]), [{}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image_id": "a"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        list(read_jsonl(str(bad)))


def test_label_map_pbtxt_round_trip_and_errors(tmp_path):
    lm = LabelMap.from_classes(["/m/01g317", "/m/0k4j"], {"/m/01g317": "Person", "/m/0k4j": "Car"})
    path = tmp_path / "label_map.pbtxt"
    lm.save(str(path))
    assert LabelMap.load(str(path)) == lm
    assert lm.id_of("/m/0k4j") == 2 and lm.mid_of(1) == "/m/01g317"
    with pytest.raises(KeyError):
        lm.mid_of(3)
    with pytest.raises(ValueError, match="1..K"):
        LabelMap.from_pbtxt('item { id: 2 name: "/m/x" }', "lm.pbtxt")


def test_cli_help_lists_every_command(capsys):
    from hierseg_cli.main import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["no-such-command"]) == 2


def _three():
    masks = np.zeros([3, 6, 7], bool)
    masks[0, :2, :2] = masks[1, 2:5, 1:4] = masks[2, 4:, 5:] = True
    return Detections.from_dense("img", ["/m/a", "/m/b", "/m/c"], [0.9, 0.2, 0.6], masks), masks


def test_indexing_by_mask_int_slice_and_array_keeps_fields_parallel():
    d, masks = _three()
    high = d[d.scores >= 0.5]
    assert high.classes == ["/m/a", "/m/c"] and high.scores.tolist() == [0.9, 0.6]
    np.testing.assert_array_equal(high.dense_masks(), masks[[0, 2]])
    np.testing.assert_array_equal(high.boxes, d.boxes[[0, 2]])
    assert d[1].classes == ["/m/b"] and d[-1].classes == ["/m/c"]
    assert d[1:].classes == ["/m/b", "/m/c"] and d[::-1].classes == ["/m/c", "/m/b", "/m/a"]
    order = np.argsort(-d.scores)
    assert d[order].classes == ["/m/a", "/m/c", "/m/b"] and d.select(order).classes == d[order].classes
    assert len(d[[]]) == 0 and d[[]].dense_masks().shape == (0, 6, 7)
    with pytest.raises(IndexError, match="img: instance 3 of 3"):
        d[3]
    with pytest.raises(IndexError, match="boolean index"):
        d[np.array([True, False])]
    with pytest.raises(IndexError, match="float64"):
        d[np.array([0.5])]


def test_cat_and_empty():
    d, masks = _three()
    e = Detections.empty("img", 6, 7)
    assert len(e) == 0 and e.scores.dtype == np.float64 and e.dense_masks().shape == (0, 6, 7)
    both = Detections.cat([d[:1], e, d[1:]])
    assert both.classes == d.classes and both.label_paths == d.label_paths
    np.testing.assert_array_equal(both.scores, d.scores)
    np.testing.assert_array_equal(both.dense_masks(), masks)
    with pytest.raises(ValueError, match="cannot concatenate detections of other"):
        Detections.cat([d, Detections.empty("other", 6, 7)])
    with pytest.raises(ValueError, match="at least one"):
        Detections.cat([])


def test_scores_are_float64():
    d = Detections("img", 2, 2, ["/m/a", "/m/a"], [0.500000002, 0.500000001], np.zeros([2, 4]), [{}, {}])
    assert d.scores.dtype == np.float64 and d.scores[0] > d.scores[1]
