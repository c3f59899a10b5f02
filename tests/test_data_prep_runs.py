"""data_prep end to end: resume after a kill, Beam DirectRunner, gs:// via the GCS emulator, bad input,
and the `hierseg prepare` command (issue 3)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from data_prep.config import PrepareConfig
from data_prep.prepare import prepare
from hierseg.config.params import merge
from hierseg.oid.layout import OidPaths

REPO = Path(__file__).resolve().parents[1]


def _outputs(out: Path) -> dict[str, bytes]:
    """Shards and validation COCO JSON of every layer, by relative path."""
    files = sorted(out.glob("layer*/*.tfrecord")) + sorted(out.glob("layer*/validation_coco.json"))
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def test_rerun_after_interruption_is_byte_identical(prepared_dir, synth_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared_dir, out)
    expected = _outputs(prepared_dir)
    shards = sorted(out.glob("layer*/*.tfrecord"))
    assert len(shards) >= 4
    victims = [shards[0], shards[-1]]
    for p in victims:
        p.unlink()
    partial = shards[1]  # a shard whose rename never happened: stats gone, temp file left behind
    (partial.parent / ".prepare_state" / f"{partial.name}.json").unlink()
    (partial.parent / f"{partial.name}.tmp-12345").write_bytes(b"half a shard")
    mtimes = {p: p.stat().st_mtime_ns for p in shards if p not in victims and p != partial}
    prepare(str(synth_dir), str(out), PrepareConfig(), num_workers=1, show_progress=False)
    assert _outputs(out) == expected
    assert not list(out.glob("layer*/*.tmp-*")), "stale temporary files are removed"
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items()), "complete shards are not rewritten"


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun(prepared_dir, synth_dir, tmp_path):
    out = tmp_path / "out"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from data_prep.config import PrepareConfig\nfrom data_prep.prepare import prepare\n"
        f"prepare({str(synth_dir)!r}, {str(out)!r}, PrepareConfig(), num_workers=1, show_progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("layer*/*.tfrecord")) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(out.glob("layer*/*.tfrecord"))
    assert 1 <= len(done) < len(_outputs(prepared_dir)) - 2, "killed mid-run"
    prepare(str(synth_dir), str(out), PrepareConfig(), num_workers=1, show_progress=False)
    assert _outputs(out) == _outputs(prepared_dir)


@pytest.mark.slow
def test_local_multiprocess_equals_single_process(prepared_dir, synth_dir, tmp_path):
    cfg = merge(PrepareConfig(), {"layers": [1]})
    prepare(str(synth_dir), str(tmp_path), cfg, num_workers=2, show_progress=False)
    expected = {k: v for k, v in _outputs(prepared_dir).items() if k.startswith("layer1")}
    assert _outputs(tmp_path) == expected


def test_beam_direct_runner_equals_local(prepared_dir, synth_dir, tmp_path):
    prepare(str(synth_dir), str(tmp_path), PrepareConfig(), runner="DirectRunner", show_progress=False)
    assert _outputs(tmp_path) == _outputs(prepared_dir)
    a = pd.read_parquet(tmp_path / "layer0" / "manifest.parquet")
    b = pd.read_parquet(prepared_dir / "layer0" / "manifest.parquet")
    pd.testing.assert_frame_equal(a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gcs_emulator_in_and_out(prepared_dir, synth_dir, monkeypatch):
    from gcp_storage_emulator.server import create_server

    from data_prep import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        client = storage.gcs_client()
        bucket = client.create_bucket("hierseg-test")
        for p in sorted(synth_dir.rglob("*")):
            if p.is_file():
                bucket.blob(f"oid/{p.relative_to(synth_dir)}").upload_from_filename(str(p))
        summary = prepare(
            "gs://hierseg-test/oid", "gs://hierseg-test/out", PrepareConfig(), num_workers=1, show_progress=False
        )
        assert summary["layers"][1]["splits"]["train"]["examples_written"] > 0
        expected = _outputs(prepared_dir)
        got = {name: storage.read_bytes(f"gs://hierseg-test/out/{name}") for name in expected}
        assert got == expected
        for name in ("label_map.pbtxt", "manifest.parquet", "prepare.json", "balance_train.png"):
            assert storage.exists(f"gs://hierseg-test/out/layer1/{name}")
    finally:
        server.stop()


def _rewrite_zip(zip_path: Path, entry: str, data: bytes | None) -> None:
    """Replaces (``data``) or removes (None) one entry of a zip."""
    with zipfile.ZipFile(zip_path) as z:
        items = [(i, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(zip_path, "w") as z:
        for info, old in items:
            if info.filename.rsplit("/", 1)[-1] != entry:
                z.writestr(info, old)
            elif data is not None:
                z.writestr(info, data)


def test_bad_inputs_are_skipped_and_counted(synth_dir, tmp_path):
    data = tmp_path / "oid"
    shutil.copytree(synth_dir, data)
    paths = OidPaths.from_dir(str(data))
    masks = pd.read_csv(paths.masks_csv("train"), dtype=str, keep_default_na=False)
    ids = sorted(masks["ImageID"].unique())
    # 1. a truncated JPEG and a JPEG that is garbage
    img = Path(paths.image_path("train", ids[0]))
    img.write_bytes(img.read_bytes()[: len(img.read_bytes()) // 2])
    Path(paths.image_path("train", ids[1])).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    # 2. a mask PNG missing from its zip (on an image with several masks, so the image stays)
    multi = masks.groupby("ImageID").filter(lambda g: len(g) >= 2)
    multi = multi[~multi["ImageID"].isin(ids[:2])]
    lost = multi.iloc[0]["MaskPath"]
    _rewrite_zip(Path(paths.mask_zip("train", lost[0])), lost, None)
    # ... and one replaced by an all-zero PNG (an empty mask), one by bytes that are not a PNG
    empty, garbled = multi.iloc[-1]["MaskPath"], multi.iloc[len(multi) // 2]["MaskPath"]
    assert len({lost, empty, garbled}) == 3
    png = io.BytesIO()
    Image.new("L", (20, 10), 0).save(png, format="PNG")
    _rewrite_zip(Path(paths.mask_zip("train", empty[0])), empty, png.getvalue())
    _rewrite_zip(Path(paths.mask_zip("train", garbled[0])), garbled, b"\x89PNG not really")
    # 3. CSV rows: unknown MID, box outside [0, 1], a mask whose image does not exist
    row = masks.iloc[-1].to_dict()
    bad = [
        dict(row, LabelName="/m/notaclass", MaskPath="ffff" + row["MaskPath"][4:]),
        dict(row, BoxXMax="1.5", MaskPath="fffe" + row["MaskPath"][4:]),
        dict(row, ImageID="fedcba9876543210", MaskPath=f"fedcba9876543210_{row['MaskPath'].split('_', 1)[1]}"),
    ]
    pd.concat([masks, pd.DataFrame(bad)]).to_csv(paths.masks_csv("train"), index=False)

    cfg = merge(PrepareConfig(), {"layers": [0], "balance": {"mode": "none"}})
    out = tmp_path / "out"
    summary = prepare(str(data), str(out), cfg, num_workers=1, show_progress=False)
    assert summary["csv_skips"]["train"]["masks_csv.unknown_mid"] == 1
    assert summary["csv_skips"]["train"]["masks_csv.box_out_of_range"] == 1
    train = summary["layers"][0]["splits"]["train"]
    assert train["skips"]["corrupt_image"] == 2
    assert train["skips"]["missing_image"] == 1
    assert train["skips"]["missing_mask"] == 1
    assert train["skips"]["empty_mask"] == 1
    assert train["skips"]["corrupt_mask"] == 1
    assert train["examples_written"] == train["examples_planned"] - 3
    info = json.loads((out / "layer0" / "prepare.json").read_text())
    assert info["splits"]["train"]["skips"] == train["skips"]
    man = pd.read_parquet(out / "layer0" / "manifest.parquet")
    assert not {lost, empty, garbled} & set(man["mask_path"]) and ids[0] not in set(man["image_id"])


def test_cli_prepare(synth_dir, tmp_path, capsys):
    from hierseg_cli.main import main

    out = tmp_path / "out"
    rc = main(
        [
            "prepare",
            "--oid_dir",
            str(synth_dir),
            "--out",
            str(out),
            "--num_workers",
            "1",
            "--no_progress",
            "--config_file",
            str(REPO / "configs" / "prepare.yaml"),
            "--params_override",
            "balance.mode=none,layers=[1]",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "layer1 train" in text and "layer0" not in text.split("wrote")[0]
    assert sorted(p.name for p in out.iterdir()) == ["layer1"]
    info = json.loads((out / "layer1" / "prepare.json").read_text())
    assert info["config"]["balance"]["mode"] == "none"
    buf = io.StringIO(text)
    assert any(line.startswith("layer1 validation") for line in buf)


SLOW_PIXELS = '''
import time
from data_prep.pixels import PixelProcessor


class SlowProcessor(PixelProcessor):
    """Takes 0.25 s per image, so a run of the small synthetic dataset lasts long enough to interrupt."""

    def process(self, task):
        time.sleep(0.25)
        return super().process(task)
'''


def test_ctrl_c_to_the_process_group_stops_prepare_and_resumes(prepared_dir, synth_dir, tmp_path):
    """SIGINT to the whole group (what a terminal's Ctrl-C does) while 2 workers are mid-task: prepare
    exits within 10 s with status 130 and one line, and a rerun finishes byte-identical to a clean run."""
    (tmp_path / "slow_pixels.py").write_text(SLOW_PIXELS)
    out = tmp_path / "out"
    code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(tmp_path)!r}]\n"
        "import data_prep.prepare, slow_pixels\n"
        "data_prep.prepare.PixelProcessor = slow_pixels.SlowProcessor\n"
        "from hierseg_cli.main import main\n"
        f"sys.exit(main(['prepare', '--oid_dir', {str(synth_dir)!r}, '--out', {str(out)!r}, '--num_workers', '2', "
        "'--no_progress']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As from a terminal: a run started in the background of a script inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("layer*/*.tfrecord")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "still running when interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.time()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("prepare did not stop within 10 s of Ctrl-C")
    assert time.time() - sent < 10
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "hierseg prepare: interrupted", err
    done = list(out.glob("layer*/*.tfrecord"))
    assert 1 <= len(done) < len(_outputs(prepared_dir)) - 2, "interrupted mid-run"
    prepare(str(synth_dir), str(out), PrepareConfig(), num_workers=2, show_progress=False)
    assert _outputs(out) == _outputs(prepared_dir)
    assert not list(out.glob("layer*/*.tmp-*"))


def test_gcs_download_cache_is_keyed_by_object_version(tmp_path, monkeypatch):
    """A cached download is never reused for an object rewritten under the same name (issue 11, part 4)."""
    from gcp_storage_emulator.server import create_server

    from data_prep import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        bucket = storage.gcs_client().create_bucket("hierseg-cache")
        bucket.blob("oid/a.csv").upload_from_string(b"first version")
        cache = str(tmp_path / "cache")
        first = storage.localize("gs://hierseg-cache/oid/a.csv", cache)
        assert open(first, "rb").read() == b"first version"
        assert storage.localize("gs://hierseg-cache/oid/a.csv", cache) == first  # same version: reused
        bucket.blob("oid/a.csv").upload_from_string(b"second, longer version")
        second = storage.localize("gs://hierseg-cache/oid/a.csv", cache)
        assert second != first and open(second, "rb").read() == b"second, longer version"
        with pytest.raises(FileNotFoundError, match="gs://hierseg-cache/oid/nope.csv: not found"):
            storage.object_version("gs://hierseg-cache/oid/nope.csv")
    finally:
        server.stop()
