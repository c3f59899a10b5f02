"""Open Images annotation CSV readers: dtypes, leading zeros, every error naming file and line,
skip mode counting per reason, on real rows and tiny hand-made files."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.oid.tables import (
    BBOX_COLUMNS,
    IMAGE_LABELS_COLUMNS,
    SEGMENTATION_COLUMNS,
    OidFormatError,
    SkipCounts,
    read_bbox_csv,
    read_image_labels_csv,
    read_segmentation_csv,
)

SEG_HEADER = ",".join(SEGMENTATION_COLUMNS)
BBOX_HEADER = ",".join(BBOX_COLUMNS)
LABELS_HEADER = ",".join(IMAGE_LABELS_COLUMNS)


def write(tmp_path, name: str, lines: list[str]) -> str:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def seg_row(
    image_id="0012345678901234",
    mid="/m/04yx4",
    box_id="00000001",
    box="0.1,0.5,0.2,0.6",
    iou="0.8",
    clicks="0.1 0.2 1;0.3 0.4 0",
) -> str:
    return f"{image_id}_{mid[3:]}_{box_id}.png,{image_id},{mid},{box_id},{box},{iou},{clicks}"


def test_real_sample_rows(oid_data):
    df, skips = read_segmentation_csv(str(oid_data / "sample_train-annotations-object-segmentation.csv"))
    assert list(df.columns) == list(SEGMENTATION_COLUMNS)
    assert len(df) == 4 and skips.total == 0
    row = df.iloc[0]
    assert row.MaskPath == "677c122b0eaa5d16_m04yx4_9a041d52.png"
    assert row.ImageID == "677c122b0eaa5d16" and row.BoxID == "9a041d52" and row.LabelName == "/m/04yx4"
    assert (row.BoxXMin, row.BoxXMax, row.BoxYMin, row.BoxYMax) == (0.8875, 0.960938, 0.454167, 0.720833)
    assert row.PredictedIoU == pytest.approx(0.86864)
    assert row.Clicks.startswith("0.95498 0.65197 1;")
    assert df.BoxXMin.dtype == np.float64


def test_v6_format_fixtures(oid_data):
    fx = oid_data / "format-fixtures"
    seg, _ = read_segmentation_csv(str(fx / "annotations_train-annotations-object-segmentation.csv"))
    assert seg.iloc[0].BoxID == "01234567"  # all-digit BoxID keeps its leading zero
    assert seg.iloc[0].PredictedIoU == 0.5
    assert seg.iloc[0].Clicks == ""
    # V6 bbox/label files have extra columns (Source, IsOccluded, ...): located by header, dropped.
    boxes, _ = read_bbox_csv(str(fx / "annotations_oidv6-train-annotations-bbox.csv"))
    assert list(boxes.columns) == list(BBOX_COLUMNS)
    assert boxes.iloc[0].ImageID == "b" and boxes.iloc[0].XMax == 1.0
    assert not boxes.iloc[0].IsGroupOf  # -1 = unknown in V6 -> False
    labels, _ = read_image_labels_csv(str(fx / "annotations_oidv6-train-annotations-human-imagelabels.csv"))
    assert labels.Confidence.tolist() == [1, 0]


def test_leading_zero_ids_survive(tmp_path):
    p = write(tmp_path, "seg.csv", [SEG_HEADER, seg_row(), seg_row(image_id="0000000000000001", box_id="0000e100")])
    df, _ = read_segmentation_csv(p)
    assert df.ImageID.tolist() == ["0012345678901234", "0000000000000001"]
    assert df.BoxID.tolist() == ["00000001", "0000e100"]  # "0000e100" would parse as the float 0.0
    p = write(tmp_path, "bbox.csv", [BBOX_HEADER, "0012345678901234,/m/0,0,1,0,1,1"])
    df, _ = read_bbox_csv(p)
    assert df.ImageID.tolist() == ["0012345678901234"] and df.IsGroupOf.dtype == bool and df.IsGroupOf[0]
    p = write(tmp_path, "labels.csv", [LABELS_HEADER, "0012345678901234,/m/0,1", "0000000000000009,/m/0,0"])
    df, _ = read_image_labels_csv(p)
    assert df.ImageID.tolist() == ["0012345678901234", "0000000000000009"]
    assert df.Confidence.tolist() == [1, 0] and df.Confidence.dtype == np.int8


def test_columns_in_other_order_and_blank_lines(tmp_path):
    p = write(
        tmp_path,
        "bbox.csv",
        ["LabelName,IsGroupOf,ImageID,YMin,YMax,XMin,XMax", "/m/0,0,abc,0.1,0.2,0.3,0.4", "", "/m/1,1,def,0,1,0,1"],
    )
    df, _ = read_bbox_csv(p)
    assert list(df.columns) == list(BBOX_COLUMNS)
    assert df.iloc[0].tolist() == ["abc", "/m/0", 0.3, 0.4, 0.1, 0.2, False]
    assert df.iloc[1].ImageID == "def" and df.iloc[1].IsGroupOf


def test_empty_predicted_iou_is_nan(tmp_path):
    df, _ = read_segmentation_csv(write(tmp_path, "s.csv", [SEG_HEADER, seg_row(iou="", clicks="")]))
    assert np.isnan(df.PredictedIoU[0]) and df.Clicks[0] == ""


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "first_line, match",
    [
        ("MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,PredictedIoU,Clicks", "missing column.*BoxYMax"),
        (seg_row(), "missing column"),  # no header at all: the first data row is taken as one
        ("", "empty file or header"),
        (SEG_HEADER + ",ImageID", "repeats column.*ImageID"),
    ],
)
def test_bad_header_names_file_and_line_1(tmp_path, first_line, match):
    p = write(tmp_path, "seg.csv", [first_line, seg_row()])
    for mode in ("raise", "skip"):  # a bad header is never skippable
        with pytest.raises(OidFormatError, match=f"^{p}:1: .*{match}"):
            read_segmentation_csv(p, on_error=mode)


def test_missing_file_names_it(tmp_path):
    p = str(tmp_path / "nope.csv")
    with pytest.raises(OidFormatError, match=f"^{p}: cannot read"):
        read_bbox_csv(p)


SEG_CASES = [
    # (bad row, expected message, skip reason)
    (seg_row()[:-30], "malformed row: expected 10 fields.*got 7", "field_count"),
    (seg_row() + ",extra", "malformed row: expected 10 fields.*got 11", "field_count"),
    (seg_row(box="0.1,abc,0.2,0.6"), "BoxXMax is not a number: 'abc'", "non_numeric"),
    (seg_row(box="0.1,,0.2,0.6"), "BoxXMax is not a number: ''", "non_numeric"),
    (seg_row(iou="high"), "PredictedIoU is not a number", "non_numeric"),
    (seg_row(image_id=""), "empty ImageID", "empty_field"),
    (seg_row(box="0.1,1.5,0.2,0.6"), "box outside \\[0, 1\\].*BoxXMax=1.5", "box_out_of_range"),
    (seg_row(box="-0.1,0.5,0.2,0.6"), "box outside \\[0, 1\\]", "box_out_of_range"),
    (seg_row(box="0.1,0.5,nan,0.6"), "box outside \\[0, 1\\]", "box_out_of_range"),
    (seg_row(box="0.1,0.5,0.7,0.6"), "box min > max: BoxYMin=0.7 > BoxYMax=0.6", "box_min_gt_max"),
    (seg_row(mid="/m/0zzzz"), "LabelName /m/0zzzz is not in the class list", "unknown_mid"),
]


@pytest.mark.parametrize("bad, match, reason", SEG_CASES)
def test_segmentation_errors_name_file_and_line(tmp_path, bad, match, reason):
    # Bad row at file line 5 (header 1, rows 2-3, a blank line 4 that pyarrow skips too).
    # (The last row differs from the first: an exact repeat would be dropped as a duplicate.)
    last = seg_row(box_id="00000003")
    p = write(tmp_path, "seg.csv", [SEG_HEADER, seg_row(), seg_row(box_id="00000002"), "", bad, last])
    mids = {"/m/04yx4"}
    with pytest.raises(OidFormatError, match=f"^{p}:5: (malformed row: )?{match}"):
        read_segmentation_csv(p, valid_mids=mids)
    df, skips = read_segmentation_csv(p, valid_mids=mids, on_error="skip")
    assert len(df) == 3 and df.BoxID.tolist() == ["00000001", "00000002", "00000003"]
    assert skips.examples[reason][0].startswith(f"{p}:5: ")
    assert skips.counts == {reason: 1} and skips.total == 1
    assert len(skips.examples[reason]) == 1


def test_first_bad_row_in_file_order_is_reported(tmp_path):
    # A value error on line 3 comes before a field-count error on line 4, and the reverse.
    p = write(tmp_path, "a.csv", [SEG_HEADER, seg_row(), seg_row(box="0,2,0,1"), "x,y", seg_row()])
    with pytest.raises(OidFormatError, match=f"^{p}:3: box outside"):
        read_segmentation_csv(p)
    p = write(tmp_path, "b.csv", [SEG_HEADER, seg_row(), "x,y", seg_row(box="0,2,0,1")])
    with pytest.raises(OidFormatError, match=f"^{p}:3: malformed row"):
        read_segmentation_csv(p)


@pytest.mark.parametrize(
    "bad, match, reason",
    [
        ("abc,/m/0,0.1,0.2,0.3,0.4,2", "IsGroupOf must be 0 or 1", "bad_is_group_of"),
        ("abc,/m/0,0.1,0.2,0.3,0.4,yes", "IsGroupOf is not a number", "non_numeric"),
        ("abc,/m/0,0.3,0.2,0.3,0.4,0", "box min > max: XMin=0.3 > XMax=0.2", "box_min_gt_max"),
        ("abc,/m/0,0.1,0.2,0.3,1.01,0", "box outside", "box_out_of_range"),
        ("abc,/m/9,0.1,0.2,0.3,0.4,0", "LabelName /m/9 is not in the class list", "unknown_mid"),
        ("abc,/m/0,0.1,0.2", "expected 7 fields", "field_count"),
    ],
)
def test_bbox_errors(tmp_path, bad, match, reason):
    p = write(tmp_path, "bbox.csv", [BBOX_HEADER, "abc,/m/0,0,1,0,1,0", bad])
    with pytest.raises(OidFormatError, match=f"^{p}:3: (malformed row: )?{match}"):
        read_bbox_csv(p, valid_mids=["/m/0"])
    df, skips = read_bbox_csv(p, valid_mids=["/m/0"], on_error="skip")
    assert len(df) == 1 and skips.counts == {reason: 1}


@pytest.mark.parametrize(
    "bad, match, reason",
    [
        ("abc,/m/0,2", "Confidence must be 0 or 1, got '2'", "bad_confidence"),
        ("abc,/m/0,0.5", "Confidence must be 0 or 1", "bad_confidence"),
        ("abc,/m/0,", "Confidence is not a number", "non_numeric"),
        ("abc,,1", "empty LabelName", "empty_field"),
        ("abc,/m/7,1", "LabelName /m/7 is not in the class list", "unknown_mid"),
    ],
)
def test_image_label_errors(tmp_path, bad, match, reason):
    p = write(tmp_path, "labels.csv", [LABELS_HEADER, "abc,/m/0,1", "abc,/m/0,0", bad])
    with pytest.raises(OidFormatError, match=f"^{p}:4: (malformed row: )?{match}"):
        read_image_labels_csv(p, valid_mids=["/m/0"])
    df, skips = read_image_labels_csv(p, valid_mids=["/m/0"], on_error="skip")
    assert df.Confidence.tolist() == [1, 0] and skips.counts == {reason: 1}


def test_skip_mode_counts_each_reason_with_examples(tmp_path):
    lines = [SEG_HEADER]
    lines += [seg_row(box_id=f"{i:08x}") for i in range(20)]
    lines += [seg_row(box="0,1.5,0,1")] * 5
    lines += [seg_row(mid="/m/0zzzz")] * 4
    lines += ["a,b"] * 2
    lines += [seg_row(box="0,0.5,0.9,0.6", image_id="0999999999999999")]
    p = write(tmp_path, "seg.csv", lines)
    df, skips = read_segmentation_csv(p, valid_mids=["/m/04yx4"], on_error="skip")
    assert len(df) == 20
    assert skips.counts == {"field_count": 2, "box_out_of_range": 5, "box_min_gt_max": 1, "unknown_mid": 4}
    assert list(skips.counts) == ["field_count", "box_out_of_range", "box_min_gt_max", "unknown_mid"]
    assert skips.total == 12
    assert len(skips.examples["box_out_of_range"]) == 3  # a few examples, not all
    # Examples are "file:line: row" (header = line 1; the two short rows on lines 31-32 are counted).
    assert skips.examples["box_min_gt_max"][0].startswith(f"{p}:33: 0999999999999999_")
    assert skips.examples["field_count"] == [f"{p}:31: a,b", f"{p}:32: a,b"]
    assert skips.examples["box_out_of_range"][0].startswith(f"{p}:22: ")
    d = skips.as_dict()
    assert d["total"] == 12 and d["counts"]["unknown_mid"] == 4
    assert "12 rows skipped" in str(skips)
    merged = SkipCounts().merge(skips).merge(skips)
    assert merged.total == 24 and len(merged.examples["box_out_of_range"]) == 3


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_duplicate_rows_are_dropped_and_counted(tmp_path, on_error):
    """Three identical lines are one instance, not three; the repeats are counted with their lines."""
    lines = [SEG_HEADER, seg_row(box_id="00000001"), seg_row(box_id="00000002")]
    lines += [seg_row(box_id="00000001")] * 2
    p = write(tmp_path, "seg.csv", lines)
    df, skips = read_segmentation_csv(p, valid_mids=["/m/04yx4"], on_error=on_error)
    assert df.BoxID.tolist() == ["00000001", "00000002"]
    assert skips.counts == {"duplicate_row": 2}
    assert [e.split(": ")[0] for e in skips.examples["duplicate_row"]] == [f"{p}:4", f"{p}:5"]
    lines = [BBOX_HEADER, "a,/m/0,0.1,0.2,0.1,0.2,0", "a,/m/0,0.1,0.2,0.1,0.2,0", "a,/m/0,0.1,0.2,0.1,0.2,1"]
    df, skips = read_bbox_csv(write(tmp_path, "bbox.csv", lines), valid_mids=["/m/0"], on_error=on_error)
    assert len(df) == 2 and skips.counts == {"duplicate_row": 1}


def test_on_error_must_be_known(tmp_path):
    p = write(tmp_path, "s.csv", [SEG_HEADER, seg_row()])
    with pytest.raises(ValueError, match="on_error"):
        read_segmentation_csv(p, on_error="ignore")


@pytest.mark.parametrize("content", [LABELS_HEADER, LABELS_HEADER + "\n"])
def test_header_only_file_is_empty(tmp_path, content):
    p = tmp_path / "labels.csv"
    p.write_text(content)
    df, skips = read_image_labels_csv(str(p))
    assert len(df) == 0 and list(df.columns) == list(IMAGE_LABELS_COLUMNS) and skips.total == 0
    assert df.Confidence.dtype == np.int8
