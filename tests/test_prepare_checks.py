"""`hierseg prepare` is never silent (issue 11, parts 2 and 3): inputs are checked before work with the
flag to fix named, absent optional files are explained, CSV skips and duplicates are counted with
file:line examples on the console, instance counts are what was written, empty splits fail, and a
rerun resumes only an output written from the same inputs and config."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from data_prep.tf_example import example_class
from data_prep.tfrecord import read_records
from hierseg.oid.layout import OidPaths
from hierseg_cli.main import main


@pytest.fixture()
def data(synth_dir, tmp_path) -> Path:
    """A private copy of the synthetic dataset, to break."""
    out = tmp_path / "oid"
    shutil.copytree(synth_dir, out)
    return out


def prepare_cli(capsys, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(
        ["prepare", "--oid_dir", str(data), "--out", str(out), "--num_workers", "1", "--no_progress"]
        + ["--params_override", "layers=[0],balance.mode=none", *extra]
    )
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("hierseg prepare: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_wrong_image_or_zip_folders_are_refused_before_work(capsys, data, tmp_path):
    out = tmp_path / "out"
    code, _, err = prepare_cli(capsys, data, out, "--train_image_dir", "/nope/train")
    assert code == 2
    assert error_line(err) == "hierseg prepare: error: prepare: missing input: /nope/train (--train_image_dir)"
    code, _, err = prepare_cli(capsys, data, out, "--train_mask_zip_dir", "/nope/zips")
    assert code == 2
    assert error_line(err) == (
        "hierseg prepare: error: prepare: missing input: "
        + "; ".join(
            f"/nope/zips/challenge-2019-train-masks-{s}.zip (--train_mask_zip_dir/--train_mask_zip_prefix)"
            for s in "0123"
        )
        + "; and 12 more"
    )
    assert not out.exists() or not list(out.rglob("*.tfrecord")), "nothing written"


def test_zips_under_another_name_need_the_prefix_flag(capsys, data, tmp_path):
    zips = data / "challenge-2019-train-masks"
    for z in zips.glob("*.zip"):
        z.rename(zips / z.name.replace("challenge-2019-train-masks", "train-masks"))
    code, _, err = prepare_cli(capsys, data, tmp_path / "a")
    assert code == 2 and "challenge-2019-train-masks-0.zip (--train_mask_zip_dir/--train_mask_zip_prefix)" in err
    code, out, _ = prepare_cli(capsys, data, tmp_path / "b", "--train_mask_zip_prefix", "train-masks")
    assert code == 0 and "missing_mask" not in out


def test_absent_optional_files_are_explained_and_empty_splits_fail(capsys, data, tmp_path):
    (data / "challenge-2019-validation-segmentation-masks.csv").unlink()
    (data / "challenge-2019-train-segmentation-bbox.csv").unlink()
    code, out, err = prepare_cli(capsys, data, tmp_path / "a")
    assert code == 0, err
    notes = [ln for ln in out.splitlines() if ln.startswith("note: ")]
    assert notes[0].startswith("note: no validation masks CSV (") and "holding out 5% of the train images" in notes[0]
    assert notes[1].startswith("note: no train bbox CSV (") and "every instance is written with is_crowd 0" in notes[1]
    # A validation CSV with a header only: that layer's validation split is empty -> failed work, exit 1.
    shutil.copy(data / "challenge-2019-train-segmentation-masks.csv", data / "header.csv")
    header = (data / "header.csv").read_text().splitlines()[0]
    (data / "challenge-2019-validation-segmentation-masks.csv").write_text(header + "\n")
    code, _, err = prepare_cli(capsys, data, tmp_path / "b")
    assert code == 1
    assert error_line(err).startswith("hierseg prepare: error: prepare: no example written for layer0 validation")


def test_csv_skips_and_duplicates_on_the_console_with_written_counts(capsys, data, tmp_path):
    paths = OidPaths.from_dir(str(data))
    masks = pd.read_csv(paths.masks_csv("train"), dtype=str, keep_default_na=False)
    row = masks.iloc[0].to_dict()
    bad = pd.DataFrame([dict(row, LabelName="/m/notaclass", MaskPath="ffff" + row["MaskPath"][4:]), row, row])
    pd.concat([masks, bad]).to_csv(paths.masks_csv("train"), index=False)
    n = len(masks)
    out_dir = tmp_path / "out"
    code, out, err = prepare_cli(capsys, data, out_dir)
    assert code == 0, err
    lines = out.splitlines()
    csv = paths.masks_csv("train")
    i = lines.index("train CSV rows skipped, masks_csv.unknown_mid: 1")
    assert lines[i + 1].startswith(f"    {csv}:{n + 2}: ffff")
    i = lines.index("train CSV rows skipped, masks_csv.duplicate_row: 2")
    assert lines[i + 1].startswith(f"    {csv}:{n + 3}: ") and lines[i + 2].startswith(f"    {csv}:{n + 4}: ")
    # The instance column is what the shards hold (not the planned count).
    example = example_class()
    written = sum(
        len(example.FromString(r).features.feature["image/object/class/label"].int64_list.value)
        for p in (out_dir / "layer0").glob("train-*.tfrecord")
        for r in read_records(p.read_bytes())
    )
    row = next(ln for ln in lines if ln.startswith("layer0 train"))
    assert int(row.split()[5]) == written
    info = json.loads((out_dir / "layer0" / "prepare.json").read_text())
    assert info["splits"]["train"]["instances_written"] == written
    assert info["csv_skips"]["train"]["masks_csv.duplicate_row"] == 2


def test_rerun_with_other_config_or_inputs_is_refused_until_overwrite(capsys, data, tmp_path):
    out = tmp_path / "out"
    assert prepare_cli(capsys, data, out)[0] == 0
    assert prepare_cli(capsys, data, out)[0] == 0  # same inputs and config: resumes (nothing to do)
    code, _, err = prepare_cli(capsys, data, out, "--params_override", "gray_value=0")
    assert code == 2
    assert error_line(err) == (
        f"hierseg prepare: error: {out}/layer0/.prepare_state: written by an earlier hierseg prepare run with "
        "other inputs or config (differs: config.gray_value); give --overwrite to start afresh, or another "
        "output folder"
    )
    with open(data / "challenge-2019-train-segmentation-masks.csv", "a") as f:
        f.write("")  # same bytes, newer time: still refused (the identity is size and time)
    bbox = data / "challenge-2019-train-segmentation-bbox.csv"
    bbox.write_text(bbox.read_text() + bbox.read_text().splitlines()[1] + "\n")
    code, _, err = prepare_cli(capsys, data, out)
    assert code == 2 and "differs: inputs.train_bbox_csv.file.mtime_ns, inputs.train_bbox_csv.file.size" in err
    code, _, err = prepare_cli(capsys, data, out, "--params_override", "gray_value=0", "--overwrite")
    assert code == 0, err
    assert json.loads((out / "layer0" / "prepare.json").read_text())["config"]["gray_value"] == 0
    assert prepare_cli(capsys, data, out, "--params_override", "gray_value=0")[0] == 0


def test_two_zip_entries_with_one_base_name_are_refused(tmp_path):
    from hierseg.oid.errors import OidFormatError
    from hierseg.oid.mask_zip import MaskZipReader

    zdir = tmp_path / "zips"
    zdir.mkdir()
    with zipfile.ZipFile(zdir / "m-0.zip", "w") as zf:
        zf.writestr("x/0abc.png", b"a")
        zf.writestr("0abc.png", b"b")
    reader = MaskZipReader(str(zdir), "m")
    with pytest.raises(OidFormatError, match=r"m-0.zip:0abc.png: a second entry named 0abc.png \(first: x/0abc.png\)"):
        reader.read_bytes("0abc.png")


def test_byte_order_marks_read_like_plain_utf8(tmp_path, oid_data):
    from hierseg.hierarchy import Hierarchy
    from hierseg.label_map import LabelMap

    h = oid_data / "oid-challenge-2019-label300-segmentable-hierarchy.json"
    c = oid_data / "oid-challenge-2019-classes-description-segmentable300.csv"
    (tmp_path / "h.json").write_bytes(b"\xef\xbb\xbf" + h.read_bytes())
    (tmp_path / "c.csv").write_bytes(b"\xef\xbb\xbf" + c.read_bytes())
    assert Hierarchy.from_files(str(tmp_path / "h.json"), str(tmp_path / "c.csv")) == Hierarchy.from_files(
        str(h), str(c)
    )
    lm = LabelMap.from_classes(["/m/01g317"], {"/m/01g317": "Person"})
    (tmp_path / "l.pbtxt").write_bytes(b"\xef\xbb\xbf" + lm.to_pbtxt().encode())
    assert LabelMap.load(str(tmp_path / "l.pbtxt")).mids == lm.mids


def test_byte_order_mark_on_prediction_csvs(tmp_path):
    from hierseg.prediction_file import csv_rows

    (tmp_path / "s.csv").write_bytes(b"\xef\xbb\xbfImageID,ImageWidth,ImageHeight,PredictionString\r\nab,4,3,\r\n")
    assert list(csv_rows(str(tmp_path / "s.csv"))) == [
        (1, ["ImageID", "ImageWidth", "ImageHeight", "PredictionString"]),
        (2, ["ab", "4", "3", ""]),
    ]
