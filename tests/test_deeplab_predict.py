"""`hierseg predict-semantic`: Layer0/Layer1 label maps fused into label paths (hand case), and the
folder workflow on two hand-made semantic exports (outputs, legend, summary, resume)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from hierseg import features as F
from hierseg.hierarchy import Hierarchy
from hierseg.label_map import LabelMap
from hierseg.serving.semantic_paths import PathFuser, resize_labels_nearest
from hierseg_cli.main import main

H = Hierarchy.builtin()
LAYER0 = [H.mid_of("Person"), H.mid_of("Car")]
LAYER1 = [H.mid_of("Man"), H.mid_of("Woman"), H.mid_of("Teddy bear")]


def test_fuse_hand_case_person_man():
    fuser = PathFuser(LAYER0, LAYER1, H)
    layer0 = np.array([[1, 1, 2, 0], [1, 0, 2, 1]])
    layer1 = np.array([[1, 3, 1, 2], [2, 0, 0, 1]])
    ids, paths = fuser.fuse(layer0, layer1)
    got = [[paths[k] for k in row] for row in ids]
    person, car, man, woman = LAYER0[0], LAYER0[1], LAYER1[0], LAYER1[1]
    assert got == [
        [(person, man), (person,), (car,), ()],  # Teddy bear is no Person: the Layer0 class alone
        [(person, woman), (), (car,), (person, man)],  # Layer0 background stays background
    ]
    assert paths[0] == ()


def test_resize_labels_nearest():
    labels = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(resize_labels_nearest(labels, 4, 2), [[1, 2], [1, 2], [3, 4], [3, 4]])


class _FakeSemanticExport(tf.Module):
    """serve_images -> semantic_labels: class 1 where red > 128, class ``green_class`` where green > 128."""

    def __init__(self, size: int, green_class: int):
        super().__init__()
        self.green_class = green_class
        self.serve_images = tf.function(
            self._serve,
            input_signature=[
                tf.TensorSpec([None, size, size, 3], tf.float32, name="images"),
                tf.TensorSpec([None, 4, 2], tf.float32, name="image_info"),
            ],
        )

    def _serve(self, images, image_info):
        rgb = images * tf.constant(F.IMAGE_STD) + tf.constant(F.IMAGE_MEAN)
        labels = tf.where(rgb[..., 0] > 128, 1, 0)
        if self.green_class:
            labels = tf.where(rgb[..., 1] > 128, self.green_class, labels)
        return {F.SEMANTIC_LABELS: tf.cast(labels, tf.int32), F.SEMANTIC_SCORES: tf.ones_like(images[..., 0])}


def _export(root: Path, mids, green_class: int, size: int = 32) -> str:
    module = _FakeSemanticExport(size, green_class)
    tf.saved_model.save(module, str(root), signatures={"serve_images": module.serve_images})
    LabelMap.from_classes(mids, [H.name(m) for m in mids]).save(str(root / "label_map.pbtxt"))
    (root / "export_config.yaml").write_text(yaml.safe_dump({"data": {"output_size": size}}))
    return str(root)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    # Layer0: red = Person. Layer1: red = Man, green = Teddy bear (3).
    return _export(root / "l0", LAYER0, green_class=0), _export(root / "l1", LAYER1, green_class=3)


def test_predict_semantic_folder_writes_maps_overlay_summary_and_resumes(exports, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        img = np.zeros((32, 64, 3), np.uint8)  # resized by exactly 1/2 to the exports' 32 px: no boundary blur
        img[:, : 20 + 10 * k, 0] = 255  # red on the left: Person (Layer0), Man (Layer1)
        img[16:, :, 1] = 255  # green bottom half: Teddy bear (Layer1)
        Image.fromarray(img).save(images / f"{k:016x}.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    # Ground truth: Person on the red columns, Man on all of them (predicted Man only on the top half).
    gt0, gt1 = tmp_path / "gt0", tmp_path / "gt1"
    gt0.mkdir()
    gt1.mkdir()
    for k in range(3):
        labels = np.zeros((32, 64), np.uint8)
        labels[:, : 20 + 10 * k] = 1
        Image.fromarray(labels).save(gt0 / f"{k:016x}.png")
        Image.fromarray(labels).save(gt1 / f"{k:016x}.png")
    out = tmp_path / "out"
    args = ["predict-semantic", "--layer0", exports[0], "--layer1", exports[1], "--images", str(images)]
    args += ["--groundtruth_layer0", str(gt0), "--groundtruth_layer1", str(gt1)]
    assert main([*args, "--out", str(out), "--no_progress", "--batch_size", "2"]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 4 and summary["num_unreadable"] == 1
    first = next(e for e in summary["images"] if e["image_id"] == f"{0:016x}")
    by_names = {" › ".join(p["names"]): p["pixels"] for p in first["label_paths"]}
    # Rows 0..15, cols 0..19: red only -> (Person, Man). Rows 16..31, cols 0..19: red + green: Layer1 says
    # Teddy bear, not a Person -> (Person). Elsewhere background (green alone is Layer0 background).
    assert by_names == {"Person › Man": 16 * 20, "Person": 16 * 20}
    assert first["background_pixels"] == 32 * 64 - 32 * 20
    layer0 = np.array(Image.open(out / "layer0" / f"{0:016x}.png"))
    layer1 = np.array(Image.open(out / "layer1" / f"{0:016x}.png"))
    assert layer0.shape == (32, 64) and layer0[:, :20].min() == 1 and layer0[:, 20:].max() == 0
    assert layer1[20, 5] == 3 and layer1[5, 5] == 1 and layer1[20, 40] == 3
    overlay = Image.open(out / "overlay" / f"{0:016x}.png")
    assert overlay.size[0] == 64 and overlay.size[1] > 32  # legend below the image
    assert "error" in json.loads((out / "images" / "broken.json").read_text())
    # Level 0 is exact; at level 1 every true Man pixel of the bottom half is predicted "(Person)" only:
    # IoU Man = 1/2; the hierarchical mIoU averages background, Person (level 0) and Man (level 1).
    h = summary["hierarchical"]
    assert h["levels"][0]["mIoU"] == pytest.approx(1.0)
    assert h["levels"][1]["mIoU"] == pytest.approx(0.5)
    assert h["hierarchical_mIoU"] == pytest.approx(2.5 / 3)

    # Resume: only the image whose entry is missing is predicted again.
    stamp = os.stat(out / "layer0" / f"{1:016x}.png").st_mtime_ns
    os.remove(out / "images" / f"{2:016x}.json")
    os.remove(out / "layer0" / f"{2:016x}.png")
    assert main([*args, "--out", str(out), "--no_progress"]) == 0
    assert (out / "layer0" / f"{2:016x}.png").exists()
    assert os.stat(out / "layer0" / f"{1:016x}.png").st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text()) == summary
