"""`hierseg semantic-groundtruth`: the label folders and images predict-semantic scores against, written from
the tests' prepared Layer0/Layer1 validation shards and checked against the layers' COCO ground truth."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from hierseg import features as F
from hierseg_cli.main import main


def _coco(layer_dir) -> tuple[dict, dict]:
    """ImageID -> COCO image entry, and ImageID -> its annotations, of a layer's validation_coco.json."""
    coco = json.loads((layer_dir / "validation_coco.json").read_text())
    by_id = {im["id"]: os.path.splitext(im["file_name"])[0] for im in coco["images"]}
    anns: dict[str, list] = {}
    for a in coco["annotations"]:
        anns.setdefault(by_id[a["image_id"]], []).append(a)
    return {by_id[im["id"]]: im for im in coco["images"]}, anns


def test_writes_both_layers_labels_and_images_for_shared_images_and_resumes(prepared_dir, tmp_path, capsys):
    out = tmp_path / "gt"
    assert main(["semantic-groundtruth", "--prepared", str(prepared_dir), "--out", str(out), "--no_progress"]) == 0
    images0, anns0 = _coco(prepared_dir / "layer0")
    images1, anns1 = _coco(prepared_dir / "layer1")
    shared = set(images0) & set(images1)
    assert shared, "the fixture's validation split should share images between the layers"
    for sub in ("layer0", "layer1"):
        assert {p[:-4] for p in os.listdir(out / sub)} == shared
    assert {os.path.splitext(p)[0] for p in os.listdir(out / "images")} == shared
    line = capsys.readouterr().out.strip().splitlines()[-1]
    skipped = f"{len(set(images0) - shared)} only in layer0, {len(set(images1) - shared)} only in layer1"
    assert line.startswith(f"{len(shared)} images with both layers' ground truth") and skipped in line

    for layer, images, anns in (("layer0", images0, anns0), ("layer1", images1, anns1)):
        for image_id in sorted(shared):
            labels = np.array(Image.open(out / layer / f"{image_id}.png")).astype(int)
            im = images[image_id]
            assert labels.shape == (im["height"], im["width"])
            with Image.open(out / "images" / f"{image_id}.jpg") as img:
                assert img.size == (im["width"], im["height"])
            # Every mask pixel carries the class of a mask covering it; no other pixel carries a class.
            covered = np.zeros(labels.shape, bool)
            allowed = np.zeros(
                labels.shape + (1 + max(a["category_id"] for a in anns.get(image_id, [{"category_id": 0}])),), bool
            )
            for a in anns.get(image_id, []):
                if not a.get("segmentation"):
                    continue
                m = coco_mask.decode(a["segmentation"]) > 0
                covered |= m
                allowed[m, a["category_id"]] = True
            assert (labels[covered] > 0).all() and (labels[covered] != F.SEMANTIC_IGNORE).all()
            ys, xs = np.nonzero(covered)
            assert allowed[ys, xs, labels[ys, xs]].all()
            assert set(np.unique(labels[~covered])) <= {0, F.SEMANTIC_IGNORE}

    # Resume: existing files are kept, a missing one is written again.
    some = sorted(shared)[0]
    stamp = os.stat(out / "layer1" / f"{sorted(shared)[-1]}.png").st_mtime_ns
    first = (out / "layer0" / f"{some}.png").read_bytes()
    os.remove(out / "layer0" / f"{some}.png")
    assert main(["semantic-groundtruth", "--prepared", str(prepared_dir), "--out", str(out), "--no_progress"]) == 0
    assert (out / "layer0" / f"{some}.png").read_bytes() == first
    assert os.stat(out / "layer1" / f"{sorted(shared)[-1]}.png").st_mtime_ns == stamp


def test_a_folder_without_layers_is_one_clear_error(tmp_path, capsys):
    code = main(["semantic-groundtruth", "--prepared", str(tmp_path), "--out", str(tmp_path / "gt")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hierseg semantic-groundtruth: error: --prepared {tmp_path}: no layer0/ folder (give a hierseg "
                   "prepare output folder)"]  # fmt: skip
