"""The synthetic Open Images dataset: layout, published formats, hierarchy coverage, long tail,
determinism, the full-scale annotations-only mode and the `hierseg synth` command."""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hierseg.hierarchy import Hierarchy
from hierseg.oid.layout import ANNOTATED_SPLITS, SHARDS, SPLITS, OidPaths
from hierseg.synth import formats, generate_annotations_only, generate_dataset
from hierseg.synth.annotations_only import apportion
from hierseg.synth.classes import LOOKS, read_real_counts

MASKS_HEADER = "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks"
BBOX_HEADER = "ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf"
LABELS_HEADER = "ImageID,LabelName,Confidence"
HEX16 = re.compile(r"[0-9a-f]{16}")
COORDS = ["XMin", "XMax", "YMin", "YMax"]


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def masks_df(paths: OidPaths, split: str) -> pd.DataFrame:
    return read(paths.masks_csv(split)).rename(columns={f"Box{c}": c for c in COORDS})


@pytest.fixture(scope="module")
def paths(synth_dir) -> OidPaths:
    return OidPaths.from_dir(str(synth_dir))


@pytest.fixture(scope="module")
def synth_hierarchy(paths) -> Hierarchy:
    return Hierarchy.from_files(paths.hierarchy_json, paths.classes_csv)


def image_size(paths: OidPaths, split: str, image_id: str) -> tuple[int, int]:
    with Image.open(paths.image_path(split, image_id)) as im:
        return im.size  # (W, H)


# ---------------------------------------------------------------------------------------- layout
def test_layout_is_complete(paths):
    assert paths.missing() == []
    for split in ANNOTATED_SPLITS:
        zips = sorted(os.listdir(paths.mask_zip_dir(split)))
        assert zips == sorted(f"challenge-2019-{split}-masks-{s}.zip" for s in SHARDS)
    counts = {s: len(os.listdir(paths.image_dir(s))) for s in SPLITS}
    assert counts == {"train": 42, "validation": 9, "test": 9}
    # The test split has images only; nothing else is written into the folder.
    top = set(os.listdir(paths.root))
    assert not any("test-segmentation" in n or "test-masks" in n for n in top)
    assert len(top) == 2 + 3 * 2 + 2 + 3


def test_csv_headers_are_exact(paths):
    for split in ANNOTATED_SPLITS:
        for path, header in (
            (paths.masks_csv(split), MASKS_HEADER),
            (paths.bbox_csv(split), BBOX_HEADER),
            (paths.labels_csv(split), LABELS_HEADER),
        ):
            with open(path, encoding="utf-8") as f:
                assert f.readline().rstrip("\n") == header, path
    first = Path(paths.classes_csv).read_text().splitlines()[0]
    assert first.startswith("/m/") and first.count(",") == 1  # no header line


def test_image_ids_are_16_hex_with_digits_and_leading_zeros(paths):
    all_ids = []
    for split in SPLITS:
        ids = [n[:-4] for n in os.listdir(paths.image_dir(split))]
        assert all(HEX16.fullmatch(i) for i in ids) and all(
            n.endswith(".jpg") for n in os.listdir(paths.image_dir(split))
        )
        all_ids += ids
        if split in ANNOTATED_SPLITS:
            for path in (paths.masks_csv(split), paths.bbox_csv(split), paths.labels_csv(split)):
                csv_ids = set(read(path)["ImageID"])
                assert csv_ids <= set(ids), path  # read as strings, leading zeros intact
    assert len(set(all_ids)) == 60
    assert any(i.isdigit() for i in all_ids)
    assert any(i.startswith("0") for i in all_ids)


def test_images_are_rgb_jpegs_within_size_bounds(paths):
    for split in SPLITS:
        for name in sorted(os.listdir(paths.image_dir(split)))[:10]:
            with Image.open(os.path.join(paths.image_dir(split), name)) as im:
                assert im.format == "JPEG" and im.mode == "RGB"
                assert 128 <= im.width <= 256 and 128 <= im.height <= 256


