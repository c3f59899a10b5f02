"""hierseg.prediction_file: the one reader/writer of JSON-lines predictions and challenge CSVs, its
score check, and the validator's use of it (bad bytes, bad scores named by file and line)."""

from __future__ import annotations

import numpy as np
import pytest

from ensembles.validate_submission import validate_submission_report
from hierseg.detections import Detections
from hierseg.oid.mask_codec import encode_oid_mask
from hierseg.prediction_file import (
    PredictionFileError,
    SubmissionCsvWriter,
    check_score,
    check_scores,
    detections_to_json,
    parse_prediction_string,
    read_instance_csv,
    read_jsonl,
    read_submission_csv,
    submission_rows,
    write_jsonl,
)

MID = "/m/0242l"
HEADER = "ImageID,ImageWidth,ImageHeight,PredictionString\n"


def square(h=6, w=8):
    m = np.zeros([h, w], bool)
    m[1:4, 2:6] = True
    return m


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "1.5", "abc", "", None, float("nan")])
def test_check_score_rejects_everything_outside_zero_one(value):
    with pytest.raises(ValueError, match="^line 7: score .* is not a number in \\[0, 1\\]$"):
        check_score(value, "line 7")


def test_check_score_accepts_the_closed_interval():
    assert [check_score(v) for v in ("0", "1", "0.500000002", 1e-300)] == [0.0, 1.0, 0.500000002, 1e-300]
    assert check_scores([0.0, 0.5, 1.0]).dtype == np.float64
    with pytest.raises(ValueError, match="^f.csv: instance 2: score nan"):
        check_scores([0.1, 0.2, float("nan")], "f.csv")


def test_submission_writer_and_reader_round_trip(tmp_path):
    path = str(tmp_path / "sub.csv")
    enc = encode_oid_mask(square())
    with SubmissionCsvWriter(path) as out:
        out.write_row("img1", 6, 8, [(MID, 0.25, enc), ("/m/01g317", 1.0, enc)])
        out.write_row("img2", 3, 5, [])
    back = list(read_submission_csv(path))
    assert [d.image_id for d in back] == ["img1", "img2"]
    assert (back[0].height, back[0].width) == (6, 8) and back[0].classes == [MID, "/m/01g317"]
    np.testing.assert_array_equal(back[0].scores, [0.25, 1.0])
    np.testing.assert_array_equal(back[0].dense_masks()[0], square())
    assert len(back[1]) == 0
    rows = list(submission_rows(path))
    assert [r.line for r in rows] == [2, 3] and rows[0].detections().classes == back[0].classes


def test_submission_writer_leaves_no_file_when_interrupted(tmp_path):
    path = tmp_path / "sub.csv"
    with pytest.raises(RuntimeError):
        with SubmissionCsvWriter(str(path)) as out:
            out.write_row("img1", 6, 8, [])
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("score", ["nan", "inf", "-0.5", "1.01"])
def test_csv_readers_name_file_and_line_of_a_bad_score(tmp_path, score):
    enc = encode_oid_mask(square())
    sub = tmp_path / "sub.csv"
    sub.write_text(HEADER + f"img1,8,6,{MID} 0.5 {enc}\nimg2,8,6,{MID} 0.5 {enc} {MID} {score} {enc}\n")
    with pytest.raises(PredictionFileError, match=f"^{sub}:3: image img2: triple 2 .*score '{score}' is not a number"):
        list(read_submission_csv(str(sub)))
    inst = tmp_path / "inst.csv"
    inst.write_text(f"ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask\nimg1,8,6,{MID},{score},{enc}\n")
    with pytest.raises(PredictionFileError, match=f"^{inst}:2: image img1: .*score '{score}'"):
        list(read_instance_csv(str(inst)))


