"""Challenge submissions: parent copies, empty rows, threshold/cap, round trip, and the validator
catching each problem with its line."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest

from ensembles.config import SubmissionConfig
from ensembles.prediction_io import read_predictions
from ensembles.submission import write_submission
from ensembles.validate_submission import validate_submission, validate_submission_report
from hierseg.detections import Detections
from hierseg.oid.mask_codec import decode_oid_mask, encode_oid_mask, encode_rle
from hierseg.rle import rle_boxes

H, W = 12, 18  # height, width


def mask(y0, x0, y1, x1, h=H, w=W):
    m = np.zeros([h, w], bool)
    m[y0:y1, x0:x1] = True
    return m


def det(image_id, items, h=H, w=W):
    """items: (mid, score, dense mask, label path)."""
    rles = [encode_rle(x[2]) for x in items]
    return Detections(
        image_id,
        h,
        w,
        [x[0] for x in items],
        [x[1] for x in items],
        rle_boxes(rles).astype(np.float32),
        rles,
        [x[3] for x in items],
    )


@pytest.fixture(scope="module")
def m(hierarchy):
    return {n: hierarchy.mid_of(n) for n in ["Person", "Man", "Toy", "Teddy bear", "Bear", "Carnivore", "Coin"]}


def rows(path):
    with open(path) as f:
        return [line.rstrip("\n").split(",") for line in f]


def triples(row):
    t = row[3].split()
    return [(t[i], float(t[i + 1]), t[i + 2]) for i in range(0, len(t), 3)]


def test_every_instance_is_written_for_its_path_and_all_ancestors(tmp_path, hierarchy, m):
    man, teddy = mask(0, 0, 6, 6), mask(6, 6, 12, 18)
    d = det(
        "aaaa000000000001",
        [(m["Man"], 0.9, man, (m["Person"], m["Man"])), (m["Teddy bear"], 0.4, teddy, (m["Toy"], m["Teddy bear"]))],
    )
    sizes = {"aaaa000000000001": (H, W), "aaaa000000000002": (30, 40), "0000000000000003": (5, 7)}
    path = tmp_path / "sub.csv"
    stats = write_submission([d], str(path), hierarchy, image_sizes=sizes)
    r = rows(path)
    assert r[0] == ["ImageID", "ImageWidth", "ImageHeight", "PredictionString"]
    assert r[1][:3] == ["aaaa000000000001", str(W), str(H)]  # width before height
    got = triples(r[1])
    assert [(c, s) for c, s, _ in got] == [
        (m["Man"], 0.9),
        (m["Person"], 0.9),
        (m["Teddy bear"], 0.4),
        (m["Toy"], 0.4),
        (m["Carnivore"], 0.4),
        (m["Bear"], 0.4),
    ]
    np.testing.assert_array_equal(decode_oid_mask(got[0][2], H, W), man)
    assert got[0][2] == got[1][2] == encode_oid_mask(man)
    np.testing.assert_array_equal(decode_oid_mask(got[5][2], H, W), teddy)
    # Images without predictions: empty rows with their own sizes, leading zeros kept.
    assert r[2:] == [["aaaa000000000002", "40", "30", ""], ["0000000000000003", "7", "5", ""]]
    assert (stats.images, stats.empty_rows, stats.instances, stats.triples) == (3, 2, 2, 6)
    # Round trip through the reader.
    back = {x.image_id: x for x in read_predictions(str(path))}
    assert len(back["aaaa000000000002"]) == 0 and (back["0000000000000003"].height, back["0000000000000003"].width) == (
        5,
        7,
    )
    np.testing.assert_array_equal(back["aaaa000000000001"].dense_masks()[2], teddy)
    assert validate_submission(str(path), expected_images=sizes, valid_mids=hierarchy.classes) == []


def test_unlabeled_instance_is_expanded_from_its_class(tmp_path, hierarchy, m):
    path = tmp_path / "s.csv"
    write_submission([det("x", [(m["Teddy bear"], 0.5, mask(0, 0, 2, 2), ())])], str(path), hierarchy)
    assert {c for c, _, _ in triples(rows(path)[1])} == {m["Teddy bear"], m["Toy"], m["Bear"], m["Carnivore"]}


def test_threshold_and_cap(tmp_path, hierarchy, m):
    d = det(
        "x",
        [
            (m["Coin"], 0.2, mask(0, 0, 2, 2), ()),
            (m["Man"], 0.8, mask(2, 2, 4, 4), ()),
            (m["Coin"], 0.6, mask(4, 4, 6, 6), ()),
        ],
    )
    path = tmp_path / "s.csv"
    stats = write_submission([d], str(path), hierarchy, config=SubmissionConfig(score_threshold=0.5, max_per_image=2))
    assert [(c, s) for c, s, _ in triples(rows(path)[1])] == [(m["Man"], 0.8), (m["Person"], 0.8)]
    assert (stats.instances, stats.triples, stats.capped) == (2, 2, 1)


def test_write_errors_leave_no_file(tmp_path, hierarchy, m):
    path = tmp_path / "s.csv"
    d = det("x", [(m["Coin"], 0.5, mask(0, 0, 2, 2), ())])
    with pytest.raises(ValueError, match="original resolution"):
        write_submission([d], str(path), hierarchy, image_sizes={"x": (H + 1, W)})
    with pytest.raises(ValueError, match="not in the image set"):
        write_submission([d], str(path), hierarchy, image_sizes={"y": (H, W)})
    with pytest.raises(ValueError, match="twice"):
        write_submission([d, d], str(path), hierarchy)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_submission([det("x", [(m["Coin"], 1.5, mask(0, 0, 2, 2), ())])], str(path), hierarchy)
    assert not list(tmp_path.iterdir())


def test_validator_reports_each_problem_with_its_line(tmp_path, hierarchy, m):
    good = encode_oid_mask(mask(0, 0, 3, 3))
    other_size = encode_oid_mask(mask(0, 0, 3, 3, h=10, w=10))
    not_zlib = base64.b64encode(b"hello").decode()
    bad_counts = base64.b64encode(zlib.compress(b"\x01\x02")).decode()
    coin = m["Coin"]
    lines = [
        "ImageID,ImageWidth,ImageHeight,PredictionString",  # 1
        f"a,{W},{H},{coin} 0.5 {good}",  # 2 fine
        f"a,{W},{H},",  # 3 duplicate
        f"b,{W + 1},{H},",  # 4 size differs from the image
        f"c,{W},{H},/m/notaclass 0.5 {good} {coin} 1.5 {good}",  # 5 unknown MID, score out of range
        f"d,{W},{H},{coin} 0.5 {other_size}",  # 6 mask of another size
        f"e,{W},{H},{coin} 0.5 !!notbase64 {coin} 0.5 {not_zlib} {coin} 0.5 {bad_counts}",  # 7 undecodable x3
        f"f,{W},{H},{coin} 0.5",  # 8 incomplete triple
        f"zzz,{W},{H},",  # 9 not in the set
        "g,wide,10,",  # 10 size not an integer
        "h,1,2,3,4",  # 11 five fields
    ]
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    expected = {i: (H, W) for i in "abcdefgh"} | {"missing1": (H, W)}
    problems, stats = validate_submission_report(str(path), expected_images=expected, valid_mids=hierarchy.classes)
    got = sorted((p.line or 0, p.kind) for p in problems)
    assert got == sorted(
        [
            (3, "duplicate"),
            (4, "size"),
            (5, "mid"),
            (5, "score"),
            (6, "mask_size"),
            (7, "mask"),
            (8, "tokens"),
            (9, "image_id"),
            (10, "size"),
            (11, "fields"),
            (0, "missing"),
            (0, "missing"),
        ]
    )  # missing1 and h (its row is malformed, so h never counts as seen)
    seven = next(p for p in problems if p.line == 7)
    assert "3 triple(s) (1, 2, 3)" in seven.message
    assert str(next(p for p in problems if p.kind == "duplicate")).startswith("line 3: [duplicate]")
    assert "line 2" in next(p for p in problems if p.kind == "duplicate").message
    assert stats.rows == 10


def test_validator_header_and_without_an_image_set(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("ImageId,Width,Height,PredictionString\nx,4,4,\n")
    problems = validate_submission(str(path))
    assert [(p.line, p.kind) for p in problems] == [(1, "header")]


def test_read_official_per_instance_csv(tmp_path, m):
    a, b = mask(0, 0, 3, 3), mask(5, 5, 9, 9)
    lines = [
        "ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask",
        f"x,{W},{H},{m['Coin']},0.5,{encode_oid_mask(a)}",
        f"y,{W},{H},{m['Man']},0.25,{encode_oid_mask(b)}",
        f"x,{W},{H},{m['Man']},0.75,{encode_oid_mask(b)}",
    ]
    path = tmp_path / "inst.csv"
    path.write_text("\n".join(lines) + "\n")
    got = {d.image_id: d for d in read_predictions(str(path))}
    assert got["x"].classes == [m["Coin"], m["Man"]] and got["y"].classes == [m["Man"]]
    np.testing.assert_allclose(got["x"].scores, [0.5, 0.75])
    np.testing.assert_array_equal(got["x"].dense_masks()[1], b)
    np.testing.assert_allclose(got["x"].boxes[0], [0, 0, 3 / H, 3 / W], rtol=1e-6)
    path.write_text("\n".join(lines[:2]) + f"\nx,{W},{H + 1},{m['Coin']},0.5,{encode_oid_mask(a)}\n")
    with pytest.raises(ValueError, match=r"inst.csv:3"):
        list(read_predictions(str(path)))
