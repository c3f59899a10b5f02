"""File-based round trips on the synthetic dataset through the CLI commands: Layer0/Layer1
predictions made from the ground truth (with mask and score noise) -> `hierseg ensemble` ->
`hierseg submit` -> `hierseg validate-submission` -> `hierseg oid-eval`."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ensembles.prediction_io import write_predictions
from hierseg.detections import Detections
from hierseg.oid.layout import OidPaths
from hierseg.oid.mask_codec import decode_rle, encode_rle
from hierseg.rle import rle_boxes
from hierseg_cli.main import main


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """`hierseg oid-eval` caches ground truth under $XDG_CACHE_HOME: keep it in the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def synth(synth_dir):
    paths = OidPaths.from_dir(str(synth_dir))
    return synth_dir, paths.load_hierarchy()


@pytest.fixture(scope="module")
def ground_truth(synth):
    from ensembles.metric.groundtruth_files import load_ground_truth

    return load_ground_truth(str(synth[0]), "validation", synth[1])[0]


def noisy(rle, rng):
    """The mask with ~8% of its pixels dropped (IoU with the original ~0.92)."""
    m = decode_rle(rle)
    return encode_rle(m & (rng.random(m.shape) > 0.08))


def layer_predictions(ground_truth, hierarchy, seed=0):
    """Layer0: every masked instance as its depth-0 ancestor; Layer1: the deeper ones as themselves;
    scores in [0.5, 1]; plus one false detection per image scoring below every true one."""
    rng = np.random.default_rng(seed)
    roots = hierarchy.roots()
    out0, out1 = [], []
    for g in ground_truth.values():
        if not g.height:
            continue
        l0, l1 = ([], [], []), ([], [], [])
        for c, r in zip(g.classes, g.rles):
            if r is None:
                continue
            l0[0].append(hierarchy.ancestor_in(c, roots))
            l0[1].append(rng.uniform(0.5, 1.0))
            l0[2].append(noisy(r, rng))
            if c not in roots:
                l1[0].append(c)
                l1[1].append(rng.uniform(0.5, 1.0))
                l1[2].append(noisy(r, rng))
        wrong = np.zeros([g.height, g.width], bool)
        wrong[: g.height // 8, : g.width // 8] = True
        l0[0].append(hierarchy.classes[-1])
        l0[1].append(0.01)
        l0[2].append(encode_rle(wrong))
        for (classes, scores, rles), out in ((l0, out0), (l1, out1)):
            out.append(
                Detections(g.image_id, g.height, g.width, classes, scores, rle_boxes(rles).astype(np.float32), rles)
            )
    return out0, out1


def read_metrics(path):
    with open(path) as f:
        return json.load(f)


def test_pipeline_from_noisy_layer_predictions_scores_one(synth, ground_truth, tmp_path, capsys):
    oid_dir, hierarchy = synth
    l0, l1 = layer_predictions(ground_truth, hierarchy)
    write_predictions(str(tmp_path / "layer0.jsonl"), l0)
    write_predictions(str(tmp_path / "layer1.jsonl"), l1)
    assert (
        main(
            [
                "ensemble",
                "--layer0",
                str(tmp_path / "layer0.jsonl"),
                "--layer1",
                str(tmp_path / "layer1.jsonl"),
                "--out",
                str(tmp_path / "merged.parquet"),
                "--oid_dir",
                str(oid_dir),
                "--no_progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "submit",
                "--predictions",
                str(tmp_path / "merged.parquet"),
                "--out",
                str(tmp_path / "sub.csv"),
                "--oid_dir",
                str(oid_dir),
                "--split",
                "validation",
                "--no_progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "validate-submission",
                "--submission",
                str(tmp_path / "sub.csv"),
                "--oid_dir",
                str(oid_dir),
                "--split",
                "validation",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "oid-eval",
                "--oid_dir",
                str(oid_dir),
                "--split",
                "validation",
                "--submission",
                str(tmp_path / "sub.csv"),
                "--output_metrics",
                str(tmp_path / "m.json"),
                "--num_workers",
                "1",
                "--no_progress",
            ]
        )
        == 0
    )
    metrics = read_metrics(tmp_path / "m.json")
    assert "mAP@0.5IOU: 1.0000" in capsys.readouterr().out
    assert metrics["mAP"] == 1.0
    # Every class with a mask, and every ancestor of one, has an AP.
    expected = {
        a
        for g in ground_truth.values()
        for c, r in zip(g.classes, g.rles)
        if r is not None
        for a in hierarchy.expand_positive(c)
    }
    assert set(metrics["per_class"]) == expected
    assert any(len(hierarchy.parents(c)) > 1 for c in expected)  # the two-parent class is in the set


def mask_counts_from_csv(oid_dir, hierarchy):
    """Per class, masked ground-truth instances after expansion, counted from the masks CSV itself."""
    counts: dict[str, int] = {}
    with open(OidPaths.from_dir(str(oid_dir)).masks_csv("validation"), newline="") as f:
        for row in csv.DictReader(f):
            for c in hierarchy.expand_positive(row["LabelName"]):
                counts[c] = counts.get(c, 0) + 1
    return counts


def test_perfect_submission_and_one_class_removed(synth, ground_truth, tmp_path):
    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.submission import write_submission

    oid_dir, hierarchy = synth
    counts = mask_counts_from_csv(oid_dir, hierarchy)
    brown_bear = hierarchy.mid_of("Brown bear")
    assert brown_bear in counts

    def evaluate(drop):
        sub = tmp_path / f"sub{len(drop)}.csv"
        write_submission(
            (ground_truth_as_detections(g, drop_classes=drop) for g in ground_truth.values()), str(sub), hierarchy
        )
        out = tmp_path / f"m{len(drop)}.json"
        assert (
            main(
                [
                    "oid-eval",
                    "--oid_dir",
                    str(oid_dir),
                    "--submission",
                    str(sub),
                    "--output_metrics",
                    str(out),
                    "--num_workers",
                    "2",
                    "--no_progress",
                ]
            )
            == 0
        )
        return read_metrics(out)

    perfect = evaluate([])
    assert perfect["mAP"] == 1.0
    # Every mask row found its bbox row; the other bbox rows (box-only, group-of) are box-only ground truth.
    report = perfect["ground_truth"]
    with open(OidPaths.from_dir(str(oid_dir)).masks_csv("validation")) as f:
        mask_rows = sum(1 for _ in f) - 1
    assert report["masks_paired_with_boxes"] == report["mask_rows"] == mask_rows
    assert report["box_only_rows"] == report["bbox_rows"] - report["mask_rows"] > 0
    # Without Brown bear: its AP is 0; Bear's and Carnivore's recall (at precision 1, all scores equal)
    # lose the Brown bear instances; every other class keeps AP 1.
    lost = counts[brown_bear]
    expected = {c: 1.0 for c in counts}
    for c in hierarchy.expand_positive(brown_bear):
        expected[c] = (counts[c] - lost) / counts[c]
    m = evaluate([brown_bear])
    assert m["per_class"] == pytest.approx(expected)
    assert m["mAP"] == pytest.approx(sum(expected.values()) / len(expected))
    assert m["mAP"] < 1.0


def test_validate_submission_command_fails_with_lines(synth, tmp_path, capsys):
    oid_dir, _ = synth
    sub = tmp_path / "bad.csv"
    sub.write_text("ImageID,ImageWidth,ImageHeight,PredictionString\nnot_an_image,10,10,/m/x 2 abc\n")
    assert (
        main(["validate-submission", "--submission", str(sub), "--oid_dir", str(oid_dir), "--split", "validation"]) == 1
    )
    out = capsys.readouterr().out
    assert f"{sub}:line 2: [image_id]" in out and "[mid]" in out and "[score]" in out and "[mask]" in out
    assert "file: [missing]" in out and "INVALID" in out


def test_ensemble_command_config_overrides(synth, ground_truth, tmp_path, capsys):
    oid_dir, hierarchy = synth
    l0, l1 = layer_predictions(ground_truth, hierarchy, seed=1)
    write_predictions(str(tmp_path / "l0.jsonl"), l0)
    write_predictions(str(tmp_path / "l1.jsonl"), l1)
    base = [
        "ensemble",
        "--layer0",
        str(tmp_path / "l0.jsonl"),
        "--layer1",
        str(tmp_path / "l1.jsonl"),
        "--oid_dir",
        str(oid_dir),
        "--no_progress",
    ]
    # A config error is one line naming the key, exit status 2 (hierseg_cli.main).
    assert main([*base, "--out", str(tmp_path / "x.jsonl"), "--params_override", "ensemble.mask_source=bogus"]) == 2
    err = capsys.readouterr().err
    assert "hierseg ensemble: error: " in err and "mask_source" in err and "Traceback" not in err
    assert (
        main(
            [
                *base,
                "--out",
                str(tmp_path / "p.jsonl"),
                "--params_override",
                "ensemble.score_source=parent,ensemble.iou_threshold=0.99",
            ]
        )
        == 0
    )
    from ensembles.prediction_io import read_predictions

    merged = list(read_predictions(str(tmp_path / "p.jsonl")))
    # At IoU 0.99 the noisy masks (~0.85 IoU to each other) never match: every detection stays an
    # instance of its own, the Layer1 ones with their full ancestor path.
    n1 = sum(len(d) for d in l1)
    assert sum(len(d) for d in merged) == sum(len(d) for d in l0) + n1
    assert any(len(p) > 1 for d in merged for p in d.label_paths)


# ---------------------------------------------------------------- issue 10: ground truth, bad input
def test_ground_truth_masks_are_pil_nearest_resizes_of_the_pngs(synth, ground_truth):
    import io
    import zipfile

    from PIL import Image

    from hierseg.rle import encode_rle

    oid_dir, _ = synth
    paths = OidPaths.from_dir(str(oid_dir))
    with open(paths.masks_csv("validation"), newline="") as f:
        rows = list(csv.DictReader(f))
    checked = resized = 0
    for row in rows[:40]:
        g = ground_truth[row["ImageID"]]
        with zipfile.ZipFile(paths.mask_zip("validation", row["MaskPath"][0])) as zf:
            name = next(n for n in zf.namelist() if n.endswith(row["MaskPath"]))
            png = Image.open(io.BytesIO(zf.read(name)))
        resized += png.size != (g.width, g.height)
        pil = np.array(png.convert("L").resize((g.width, g.height), Image.NEAREST)) > 127
        k = [r for r in g.rles if r is not None]
        assert encode_rle(pil) in k
        checked += 1
    assert checked == min(40, len(rows)) and resized > 0  # the synthetic masks are stored at lower resolution


def test_ground_truth_cache_hits_and_is_invalidated_by_a_changed_input(synth, tmp_path):
    import os

    from ensembles.metric.groundtruth_files import load_ground_truth

    oid_dir, hierarchy = synth
    cache_dir = tmp_path / "gt_cache"
    fresh, _ = load_ground_truth(str(oid_dir), "validation", hierarchy)
    first, r1 = load_ground_truth(str(oid_dir), "validation", hierarchy, cache_dir=str(cache_dir), num_workers=2)
    second, r2 = load_ground_truth(str(oid_dir), "validation", hierarchy, cache_dir=str(cache_dir))
    assert (r1["cache"], r2["cache"]) == ("written", "hit")
    files = sorted(os.listdir(cache_dir))
    assert len(files) == 1 and files[0].startswith("oid-gt-validation-") and files[0].endswith(".npz")

    def same(a, b):
        assert list(a) == list(b)
        for i in a:
            x, y = a[i], b[i]
            assert (x.image_id, x.height, x.width, x.classes) == (y.image_id, y.height, y.width, y.classes)
            assert x.rles == y.rles and (x.positive_labels, x.negative_labels) == (y.positive_labels, y.negative_labels)
            np.testing.assert_array_equal(x.boxes, y.boxes)
            np.testing.assert_array_equal(x.is_group_of, y.is_group_of)

    same(fresh, first)
    same(fresh, second)
    # A changed input (here only its modification time) gives a new key: decoded again, the old file removed.
    labels = OidPaths.from_dir(str(oid_dir)).labels_csv("validation")
    st = os.stat(labels)
    try:
        os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        third, r3 = load_ground_truth(str(oid_dir), "validation", hierarchy, cache_dir=str(cache_dir))
    finally:
        os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert r3["cache"] == "written"
    assert len(os.listdir(cache_dir)) == 1 and sorted(os.listdir(cache_dir)) != files
    same(fresh, third)
    # A damaged cache file is not trusted: it is rebuilt.
    damaged = cache_dir / os.listdir(cache_dir)[0]
    damaged.write_bytes(b"not a zip")
    _, r4 = load_ground_truth(str(oid_dir), "validation", hierarchy, cache_dir=str(cache_dir))
    assert r4["cache"] == "written"


def test_oid_eval_command_bad_score_unknown_class_and_cache(synth, ground_truth, tmp_path, capsys, cache_home):
    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.submission import write_submission

    oid_dir, hierarchy = synth
    sub = tmp_path / "sub.csv"
    write_submission((ground_truth_as_detections(g) for g in ground_truth.values()), str(sub), hierarchy)
    lines = sub.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if i and line.split(",")[3])
    row = lines[k].split(",")
    tokens = row[3].split()
    extra = f"/m/not_a_class 0.9 {tokens[2]}"  # an unknown class, dropped and counted
    lines[k] = ",".join([*row[:3], " ".join([*tokens, extra])])
    sub.write_text("\n".join(lines) + "\n")
    args = ["oid-eval", "--oid_dir", str(oid_dir), "--submission", str(sub), "--num_workers", "2", "--no_progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ground-truth cache: written" in out and "mAP@0.5IOU: 1.0000" in out
    assert "dropped 1 predictions of 1 classes not in the hierarchy: /m/not_a_class (1)" in out
    assert main(args) == 0
    assert "ground-truth cache: hit" in capsys.readouterr().out
    assert len(list((cache_home / "hierseg" / "oid_eval").iterdir())) == 1
    # A NaN score (which scored higher than the truth before) is an error naming the file and line.
    tokens[1] = "nan"
    lines[k] = ",".join([*row[:3], " ".join(tokens)])
    sub.write_text("\n".join(lines) + "\n")
    assert main(args) == 2  # a wrong input named on the command line (hierseg.errors.UsageError)
    err = capsys.readouterr().err
    assert err.startswith(f"hierseg oid-eval: error: {sub}:{k + 1}: image {row[0]}: triple 1")
    assert "score 'nan' is not a number in [0, 1]" in err and len(err.strip().splitlines()) == 1


def test_warm_oid_eval_imports_neither_pandas_nor_pyarrow(synth, ground_truth, tmp_path, cache_home):
    """A warm run only decodes the submission: the CSV readers' pandas/pyarrow (0.3-0.5 s of start-up,
    reached before through the eager ``hierseg.oid`` package) stay unimported. A fresh interpreter,
    since this one has long imported both."""
    import os
    import subprocess
    import sys

    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.submission import write_submission

    oid_dir, hierarchy = synth
    sub = tmp_path / "sub.csv"
    write_submission((ground_truth_as_detections(g) for g in ground_truth.values()), str(sub), hierarchy)
    args = ["oid-eval", "--oid_dir", str(oid_dir), "--submission", str(sub), "--num_workers", "1", "--no_progress"]
    assert main(args) == 0  # cold: writes the ground-truth cache
    script = (
        "import sys\nfrom hierseg_cli.main import main\n"
        f"assert main({args!r}) == 0\n"
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    assert "ground-truth cache: hit" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_validate_submission_command_reports_a_non_utf8_byte(synth, tmp_path, capsys):
    sub = tmp_path / "bad.csv"
    sub.write_bytes(b"ImageID,ImageWidth,ImageHeight,PredictionString\nimg\xff,10,10,\n")
    assert main(["validate-submission", "--submission", str(sub)]) == 1
    out = capsys.readouterr().out
    assert f"{sub}:line 2: [encoding] non-UTF-8 byte 0xff in field 1" in out and "INVALID" in out


def test_images_without_masks_need_no_size(synth, tmp_path):
    import shutil

    from ensembles.metric.groundtruth_files import load_ground_truth

    oid_dir, hierarchy = synth
    copy = tmp_path / "oid"
    shutil.copytree(oid_dir, copy)
    paths = OidPaths.from_dir(str(copy))
    coin = hierarchy.classes[0]
    with open(paths.bbox_csv("validation"), "a") as f:
        f.write(f"ffffffffffffffff,{coin},0.1,0.5,0.2,0.6,1\n")
    with open(paths.labels_csv("validation"), "a") as f:
        f.write(f"eeeeeeeeeeeeeeee,{coin},0\n")
    gts, report = load_ground_truth(str(copy), "validation", hierarchy, num_workers=2, cache_dir=str(tmp_path / "c"))
    box_only, label_only = gts["ffffffffffffffff"], gts["eeeeeeeeeeeeeeee"]
    assert (box_only.height, box_only.width, box_only.classes, box_only.rles) == (0, 0, [coin], [None])
    assert box_only.is_group_of.tolist() == [True] and label_only.negative_labels == (coin,) and len(label_only) == 0
    cached, _ = load_ground_truth(str(copy), "validation", hierarchy, cache_dir=str(tmp_path / "c"))
    assert cached["ffffffffffffffff"].rles == [None] and cached["eeeeeeeeeeeeeeee"].negative_labels == (coin,)


def test_oid_eval_result_depends_neither_on_row_order_nor_on_workers(synth, ground_truth, tmp_path):
    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.submission import write_submission

    oid_dir, hierarchy = synth
    rng = np.random.default_rng(0)
    dets = []
    for g in ground_truth.values():
        d = ground_truth_as_detections(g)
        d.scores = rng.choice([0.3, 0.6, 0.9], len(d))  # many ties across images
        d = d[rng.random(len(d)) < 0.7]  # some instances missed
        dup = d[rng.random(len(d)) < 0.4]  # duplicates: false positives, tied with true ones elsewhere
        dup.scores = rng.choice([0.3, 0.6, 0.9], len(dup))
        dets.append(Detections.cat([d, dup]))
    sub = tmp_path / "sub.csv"
    write_submission(dets, str(sub), hierarchy)
    header, *rows = sub.read_text().splitlines()
    rev = tmp_path / "reversed.csv"
    rev.write_text("\n".join([header, *rows[::-1]]) + "\n")
    results = []
    for path, workers in ((sub, "1"), (rev, "2")):
        out = tmp_path / f"m{workers}.json"
        argv = ["oid-eval", "--oid_dir", str(oid_dir), "--submission", str(path), "--no_progress"]
        assert main([*argv, "--num_workers", workers, "--output_metrics", str(out)]) == 0
        results.append(read_metrics(out))
    assert 0 < results[0]["mAP"] < 1
    assert results[0]["per_class"] == results[1]["per_class"] and results[0]["mAP"] == results[1]["mAP"]
