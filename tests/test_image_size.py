"""Image sizes from headers, the CSV cache, and the dataset folder layout (OidPaths)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from hierseg.oid import layout
from hierseg.oid.image_size import ImageSizeCache, OidFormatError, read_image_size
from hierseg.oid.layout import OidPaths


def save_image(path, height: int, width: int, fmt: str = "JPEG", exif_orientation: int | None = None) -> str:
    im = Image.fromarray(np.full((height, width, 3), 100, np.uint8))
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    im.save(path, format=fmt, **kwargs)
    return str(path)


def test_read_size_jpeg_png_bytes(tmp_path):
    assert read_image_size(save_image(tmp_path / "a.jpg", 30, 50)) == (30, 50)
    assert read_image_size(save_image(tmp_path / "b.png", 7, 3, "PNG")) == (7, 3)
    assert read_image_size((tmp_path / "a.jpg").read_bytes()) == (30, 50)


def test_header_only_no_decode(tmp_path):
    # A JPEG cut right after its headers (start of scan) still reports its size: pixels are never decoded.
    path = save_image(tmp_path / "a.jpg", 400, 600)
    data = open(path, "rb").read()
    sos = data.find(b"\xff\xda")
    assert 0 < sos < len(data) - 100
    assert read_image_size(data[: sos + 14]) == (400, 600)


def test_exif_rotation_is_ignored(tmp_path):
    # Orientation 6 = display rotated 90 degrees; Open Images boxes refer to the stored pixels.
    path = save_image(tmp_path / "r.jpg", 20, 40, exif_orientation=6)
    assert Image.open(path).getexif()[0x0112] == 6
    assert read_image_size(path) == (20, 40)


def test_errors_name_the_file(tmp_path):
    missing = str(tmp_path / "missing.jpg")
    with pytest.raises(OidFormatError, match=f"^{missing}: image not found"):
        read_image_size(missing)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(OidFormatError, match=f"^{bad}: cannot read the image header"):
        read_image_size(str(bad))
    with pytest.raises(OidFormatError, match="^<image bytes>: cannot read"):
        read_image_size(b"\xff\xd8garbage")


def test_cache_reads_once_and_persists_atomically(tmp_path):
    ids = ["0012345678901234", "00000000000000ab", "ffffffffffffffff"]
    sizes = [(10, 20), (31, 17), (5, 5)]
    paths = [save_image(tmp_path / f"{i}.jpg", h, w) for i, (h, w) in zip(ids, sizes)]
    cache_csv = str(tmp_path / "cache" / "sizes.csv")
    cache = ImageSizeCache(cache_csv)
    assert cache.get(ids[0], paths[0]) == (10, 20)
    got = cache.get_many(ids, paths, num_workers=3)
    assert got == dict(zip(ids, sizes))
    assert os.path.exists(cache_csv) and not [f for f in os.listdir(tmp_path / "cache") if ".tmp" in f]
    text = open(cache_csv).read().splitlines()
    assert text[0] == "ImageID,Width,Height"
    assert "0012345678901234,20,10" in text  # Width before Height; leading zeros kept
    # A new cache reads the file and never touches the images again.
    for p in paths:
        os.remove(p)
    again = ImageSizeCache(cache_csv)
    assert len(again) == 3 and ids[1] in again
    assert again.get_many(ids, paths, num_workers=1) == dict(zip(ids, sizes))
    assert again.get(ids[0], paths[0]) == (10, 20)
    mem = ImageSizeCache(None)
    with pytest.raises(OidFormatError, match="image not found"):
        mem.get_many(ids, paths, num_workers=2)
    with pytest.raises(ValueError, match="no cache file"):
        mem.save()


def test_cache_get_many_progress_and_length_check(tmp_path, capsys):
    p = save_image(tmp_path / "x.jpg", 8, 9)
    cache = ImageSizeCache()
    assert cache.get_many(["x"], [p], show_progress=True) == {"x": (8, 9)}
    with pytest.raises(ValueError, match="1 ImageIDs but 2 paths"):
        cache.get_many(["x"], [p, p])


@pytest.mark.parametrize(
    "content, match",
    [
        ("ImageID,Height,Width\na,1,2\n", ":1: image size cache must start with header"),
        ("ImageID,Width,Height\na,1,2\nb,x,2\n", ":3: bad image size row"),
        ("ImageID,Width,Height\na,1\n", ":2: bad image size row"),
        ("ImageID,Width,Height\na,0,2\n", ":2: bad image size row"),
    ],
)
def test_bad_cache_file_names_line(tmp_path, content, match):
    p = tmp_path / "sizes.csv"
    p.write_text(content)
    with pytest.raises(OidFormatError, match=f"^{p}{match}"):
        ImageSizeCache(str(p))


# ------------------------------------------------------------------------------------- layout
def test_layout_published_names():
    p = OidPaths.from_dir("/data/oid/")
    assert p.hierarchy_json == "/data/oid/challenge-2019-label300-segmentable-hierarchy.json"
    assert p.classes_csv == "/data/oid/challenge-2019-classes-description-segmentable.csv"
    assert p.masks_csv("train") == "/data/oid/challenge-2019-train-segmentation-masks.csv"
    assert p.bbox_csv("validation") == "/data/oid/challenge-2019-validation-segmentation-bbox.csv"
    assert p.labels_csv("train") == "/data/oid/challenge-2019-train-segmentation-labels.csv"
    assert p.mask_zip_dir("validation") == "/data/oid/challenge-2019-validation-masks"
    assert p.mask_zip("train", "f") == "/data/oid/challenge-2019-train-masks/challenge-2019-train-masks-f.zip"
    assert len(p.mask_zips("train")) == 16
    assert p.image_path("test", "0012345678901234") == "/data/oid/test/0012345678901234.jpg"
    g = OidPaths.from_dir("gs://bucket/oid")
    assert g.mask_zip("validation", "0") == (
        "gs://bucket/oid/challenge-2019-validation-masks/challenge-2019-validation-masks-0.zip"
    )


def test_layout_overrides_and_errors():
    p = OidPaths.from_dir("/d", train_masks_csv="/other/m.csv", train_image_dir="gs://b/imgs", classes_csv=None)
    assert p.masks_csv("train") == "/other/m.csv" and p.masks_csv("validation").startswith("/d/")
    assert p.image_path("train", "ab") == "gs://b/imgs/ab.jpg"
    assert p.classes_csv == "/d/" + layout.CLASSES_CSV_NAME  # None = not overridden
    with pytest.raises(ValueError, match="unknown path override.*'trian_masks_csv'"):
        OidPaths.from_dir("/d", trian_masks_csv="x")
    with pytest.raises(ValueError, match="unknown annotated split 'test'"):
        p.masks_csv("test")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        p.image_dir("dev")
    with pytest.raises(ValueError, match="shard"):
        p.mask_zip("train", "G")


def test_layout_missing_and_load_hierarchy(tmp_path, oid_data):
    p = OidPaths.from_dir(str(tmp_path))
    assert p.hierarchy_json in p.missing(["train"])
    (tmp_path / layout.HIERARCHY_JSON_NAME).write_bytes(
        (oid_data / "oid-challenge-2019-label300-segmentable-hierarchy.json").read_bytes()
    )
    (tmp_path / layout.CLASSES_CSV_NAME).write_bytes(
        (oid_data / "oid-challenge-2019-classes-description-segmentable300.csv").read_bytes()
    )
    missing = p.missing(["train"])
    assert p.hierarchy_json not in missing and p.masks_csv("train") in missing
    assert p.mask_zip("train", "3") in missing and p.mask_zip("train", "3") not in p.missing(["train"], masks=False)
    h = p.load_hierarchy()
    assert len(h) == 300 and h.name("/m/01g317") == "Person"


def test_image_bytes_via_file_object(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (13, 11)).save(buf, format="PNG")
    assert read_image_size(buf.getvalue()) == (11, 13)


def test_url_paths_go_through_gfile(tmp_path, oid_data):
    """file:// URLs take the tf.io.gfile code path that gs:// uses (the emulator test is data_prep's)."""
    import zipfile

    from hierseg.oid.mask_zip import MaskZipReader
    from hierseg.oid.tables import read_segmentation_csv

    url = f"file://{tmp_path}"
    csv_path = tmp_path / "seg.csv"
    csv_path.write_text((oid_data / "sample_train-annotations-object-segmentation.csv").read_text() + "x,y\n")
    df, skips = read_segmentation_csv(f"{url}/seg.csv", on_error="skip")
    assert len(df) == 4 and skips.counts == {"field_count": 1}
    with pytest.raises(OidFormatError, match=f"^{url}/seg.csv:6: malformed row"):
        read_segmentation_csv(f"{url}/seg.csv")
    with pytest.raises(OidFormatError, match=f"^{url}/nope.csv: cannot read"):
        read_segmentation_csv(f"{url}/nope.csv")

    assert read_image_size(f"{url}/{os.path.basename(save_image(tmp_path / 'i.jpg', 12, 34))}") == (12, 34)
    with pytest.raises(OidFormatError, match="image not found"):
        read_image_size(f"{url}/none.jpg")
    cache = ImageSizeCache(f"{url}/sizes.csv")
    assert cache.get_many(["i"], [f"{url}/i.jpg"]) == {"i": (12, 34)}
    assert ImageSizeCache(f"{url}/sizes.csv").get("i", "unused") == (12, 34)

    with zipfile.ZipFile(tmp_path / "p-a.zip", "w") as zf:
        zf.writestr("a_m0_1.png", (oid_data / "format-fixtures" / "masks_train_b_m0_01234567.png").read_bytes())
    reader = MaskZipReader(url, "p")
    assert reader.read("a_m0_1.png").sum() == 4
    with pytest.raises(OidFormatError, match=f"^{url}/p-b.zip: mask zip shard not found"):
        reader.read("b_m0_1.png")
    reader.close()