def test_jsonl_reader_names_file_and_line_of_a_bad_score_or_byte(tmp_path):
    good = Detections.from_dense("img1", [MID], [0.5], square()[None])
    path = tmp_path / "p.jsonl"
    write_jsonl(str(path), [good, good])
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1].replace('"score": 0.5', '"score": NaN') + "\n")
    with pytest.raises(PredictionFileError, match=f"^{path}:2: instance 0: score nan is not a number"):
        list(read_jsonl(str(path)))
    path.write_bytes(lines[0].encode() + b"\n" + b'{"image_id": "\xff"}\n')
    with pytest.raises(PredictionFileError, match=f"^{path}:2: non-UTF-8 byte 0xff at column 15"):
        list(read_jsonl(str(path)))
    assert detections_to_json(good) == lines[0]


def test_csv_reader_reports_a_non_utf8_byte_with_its_line(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_bytes(HEADER.encode() + b"img1,8,6,\nimg\xe92,8,6,\n")
    with pytest.raises(PredictionFileError, match=f"^{path}:3: non-UTF-8 byte 0xe9 in field 1"):
        list(read_submission_csv(str(path)))


def test_validator_reports_a_non_utf8_byte_as_a_problem_of_its_line(tmp_path):
    # Issue 10 case 7: a problem with its line, not a UnicodeDecodeError traceback.
    enc = encode_oid_mask(square())
    path = tmp_path / "sub.csv"
    path.write_bytes(
        HEADER.encode() + f"img1,8,6,{MID} 0.5 {enc}\n".encode() + f"img2,8,6,{MID} 0.5 {enc}\xff\n".encode("latin-1")
    )
    problems, stats = validate_submission_report(str(path))
    assert [(p.line, p.kind) for p in problems] == [(3, "encoding")]
    assert "non-UTF-8 byte 0xff in field 4" in problems[0].message
    assert stats.rows == 2


def test_validator_uses_the_readers_score_rule(tmp_path):
    enc = encode_oid_mask(square())
    path = tmp_path / "sub.csv"
    path.write_text(HEADER + f"img1,8,6,{MID} nan {enc} {MID} 1 {enc} {MID} 0 {enc}\n")
    problems, _ = validate_submission_report(str(path))
    assert [(p.line, p.kind) for p in problems] == [(2, "score")] and "1 triple(s) (1)" in problems[0].message
    with pytest.raises(ValueError, match="triple 1"):
        parse_prediction_string(f"{MID} nan {enc}", 6, 8)


def test_parse_submission_rows_in_a_batch_equals_one_by_one_and_fails_alike(tmp_path):
    from hierseg.prediction_file import parse_submission_rows

    rng = np.random.default_rng(0)
    path = tmp_path / "sub.csv"
    lines = []
    for i in range(20):
        h, w = (int(v) for v in rng.integers(3, 30, 2))
        masks = [rng.random((h, w)) < 0.3 for _ in range(int(rng.integers(0, 4)))]
        lines.append(f"img{i},{w},{h}," + " ".join(f"{MID} {rng.random():.9f} {encode_oid_mask(m)}" for m in masks))
    path.write_text(HEADER + "\n".join(lines) + "\n")
    rows = list(submission_rows(str(path)))
    for a, b in zip(parse_submission_rows(rows), [r.detections() for r in rows]):
        assert (a.image_id, a.height, a.width, a.classes) == (b.image_id, b.height, b.width, b.classes)
        assert a.rles == b.rles and a.scores.tolist() == b.scores.tolist() and a.scores.dtype == np.float64
        np.testing.assert_array_equal(a.boxes, b.boxes)
    bad = lines[:]
    i = next(k for k, line in enumerate(bad) if line.count(MID))
    image_id, width, height, _ = bad[i].split(",")
    bad[i] = f"{image_id},{int(width) + 1},{height},{bad[i].split(',')[3]}"  # masks no longer cover the image
    path.write_text(HEADER + "\n".join(bad) + "\n")
    with pytest.raises(PredictionFileError, match=f"^{path}:{i + 2}: image {image_id}: triple 1 .*add up to"):
        parse_submission_rows(list(submission_rows(str(path))))
