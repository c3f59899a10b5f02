"""Mask PNGs read from zip shards: PNG flavours, nearest resize, per-process handles, errors naming
zip and entry, and zip-slip-safe extraction."""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from hierseg.oid.layout import OidPaths
from hierseg.oid.mask_zip import MaskZipReader, OidFormatError, decode_mask_png, resize_nearest, safe_extract
from hierseg.rle import encode_rle


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    im = Image.fromarray(array)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def resize_reference(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Slow reference: each output pixel centre mapped back into the source grid."""
    h, w = mask.shape
    out = np.zeros((height, width), mask.dtype)
    for y in range(height):
        for x in range(width):
            sy = min(int(np.floor((y + 0.5) * h / height + 1e-9)), h - 1)
            sx = min(int(np.floor((x + 0.5) * w / width + 1e-9)), w - 1)
            out[y, x] = mask[sy, sx]
    return out


def pil_resize(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's NEAREST resize of a bool mask."""
    return np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 127


def test_resize_nearest_matches_reference_and_pil():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w, height, width = (int(v) for v in rng.integers(1, 40, size=4))
        m = rng.random((h, w)) < 0.5
        out = resize_nearest(m, height, width)
        assert out.shape == (height, width) and out.dtype == bool
        # PIL NEAREST, bit for bit (issue 10: the metric and data preparation use PIL's convention).
        pil = np.array(Image.fromarray(m.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)) > 127
        np.testing.assert_array_equal(out, pil)
        # Pixel centres: the exact-centre reference agrees except where a centre falls exactly on a
        # source pixel boundary ((2y + 1) * h divisible by 2 * height), where PIL's rounding decides.
        tie_rows = ((2 * np.arange(height) + 1) * h) % (2 * height) == 0
        tie_cols = ((2 * np.arange(width) + 1) * w) % (2 * width) == 0
        differ = resize_reference(m, height, width) != out
        assert not (differ & ~tie_rows[:, None] & ~tie_cols[None, :]).any()


def test_resize_integer_upscale_repeats_pixels():
    m = np.array([[1, 0], [0, 1]], bool)
    np.testing.assert_array_equal(resize_nearest(m, 4, 6), np.kron(m, np.ones((2, 3), bool)))


def test_one_bit_png_fixture(oid_data):
    data = (oid_data / "format-fixtures" / "masks_train_b_m0_01234567.png").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "1"
    mask = decode_mask_png(data)
    expected = np.zeros((2, 8), bool)
    expected[:, :2] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("flavour", ["L255", "L01", "1bit", "P", "RGB"])
def test_png_flavours(flavour):
    rng = np.random.default_rng(1)
    m = rng.random((7, 5)) < 0.5
    if flavour == "L255":
        data = png_bytes(m.astype(np.uint8) * 255)
    elif flavour == "L01":
        data = png_bytes(m.astype(np.uint8))
    elif flavour == "1bit":
        data = png_bytes(m.astype(np.uint8) * 255, "1")
    elif flavour == "P":
        data = png_bytes(m.astype(np.uint8) * 255, "P")
    else:
        data = png_bytes(np.repeat((m.astype(np.uint8) * 255)[..., None], 3, axis=2))
    np.testing.assert_array_equal(decode_mask_png(data), m)


def test_threshold_127_for_8bit():
    data = png_bytes(np.array([[0, 127, 128, 255]], np.uint8))
    np.testing.assert_array_equal(decode_mask_png(data), [[False, False, True, True]])


def make_shards(tmp_path, masks: dict[str, np.ndarray], split: str = "train") -> OidPaths:
    paths = OidPaths.from_dir(str(tmp_path))
    os.makedirs(paths.mask_zip_dir(split), exist_ok=True)
    by_shard: dict[str, dict[str, bytes]] = {}
    for name, m in masks.items():
        by_shard.setdefault(name[0], {})[name] = png_bytes(m.astype(np.uint8) * 255)
    for shard, entries in by_shard.items():
        with zipfile.ZipFile(paths.mask_zip(split, shard), "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
    return paths


def test_reader_reads_from_the_right_shard_and_resizes(tmp_path):
    rng = np.random.default_rng(2)
    masks = {
        "0012345678901234_m04yx4_00000001.png": rng.random((6, 4)) < 0.5,
        "a1b2c3d4e5f60718_m01g317_abcdef01.png": rng.random((3, 5)) < 0.5,
        "a1b2c3d4e5f60718_m01g317_abcdef02.png": np.zeros((2, 2), bool),
    }
    paths = make_shards(tmp_path, masks)
    reader = MaskZipReader.for_split(paths, "train")
    assert reader.zip_path("a") == paths.mask_zip("train", "a")
    for name, m in masks.items():
        np.testing.assert_array_equal(reader.read(name), m)
        np.testing.assert_array_equal(reader.read_resized(name, 12, 10), pil_resize(m, 12, 10))
        assert reader.read_resized_rle(name, 12, 10) == encode_rle(pil_resize(m, 12, 10))
    assert reader.names("a") == sorted(n for n in masks if n[0] == "a")
    assert masks.keys() <= {n for n in masks if n in reader}
    assert "ffff_m0_0.png" not in reader  # shard f does not exist: membership is just False
    reader.close()
    np.testing.assert_array_equal(reader.read(next(iter(masks))), next(iter(masks.values())))  # reopens


def test_entries_in_a_subfolder_are_found(tmp_path):
    os.makedirs(tmp_path / "z")
    m = np.eye(3, dtype=bool)
    with zipfile.ZipFile(tmp_path / "z" / "p-b.zip", "w") as zf:
        zf.writestr("train-masks-b/b_m0_1.png", png_bytes(m.astype(np.uint8) * 255))
    np.testing.assert_array_equal(MaskZipReader(str(tmp_path / "z"), "p").read("b_m0_1.png"), m)


def test_errors_name_zip_and_entry(tmp_path):
    paths = make_shards(tmp_path, {"a_m0_1.png": np.ones((2, 2), bool)})
    reader = MaskZipReader.for_split(paths, "train")
    zip_a = paths.mask_zip("train", "a")
    with pytest.raises(OidFormatError, match=f"^{zip_a}:a_m0_2.png: no such mask"):
        reader.read("a_m0_2.png")
    with pytest.raises(OidFormatError, match=f"^{paths.mask_zip('train', 'b')}: mask zip shard not found"):
        reader.read("b_m0_1.png")
    with pytest.raises(OidFormatError, match="Zz_m0_1.png: MaskPath must start with a hex digit"):
        reader.read("Zz_m0_1.png")
    # A corrupt PNG and a zip that is not a zip.
    with zipfile.ZipFile(paths.mask_zip("train", "c"), "w") as zf:
        zf.writestr("c_m0_1.png", b"\x89PNG\r\n\x1a\n garbage")
        zf.writestr("c_m0_2.png", png_bytes(np.ones((4, 4), np.uint8) * 255)[:50])  # truncated in the pixel data
    with pytest.raises(OidFormatError, match=f"^{paths.mask_zip('train', 'c')}:c_m0_1.png: corrupt mask PNG"):
        reader.read("c_m0_1.png")
    with pytest.raises(OidFormatError, match="c_m0_2.png: corrupt mask PNG"):
        reader.read("c_m0_2.png")
    with open(paths.mask_zip("train", "d"), "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(OidFormatError, match=f"^{paths.mask_zip('train', 'd')}: not a zip file"):
        reader.read("d_m0_1.png")


def test_bare_split_prefix_and_corrupt_zip_entry(tmp_path):
    paths = make_shards(tmp_path, {"f_m0_1.png": np.ones((3, 3), bool)}, split="validation")
    reader = MaskZipReader(paths.mask_zip_dir("validation"), "validation")
    assert reader.zip_path("f") == paths.mask_zip("validation", "f")
    assert reader.read("f_m0_1.png").all()
    # Flip one byte of a stored (uncompressed) entry's data: the CRC check names zip and entry.
    zpath = paths.mask_zip("validation", "7")
    payload = png_bytes(np.zeros((8, 8), np.uint8))
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("7_m0_1.png", payload)
    raw = bytearray(open(zpath, "rb").read())
    at = raw.find(payload) + len(payload) // 2
    raw[at] ^= 0xFF
    open(zpath, "wb").write(bytes(raw))
    with pytest.raises(OidFormatError, match=f"^{zpath}:7_m0_1.png: cannot read the zip entry: Bad CRC"):
        reader.read("7_m0_1.png")


def _read_in_child(reader: MaskZipReader, name: str, queue) -> None:
    queue.put(reader.read(name).tolist())


def test_reader_works_in_worker_processes(tmp_path):
    m = np.tri(5, 4, dtype=bool)
    paths = make_shards(tmp_path, {"e_m0_1.png": m})
    reader = MaskZipReader.for_split(paths, "train")
    np.testing.assert_array_equal(reader.read("e_m0_1.png"), m)  # opened in the parent before the fork
    parent_zip = reader._zips["e"][0]
    clone = pickle.loads(pickle.dumps(reader))  # spawn-style transfer carries no handles
    assert clone._zips == {}
    np.testing.assert_array_equal(clone.read("e_m0_1.png"), m)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_read_in_child, args=(reader, "e_m0_1.png", queue))
    proc.start()
    try:
        got = queue.get(timeout=60)
        proc.join(timeout=60)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    np.testing.assert_array_equal(np.array(got), m)
    assert reader._zips["e"][0] is parent_zip  # the parent's handle is untouched
    np.testing.assert_array_equal(reader.read("e_m0_1.png"), m)


# --------------------------------------------------------------------------------- safe_extract
def _zip_with(tmp_path, entries: list[tuple[str, bytes]], symlink: str | None = None) -> str:
    p = str(tmp_path / "in.zip")
    with zipfile.ZipFile(p, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16  # S_IFLNK
            zf.writestr(info, "/etc/passwd")
    return p


def test_safe_extract_writes_inside_dest(tmp_path):
    p = _zip_with(tmp_path, [("a.png", b"1"), ("sub/b.png", b"22")])
    dest = tmp_path / "out"
    out = safe_extract(p, str(dest))
    assert sorted(os.path.relpath(x, dest) for x in out) == ["a.png", os.path.join("sub", "b.png")]
    assert (dest / "sub" / "b.png").read_bytes() == b"22"


@pytest.mark.parametrize(
    "entry, why",
    [
        ("../evil.png", "'\\.\\.' in path"),
        ("ok/../../evil.png", "'\\.\\.' in path"),
        ("/tmp/evil.png", "absolute path"),
        ("C:/evil.png", "absolute path"),
        ("..\\evil.png", "'\\.\\.' in path"),
    ],
)
def test_safe_extract_rejects_zip_slip(tmp_path, entry, why):
    p = _zip_with(tmp_path, [("first.png", b"x"), (entry, b"evil")])
    dest = tmp_path / "out"
    with pytest.raises(OidFormatError, match=f"in.zip:.*unsafe zip entry: {why}"):
        safe_extract(p, str(dest))
    assert not (dest / "first.png").exists()  # checked before anything is written
    assert not (tmp_path / "evil.png").exists()


def test_safe_extract_rejects_symlinks_and_symlinked_dirs(tmp_path):
    p = _zip_with(tmp_path, [("a.png", b"x")], symlink="link.png")
    with pytest.raises(OidFormatError, match="link.png: unsafe zip entry: symbolic link"):
        safe_extract(p, str(tmp_path / "out"))
    # A folder inside dest that is a symlink to outside: entries below it resolve outside dest.
    dest = tmp_path / "out2"
    os.makedirs(dest)
    os.makedirs(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", dest / "sub")
    p = _zip_with(tmp_path, [("sub/x.png", b"x")])
    with pytest.raises(OidFormatError, match="sub/x.png: unsafe zip entry: resolves outside"):
        safe_extract(p, str(dest))
    assert not (tmp_path / "elsewhere" / "x.png").exists()