# ----------------------------------------------------------------------------------------- masks
def test_mask_rows_follow_the_published_format(paths):
    for split in ANNOTATED_SPLITS:
        df = read(paths.masks_csv(split))
        assert len(df) > 0 and df["MaskPath"].is_unique
        expected = df["ImageID"] + "_" + df["LabelName"].str.replace("/", "") + "_" + df["BoxID"] + ".png"
        assert (df["MaskPath"] == expected).all()
        assert df["BoxID"].str.fullmatch(r"[0-9a-f]{8}").all()
        for c in ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"):
            assert df[c].str.fullmatch(r"(0|1)(\.\d{0,6}[1-9])?").all(), c  # <= 6 decimals, no trailing zero
            assert df[c].astype(float).between(0, 1).all()
        assert (df["BoxXMin"].astype(float) < df["BoxXMax"].astype(float)).all()
        assert (df["BoxYMin"].astype(float) < df["BoxYMax"].astype(float)).all()
        assert df["PredictedIoU"].str.fullmatch(r"0\.\d{0,4}[1-9]").all()
        click = r"[01]\.\d{5} [01]\.\d{5} [01]"
        assert df["Clicks"].str.fullmatch(rf"{click}(;{click})*").all()


def test_mask_pngs_are_in_their_shard_smaller_than_the_image_and_match_the_box(paths):
    modes = set()
    for split in ANNOTATED_SPLITS:
        df = read(paths.masks_csv(split))
        entries: dict[str, bytes] = {}
        for shard in SHARDS:
            with zipfile.ZipFile(paths.mask_zip(split, shard)) as zf:
                for name in zf.namelist():
                    assert name[0] == shard, (shard, name)
                    entries[name] = zf.read(name)
        assert sorted(entries) == sorted(df["MaskPath"])
        for row in df.itertuples():
            w, h = image_size(paths, split, row.ImageID)
            png = Image.open(io.BytesIO(entries[row.MaskPath]))
            modes.add(png.mode)
            assert png.size == (w // 2, h // 2)  # lower resolution than the image
            raw = np.asarray(png)
            if png.mode == "L":
                assert set(np.unique(raw).tolist()) <= {0, 255}
            mask = np.asarray(png.convert("L").resize((w, h), Image.NEAREST)) > 127
            assert mask.any()
            ys, xs = np.nonzero(mask)
            box = np.array(
                [float(row.BoxXMin) * w, float(row.BoxXMax) * w, float(row.BoxYMin) * h, float(row.BoxYMax) * h]
            )
            got = np.array([xs.min(), xs.max() + 1, ys.min(), ys.max() + 1], dtype=float)
            assert np.abs(got - box).max() <= 3.0, (row.MaskPath, got, box)  # half-resolution rounding
    assert modes == {"L", "1"}


def test_masks_cover_the_drawn_object(paths, synth_hierarchy):
    """Solid-coloured classes: the pixels under a mask have the class colour (mask and image agree)."""
    df = read(paths.masks_csv("train"))
    checked = 0
    for name, channel in (("Man", 2), ("Woman", 0)):
        for row in df[df["LabelName"] == synth_hierarchy.mid_of(name)].itertuples():
            with zipfile.ZipFile(paths.mask_zip("train", row.MaskPath[0])) as zf:
                png = Image.open(io.BytesIO(zf.read(row.MaskPath)))
            with Image.open(paths.image_path("train", row.ImageID)) as im:
                rgb = np.asarray(im, dtype=np.float32)
            mask = np.asarray(png.convert("L").resize(im.size, Image.NEAREST)) > 127
            mean = rgb[mask].mean(axis=0)
            others = [c for c in range(3) if c != channel]
            assert mean[channel] > mean[others].max() + 60, (name, mean)
            checked += 1
    assert checked >= 6


# ------------------------------------------------------------------------------ boxes and labels
def test_bbox_rows_repeat_mask_coordinates_and_add_group_of_and_box_only(paths):
    for split in ANNOTATED_SPLITS:
        masks = masks_df(paths, split)
        bbox = read(paths.bbox_csv(split))
        assert set(bbox["IsGroupOf"]) == {"0", "1"}
        keys = ["ImageID", "LabelName", *COORDS]
        plain = bbox[bbox["IsGroupOf"] == "0"]
        merged = masks.merge(plain, on=keys, how="left", indicator=True)
        assert (merged["_merge"] == "both").all()  # identical coordinate text for every mask
        # The official evaluator merges on parsed floats: those must match too.
        as_float = (
            masks[keys]
            .astype(dict.fromkeys(COORDS, float))
            .merge(plain[keys].astype(dict.fromkeys(COORDS, float)), on=keys)
        )
        assert len(as_float) == len(masks)
        box_only = plain.merge(masks[keys], on=keys, how="left", indicator=True)
        assert (box_only["_merge"] == "left_only").sum() >= 1
        assert len(bbox) == len(masks) + (box_only["_merge"] == "left_only").sum() + (bbox["IsGroupOf"] == "1").sum()


def test_labels_have_positives_for_present_classes_and_unrelated_negatives(paths, synth_hierarchy):
    h = synth_hierarchy
    for split in ANNOTATED_SPLITS:
        labels = read(paths.labels_csv(split))
        bbox = read(paths.bbox_csv(split))
        assert set(labels["Confidence"]) == {"0", "1"}
        pos = labels[labels["Confidence"] == "1"]
        assert set(zip(pos["ImageID"], pos["LabelName"])) == set(zip(bbox["ImageID"], bbox["LabelName"]))
        present = pos.groupby("ImageID")["LabelName"].apply(set).to_dict()
        neg = labels[labels["Confidence"] == "0"]
        assert len(neg) >= 3
        for image_id, mid in zip(neg["ImageID"], neg["LabelName"]):
            for p in present.get(image_id, ()):
                assert mid != p and mid not in h.ancestors(p) and mid not in h.descendants(p)
        assert not labels.duplicated(["ImageID", "LabelName"]).any()


# ------------------------------------------------------------------------------------- hierarchy
def test_hierarchy_file_covers_every_case_with_real_mids(synth_hierarchy, hierarchy):
    h = synth_hierarchy
    assert len(h) == len(LOOKS) == 19
    for mid in h.classes:  # real MIDs, real names, real edges
        assert h.name(mid) == hierarchy.name(mid)
        assert set(h.parents(mid)) == set(hierarchy.parents(mid)) & set(h.classes)
    teddy = h.mid_of("Teddy bear")
    assert {h.name(p) for p in h.parents(teddy)} == {"Toy", "Bear"}
    assert h.multi_parent_classes() == (teddy,)
    assert h.path_down(h.mid_of("Carnivore"), h.mid_of("Brown bear")) == tuple(
        h.mid_of(n) for n in ("Carnivore", "Bear", "Brown bear")
    )
    assert h.max_depth == 2
    assert {h.name(c) for c in h.children(h.mid_of("Person"))} == {"Man", "Woman", "Boy", "Girl"}
    assert {h.name(c) for c in h.children(h.mid_of("Car"))} == {"Van", "Limousine"}
    leaves0 = [c for c in h.roots() if h.is_leaf(c)]
    assert len(leaves0) == 5


def test_every_class_has_masks_in_both_splits_parents_included(paths, synth_hierarchy):
    for split, floor in (("train", 3), ("validation", 1)):
        counts = read(paths.masks_csv(split))["LabelName"].value_counts()
        for mid in synth_hierarchy.classes:
            assert counts.get(mid, 0) >= floor, (split, synth_hierarchy.name(mid))
    # Parent classes carry their own masks (instances labeled just Person, Car, Bear, ...).
    parents = set(synth_hierarchy.parent_classes())
    assert {synth_hierarchy.name(p) for p in parents} == {"Person", "Car", "Carnivore", "Bear", "Toy"}


def test_class_frequencies_are_long_tailed_like_the_real_counts(paths, synth_hierarchy):
    h = synth_hierarchy
    counts = read(paths.masks_csv("train"))["LabelName"].value_counts()
    real = read_real_counts()
    person_family = sum(counts.get(m, 0) for m in (h.mid_of("Person"), *h.children(h.mid_of("Person"))))
    rare = [h.mid_of(n) for n in ("Limousine", "Bear", "Brown bear", "Polar bear")]
    assert person_family > 5 * max(counts[m] for m in rare)
    # Masks above the per-class floor go mostly to the classes that are most frequent in reality.
    top5 = sorted(h.classes, key=lambda m: -real[m])[:5]
    floor = counts.min()
    extra = counts - floor
    assert extra[top5].sum() >= 0.55 * extra.sum()


# ----------------------------------------------------------------------------------- determinism
def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    a = _tree_bytes(_gen(tmp_path / "a", 12, seed=3))
    b = _tree_bytes(_gen(tmp_path / "b", 12, seed=3))
    assert a == b
    c = _tree_bytes(_gen(tmp_path / "c", 12, seed=4))
    for name in ("challenge-2019-train-segmentation-masks.csv", "challenge-2019-train-segmentation-bbox.csv"):
        assert a[name] != c[name]
    assert not set(k for k in a if k.endswith(".jpg")) & set(k for k in c if k.endswith(".jpg"))
    # Regenerating smaller into the same folder leaves exactly the new images.
    _gen(tmp_path / "a", 6, seed=3)
    assert sum(len(os.listdir(tmp_path / "a" / s)) for s in SPLITS) == 6


def _gen(out: Path, n: int, seed: int) -> Path:
    generate_dataset(str(out), num_images=n, seed=seed)
    return out


def test_summary_matches_files(tmp_path):
    s = generate_dataset(str(tmp_path), num_images=20, seed=1, min_size=96, max_size=96)
    paths = OidPaths.from_dir(str(tmp_path))
    for split in ANNOTATED_SPLITS:
        df = read(paths.masks_csv(split))
        assert s["splits"][split]["masks"] == len(df)
        assert s["splits"][split]["masks_per_class"] == {m: int((df["LabelName"] == m).sum()) for m in s["classes"]}
        assert s["splits"][split]["group_of_boxes"] == int((read(paths.bbox_csv(split))["IsGroupOf"] == "1").sum())
    assert {k: v["images"] for k, v in s["splits"].items()} == {"train": 14, "validation": 3, "test": 3}
    with Image.open(next(iter(Path(paths.image_dir("train")).iterdir()))) as im:
        assert im.size == (96, 96)


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        generate_dataset(str(tmp_path), num_images=0)
    with pytest.raises(ValueError, match="min_size"):
        generate_dataset(str(tmp_path), num_images=5, min_size=300, max_size=200)
    with pytest.raises(ValueError, match="split_fractions"):
        generate_dataset(str(tmp_path), num_images=5, split_fractions=(1.0, -1.0, 0.5))
    with pytest.raises(ValueError, match="num_images <= num_masks"):
        generate_annotations_only(str(tmp_path), num_masks=10, num_images=20)


# --------------------------------------------------------------------- text formats (vs reference)
def test_vectorized_formats_match_the_per_value_reference():
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.integers(0, 10**6 + 1, 500), [0, 1, 10, 100000, 887500, 10**6]])
    assert formats.decimal_strings(q, 6).to_pylist() == [formats.format_decimal(v, 6) for v in q]
    assert formats.format_decimal(887500, 6) == "0.8875" and formats.format_decimal(10**6, 6) == "1"
    q5 = rng.integers(0, 10**5 + 1, 300)
    assert formats.decimal_strings(q5, 5).to_pylist() == [formats.format_decimal(v, 5) for v in q5]
    xq, yq = rng.integers(0, 10**5 + 1, (2, 40, 6))
    lab, cnt = rng.integers(0, 2, (40, 6)), rng.integers(0, 7, 40)
    got = formats.clicks_strings(xq, yq, lab, cnt).to_pylist()
    assert got == [formats.format_clicks(xq[i, :c], yq[i, :c], lab[i, :c]) for i, c in enumerate(cnt)]
    v = rng.integers(0, 2**32, 100, dtype=np.uint64)
    assert formats.hex_strings(v, 8).to_pylist() == [f"{int(x):08x}" for x in v]
    ids = formats.ids_as_str(formats.random_image_ids(np.random.default_rng(1), 5000))
    assert len(set(ids)) == 5000 and all(HEX16.fullmatch(i) for i in ids)
    assert 0.05 < np.mean([i.isdigit() for i in ids]) < 0.11
    assert np.mean([i.startswith("0") for i in ids]) > 0.1


