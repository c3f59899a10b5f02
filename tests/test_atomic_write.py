"""hierseg.atomic_write: files appear whole or not at all; failed writes leave no temporary file."""

from __future__ import annotations

import json
import os

import pytest

from hierseg import atomic_write


def _names(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_writes_bytes_text_json_and_creates_the_folder(tmp_path):
    atomic_write.write_bytes(str(tmp_path / "a" / "x.bin"), b"\x00\x01")
    atomic_write.write_text(str(tmp_path / "a" / "x.txt"), "line1\r\nline2\n")
    atomic_write.write_json(str(tmp_path / "a" / "x.json"), {"b": 1, "a": [1.5]}, sort_keys=True)
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "x.txt").read_bytes() == b"line1\r\nline2\n"  # line ends exactly as given
    assert (tmp_path / "a" / "x.json").read_text() == json.dumps({"a": [1.5], "b": 1}, indent=1) + "\n"
    assert _names(tmp_path / "a") == ["x.bin", "x.json", "x.txt"]


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_exception_inside_the_write_leaves_neither_final_nor_temporary_file(tmp_path, error):
    target = str(tmp_path / "out.jsonl")
    with pytest.raises(type(error)):
        with atomic_write.atomic_open(target) as f:
            f.write('{"half": ')
            raise error
    assert _names(tmp_path) == []


def test_a_failed_rewrite_keeps_the_previous_version(tmp_path):
    target = str(tmp_path / "out.txt")
    atomic_write.write_text(target, "old\n")
    with pytest.raises(ValueError):
        with atomic_write.atomic_open(target, "wb") as f:
            f.write(b"new but incomplete")
            raise ValueError("encoder failed")
    assert _names(tmp_path) == ["out.txt"]
    assert (tmp_path / "out.txt").read_text() == "old\n"


def test_unserializable_json_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write.write_json(str(tmp_path / "x.json"), {"a": object()})
    assert _names(tmp_path) == []


def test_atomic_path_hands_a_temporary_name_to_writers_that_want_one(tmp_path):
    target = tmp_path / "img.png"
    with atomic_write.atomic_path(str(target)) as tmp:
        assert atomic_write.is_temporary(tmp) and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            f.write(b"png")
        assert not target.exists(), "the final name appears only when the block ends"
    assert target.read_bytes() == b"png"
    with pytest.raises(OSError):
        with atomic_write.atomic_path(str(target)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial")
            raise OSError("writer crashed")
    assert _names(tmp_path) == ["img.png"] and target.read_bytes() == b"png"


def test_urls_go_through_gfile_with_the_same_guarantees():
    import tensorflow as tf

    root = "ram://atomic_write_test"
    atomic_write.write_json(f"{root}/m.json", {"ap": 0.5})
    with tf.io.gfile.GFile(f"{root}/m.json") as f:
        assert json.load(f) == {"ap": 0.5}
    with pytest.raises(RuntimeError):
        with atomic_write.atomic_open(f"{root}/n.txt") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert sorted(tf.io.gfile.listdir(root)) == ["m.json"]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write.atomic_open(str(tmp_path / "x"), "a"):
            pass


def test_write_figure_saves_in_the_paths_format_and_leaves_nothing_on_failure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    try:
        atomic_write.write_figure(str(tmp_path / "sub" / "a.png"), fig, dpi=20)
        atomic_write.write_figure(str(tmp_path / "sub" / "a.svg"), fig)
    finally:
        plt.close(fig)
    assert (tmp_path / "sub" / "a.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "sub" / "a.svg").read_bytes()

    class Broken:
        def savefig(self, f, **kwargs):
            f.write(b"half")
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        atomic_write.write_figure(str(tmp_path / "b.png"), Broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