def test_apportion_is_exact_and_reproduces_the_real_counts_at_full_scale():
    real = np.array(list(read_real_counts().values()))
    assert (apportion(int(real.sum()), real) == real).all()
    parts = apportion(1000, real)
    assert parts.sum() == 1000 and parts.min() >= 1
    assert apportion(7, np.array([1.0, 1.0, 1.0])).tolist() == [3, 2, 2]


# ----------------------------------------------------------------------------- annotations only
def test_annotations_only_counts_proportions_and_consistency(tmp_path, hierarchy):
    s = generate_annotations_only(str(tmp_path), num_masks=20000, num_images=8000, seed=0)
    paths = OidPaths.from_dir(str(tmp_path))
    masks = masks_df(paths, "train")
    assert len(masks) == 20000 and masks["ImageID"].nunique() == 8000
    assert masks["ImageID"].str.fullmatch(HEX16).all() and masks["ImageID"].is_monotonic_increasing
    assert masks["ImageID"].str.fullmatch(r"\d{16}").any()
    expected = masks["ImageID"] + "_" + masks["LabelName"].str.replace("/", "") + "_" + masks["BoxID"] + ".png"
    assert (masks["MaskPath"] == expected).all() and masks["MaskPath"].is_unique
    # Per-class counts: all 300 classes, in the real proportions.
    real = pd.Series(read_real_counts())
    counts = masks["LabelName"].value_counts().reindex(real.index, fill_value=0)
    assert (counts >= 1).all() and counts.to_dict() == s["masks_per_class"]
    want = real / real.sum() * 20000
    big = want >= 100
    assert (np.abs(counts[big] - want[big]) <= 0.02 * want[big] + 1).all()
    assert np.corrcoef(np.log(counts), np.log(real))[0, 1] > 0.97
    # Boxes: identical coordinate text; extra box-only and group-of rows.
    bbox = read(paths.bbox_csv("train"))
    keys = ["ImageID", "LabelName", *COORDS]
    merged = masks[keys].merge(
        bbox[bbox["IsGroupOf"] == "0"][keys].drop_duplicates(), on=keys, how="left", indicator=True
    )
    assert (merged["_merge"] == "both").all()
    assert len(bbox) == 20000 + s["box_only_boxes"] + s["group_of_boxes"] and s["group_of_boxes"] > 0
    assert (bbox["IsGroupOf"] == "1").sum() == s["group_of_boxes"]
    xs = masks[COORDS].astype(float)
    assert ((xs >= 0) & (xs <= 1)).all().all() and (xs["XMin"] < xs["XMax"]).all() and (xs["YMin"] < xs["YMax"]).all()
    # Labels: positives = (image, class) pairs with a box; negatives unrelated to anything present.
    labels = read(paths.labels_csv("train"))
    pos = labels[labels["Confidence"] == "1"]
    assert set(zip(pos["ImageID"], pos["LabelName"])) == set(zip(bbox["ImageID"], bbox["LabelName"]))
    neg = labels[labels["Confidence"] == "0"]
    assert len(neg) == s["negative_labels"] > 1000
    present = pos.groupby("ImageID")["LabelName"].apply(set).to_dict()
    for image_id, mid in list(zip(neg["ImageID"], neg["LabelName"]))[:2000]:
        for p in present[image_id]:
            assert mid != p and mid not in hierarchy.ancestors(p) and mid not in hierarchy.descendants(p)
    h = Hierarchy.from_files(paths.hierarchy_json, paths.classes_csv)
    assert len(h) == 300 and h.multi_parent_classes() == (h.mid_of("Teddy bear"),)
    assert not os.path.exists(paths.mask_zip_dir("train"))


# ------------------------------------------------------------------------------------------- CLI
def test_cli_writes_the_dataset_and_prints_the_summary(tmp_path, capsys):
    from hierseg_cli.main import main

    assert main(["synth", "--out", str(tmp_path / "d"), "--images", "10", "--seed", "2", "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert "Teddy bear" in out and "validation" in out and "/m/01g317" in out
    assert OidPaths.from_dir(str(tmp_path / "d")).missing() == []
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "a"),
                "--annotations_only",
                "--num_masks",
                "3000",
                "--images",
                "1000",
                "--no_progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3,000" in out and "Girl" in out
    assert len(read(tmp_path / "a" / "challenge-2019-train-segmentation-masks.csv")) == 3000
