"""`hierseg predict`: image decoding (EXIF, grayscale, RGBA, broken files), the layer predictor, the
visualization, and the folder workflow's skip-unreadable and resume behaviour.

Until a real export is at hand, the models are small fake exports built here: a tf.Module with the
same two signatures as ``hierseg export`` (fixed boxes and masks, scores that depend on the image so
a mix-up of images between batches shows), saved with tf.saved_model.save beside a label map and an
export config.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from ensembles.config import PredictConfig
from hierseg.detections import Detections
from hierseg.label_map import LabelMap
from hierseg.layout import ExportDir
from hierseg.serving import image_io
from hierseg.serving.render import display_size
from hierseg.serving.visualize import caption, class_color, draw_detections, make_grid, save_png, text_color

PERSON, MAN, WOMAN, TOY, TEDDY = "/m/01g317", "/m/04yx4", "/m/03bt1vf", "/m/0138tl", "/m/0kmg4"


# ------------------------------------------------------------------------------------ fake exports
def make_fake_export(
    export_dir: str,
    mids: list[str],
    names: list[str],
    boxes: list[list[float]],
    classes: list[int],
    output_size: int = 64,
    mask_size: int = 8,
) -> str:
    """A SavedModel with ``serving_default`` and ``serve_images`` producing fixed detections.

    Boxes are normalized to the original image, so they fit any image; the score of detection d of an
    image is ``base[d] * (0.5 + 0.5 * sigmoid(mean pixel of its input))``: different per image.
    """
    d = len(boxes)
    base = np.linspace(0.95, 0.6, d).astype(np.float32)
    box_t = tf.constant(boxes, tf.float32)
    cls_t = tf.constant(classes, tf.int32)
    m = np.zeros([mask_size, mask_size], np.float32)
    m[1:-1, 1:-1] = 0.9  # a box-level mask filling the box but its border
    mask_t = tf.constant(np.repeat(m[None], d, axis=0))

    class Fake(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, output_size, output_size, 3], tf.float32),
                tf.TensorSpec([None, 4, 2], tf.float32),
            ]
        )
        def serve_images(self, images, image_info):
            b = tf.shape(images)[0]
            level = 0.5 + 0.5 * tf.sigmoid(tf.reduce_mean(images, axis=[1, 2, 3]))
            return {
                "detection_boxes": tf.tile(box_t[None], [b, 1, 1]),
                "detection_classes": tf.tile(cls_t[None], [b, 1]),
                "detection_scores": base[None, :] * level[:, None],
                "detection_masks": tf.tile(mask_t[None], [b, 1, 1, 1]),
                "num_detections": tf.fill([b], d),
            }

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def serve_bytes(self, image_bytes):
            from hierseg.input.preprocess import decode_image, resize_and_pad

            image = decode_image(image_bytes)
            padded, info = resize_and_pad(image, output_size)
            out = self.serve_images(padded[None], info[None])
            shape = tf.shape(image)
            return {
                "detection_boxes": out["detection_boxes"][0],
                "detection_classes": out["detection_classes"][0],
                "detection_scores": out["detection_scores"][0],
                "detection_masks": tf.zeros([d, shape[0], shape[1]], tf.uint8),
                "num_detections": out["num_detections"][0],
            }

    module = Fake()
    tf.saved_model.save(
        module, export_dir, signatures={"serving_default": module.serve_bytes, "serve_images": module.serve_images}
    )
    LabelMap.from_classes(mids, names).save(ExportDir(export_dir).label_map)
    with open(ExportDir(export_dir).config_yaml, "w") as f:
        yaml.safe_dump({"data": {"output_size": output_size}}, f)
    return export_dir


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    # Layer0: a Person over the left half, a Toy lower right. Layer1: a Man on the same Person
    # (merges into Person > Man), a Teddy bear on the Toy, and a Woman alone (top right).
    l0 = make_fake_export(
        str(root / "layer0"), [PERSON, TOY], ["Person", "Toy"], [[0.1, 0.05, 0.9, 0.45], [0.6, 0.6, 0.95, 0.95]], [1, 2]
    )
    l1 = make_fake_export(
        str(root / "layer1"),
        [MAN, WOMAN, TEDDY],
        ["Man", "Woman", "Teddy bear"],
        [[0.1, 0.05, 0.9, 0.45], [0.05, 0.6, 0.4, 0.9], [0.6, 0.6, 0.95, 0.95]],
        [1, 2, 3],
        output_size=96,
    )
    return l0, l1


# ------------------------------------------------------------------------------------ test images
def _jpeg(array: np.ndarray, exif_orientation: int | None = None) -> bytes:
    img = Image.fromarray(array)
    buf = io.BytesIO()
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    else:
        img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _gradient(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * y / h, 255 * x / w, np.full([h, w], rng.uniform(0, 255))], -1)
    return base.astype(np.uint8)


def write_image_folder(folder, n: int = 9, broken: bool = True) -> list[str]:
    """n JPEGs of varied sizes (one with EXIF rotation, one grayscale PNG, one RGBA PNG) + broken files."""
    os.makedirs(folder, exist_ok=True)
    names = []
    for k in range(n):
        h, w = 40 + 7 * k, 60 + 5 * (k % 4)
        image_id = f"{k:04x}aaaabbbbcccc"
        if k == 1:
            data, ext = _png(Image.fromarray(_gradient(h, w, k)[..., 0], "L")), "png"
        elif k == 2:
            rgba = np.concatenate([_gradient(h, w, k), np.full([h, w, 1], 128, np.uint8)], -1)
            data, ext = _png(Image.fromarray(rgba, "RGBA")), "png"
        else:
            data, ext = _jpeg(_gradient(h, w, k), exif_orientation=6 if k == 3 else None), "jpg"
        with open(os.path.join(folder, f"{image_id}.{ext}"), "wb") as f:
            f.write(data)
        names.append(image_id)
    if broken:
        with open(os.path.join(folder, "badbadbadbadbad0.jpg"), "wb") as f:
            f.write(b"this is not an image")
        with open(os.path.join(folder, "badbadbadbadbad1.jpg"), "wb") as f:
            f.write(_jpeg(_gradient(50, 50))[:300])  # truncated
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("not listed: wrong extension")
    return names


# ------------------------------------------------------------------------------------- image_io
def test_decode_applies_exif_and_handles_modes():
    arr = _gradient(20, 40)
    plain = image_io.decode_bytes(_jpeg(arr))
    rotated = image_io.decode_bytes(_jpeg(arr, exif_orientation=6))  # 6: rotate 90 degrees clockwise to view
    assert plain.shape == (20, 40, 3) and rotated.shape == (40, 20, 3)
    # The viewed image's top row is the stored image's first column, read bottom to top.
    np.testing.assert_allclose(rotated.astype(float), np.rot90(plain, k=-1).astype(float), atol=12)
    assert image_io.decode_bytes(_jpeg(arr, 6), apply_exif=False).shape == (20, 40, 3)

    gray = image_io.decode_bytes(_png(Image.fromarray(arr[..., 1], "L")))
    assert gray.shape == (20, 40, 3) and (gray[..., 0] == arr[..., 1]).all() and (gray[..., 2] == arr[..., 1]).all()
    rgba = np.concatenate([arr, np.full([20, 40, 1], 255, np.uint8)], -1)
    rgba[:, :10, 3] = 0  # transparent strip -> black, the rest unchanged
    out = image_io.decode_bytes(_png(Image.fromarray(rgba, "RGBA")))
    assert out.shape == (20, 40, 3) and (out[:, :10] == 0).all() and (out[:, 10:] == arr[:, 10:]).all()
    pal = Image.fromarray(arr).convert("P")
    assert image_io.decode_bytes(_png(pal)).shape == (20, 40, 3)
    deep = image_io.decode_bytes(_png(Image.fromarray((arr[..., 0].astype(np.uint16) * 257), "I;16")))
    assert deep.shape == (20, 40, 3) and np.abs(deep[..., 0].astype(int) - arr[..., 0]).max() <= 1


def test_image_dataset_marks_unreadable_and_keeps_order(tmp_path):
    names = write_image_folder(tmp_path / "imgs", n=5)
    paths = image_io.list_images(str(tmp_path / "imgs"))
    assert [image_io.image_id_of(p) for p in paths] == sorted([*names, "badbadbadbadbad0", "badbadbadbadbad1"])
    assert image_io.list_images(str(tmp_path / "imgs" / "*.png")) == [p for p in paths if p.endswith(".png")]
    with pytest.raises(FileNotFoundError, match="no images"):
        image_io.list_images(str(tmp_path / "nothing"))
    elems = list(image_io.image_dataset(paths, [32, 48], num_parallel_calls=4).as_numpy_iterator())
    assert [e[image_io.PATH].decode() for e in elems] == paths
    bad = {
        image_io.image_id_of(e[image_io.PATH].decode()): e[image_io.ERROR].decode() for e in elems if not e[image_io.OK]
    }
    assert set(bad) == {"badbadbadbadbad0", "badbadbadbadbad1"} and all(bad.values())
    rotated = next(e for e in elems if image_io.image_id_of(e[image_io.PATH].decode()).startswith("0003"))
    h, w = 40 + 21, 60 + 15  # stored size of image 3; EXIF 6 swaps them
    assert rotated[image_io.ORIGINAL].shape == (w, h, 3)
    np.testing.assert_allclose(rotated["image_info_48"][0], [w, h])
    assert rotated["image_32"].shape == (32, 32, 3) and rotated["image_48"].shape == (48, 48, 3)


# ------------------------------------------------------------------------------------ visualize
def test_caption_reads_down_the_label_path(hierarchy):
    assert caption((PERSON, MAN), 0.913, hierarchy.name) == "Person › Man 0.91"


def test_draw_detections_colours_masks_and_draws_captions(tmp_path, hierarchy):
    h, w = 120, 160
    image = np.full([h, w, 3], 100, np.uint8)
    mask = np.zeros([1, h, w], bool)
    mask[0, 40:110, 30:130] = True
    det = Detections.from_dense("0123456789abcdef", [MAN], np.array([0.91]), mask, label_paths=[(PERSON, MAN)])
    img = draw_detections(image, det, hierarchy.name, alpha=0.5)
    path = str(tmp_path / "vis.png")
    save_png(img, path)
    with Image.open(path) as png:
        assert png.size == (w, h) and png.mode == "RGB"
        out = np.asarray(png)
    color = np.array(class_color(MAN), float)
    inner = out[60:105, 35:125].reshape(-1, 3).astype(float)
    np.testing.assert_allclose(inner, np.broadcast_to(0.5 * 100 + 0.5 * color, inner.shape), atol=1)
    assert (out[:, :29] == 100).all() and (out[111:] == 100).all()  # outside the mask and caption: untouched
    assert (out[40, 30:130] == color.round()).all()  # the outline in full colour
    band = out[:40, 30:]  # the caption sits above the box, left-aligned with it
    is_fill = (band == color.round()).all(-1)
    ink = np.array(text_color(class_color(MAN)), float)
    is_text = (np.abs(band - ink) < 60).all(-1)  # glyphs in the caption's ink
    assert is_fill.sum() > 100 and is_text.sum() > 20
    cols = np.flatnonzero(is_text.any(0))
    assert cols.max() - cols.min() > 60  # a caption as long as "Person › Man 0.91", not a dot
    # Wrong sizes are refused rather than drawn misaligned.
    with pytest.raises(ValueError, match="image is"):
        draw_detections(image[:50], det)


def test_make_grid(tmp_path):
    pngs = []
    for k in range(5):
        p = str(tmp_path / f"{k}.png")
        Image.fromarray(np.full([30 + k, 50, 3], 40 * k, np.uint8)).save(p)
        pngs.append(p)
    grid = make_grid(pngs, str(tmp_path / "grid.png"), cell=64, gap=2)
    assert grid.size == (3 * 64 + 4 * 2, 2 * 64 + 3 * 2)
    with Image.open(tmp_path / "grid.png") as g:
        assert g.size == grid.size
        px = np.asarray(g)
    assert (px[2 + 32, 2 + 66 + 32] == 40).all()  # the second tile (value 40) sits in row 0, column 1


# ------------------------------------------------------------------------------------ predictor
def test_layer_predictor_decodes_a_batch(exports):
    from hierseg.input.preprocess import resize_and_pad
    from hierseg.serving.predictor import LayerPredictor

    pred = LayerPredictor(exports[1])
    assert pred.output_size == 96 and pred.mids == (MAN, WOMAN, TEDDY)
    imgs = [np.full([50, 80, 3], 10, np.uint8), np.full([70, 30, 3], 200, np.uint8)]
    pre = [resize_and_pad(tf.constant(i), 96) for i in imgs]
    dets = pred.predict(np.stack([p[0] for p in pre]), np.stack([p[1] for p in pre]), ["a", "b"])
    assert [(d.height, d.width) for d in dets] == [(50, 80), (70, 30)]
    assert dets[0].classes == [MAN, WOMAN, TEDDY]
    assert dets[1].scores[0] > dets[0].scores[0]  # the brighter image scores higher in the fake
    m = dets[0].dense_masks()
    ys, xs = np.nonzero(m[0])  # the Man box [0.1, 0.05, 0.9, 0.45] minus the mask's border cells
    assert 5 <= ys.min() <= 11 and 39 <= ys.max() <= 45 and 4 <= xs.min() <= 9 and 31 <= xs.max() <= 36


def test_layer_predictor_uses_the_exports_own_mask_threshold(exports, tmp_path):
    """The fake's box-level mask probability is 0.9: an export recording eval.mask_threshold 0.95 has
    no foreground (every instance dropped as empty), one recording 0.85 has smaller masks than the
    default (0.5); an export without the key uses EvalConfig's default; a bad value names the file."""
    from hierseg.input.preprocess import resize_and_pad
    from hierseg.serving.predictor import LayerPredictor

    image, info = resize_and_pad(tf.constant(np.full([50, 80, 3], 10, np.uint8)), 96)
    default = LayerPredictor(exports[1])
    assert default.mask_threshold == 0.5
    expected = default.predict(image[None].numpy(), info[None].numpy(), ["a"])[0]
    for threshold, instances in ((0.95, 0), (0.85, 3)):
        export = tmp_path / f"export{threshold}"
        shutil.copytree(exports[1], export)
        with open(ExportDir(export).config_yaml, "w") as f:
            yaml.safe_dump({"data": {"output_size": 96}, "eval": {"mask_threshold": threshold}}, f)
        pred = LayerPredictor(str(export))
        assert pred.mask_threshold == threshold
        det = pred.predict(image[None].numpy(), info[None].numpy(), ["a"])[0]
        assert len(det) == instances
        if instances:  # the pasted border ramps 0 -> 0.9: a higher threshold keeps fewer pixels
            masks, wider = det.dense_masks(), expected.dense_masks()
            assert (masks <= wider).all() and 0 < masks.sum() < wider.sum()
    with open(ExportDir(export).config_yaml, "w") as f:
        yaml.safe_dump({"data": {"output_size": 96}, "eval": {"mask_threshold": 2}}, f)
    with pytest.raises(ValueError, match="export_config.yaml: eval.mask_threshold"):
        LayerPredictor(str(export))


# ------------------------------------------------------------------------------------- workflow
FINAL_FILES = ("predictions.jsonl", "layer0.jsonl", "layer1.jsonl", "submission.csv", "report.json")


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_predict_skips_unreadable_and_resumes_to_identical_files(tmp_path, exports, hierarchy, monkeypatch):
    from hierseg.serving.predictor import LayerPredictor
    from hierseg_cli.main import main
    from hierseg_cli.workflows.predict_folder import predict_folder

    names = write_image_folder(tmp_path / "imgs", n=9)
    kw = dict(hierarchy=hierarchy, show_progress=False)
    config = PredictConfig(batch_size=2, chunk_size=2)
    full = predict_folder(
        *exports, str(tmp_path / "imgs"), str(tmp_path / "full"), dataclasses.replace(config, visualize=True), **kw
    )
    assert full["num_images"] == 11 and full["num_ok"] == 9 and full["num_unreadable"] == 2
    report = json.loads(_read(tmp_path / "full" / "report.json"))
    assert sorted(u["image_id"] for u in report["unreadable"]) == ["badbadbadbadbad0", "badbadbadbadbad1"]
    assert set(full["timing"]) >= {"decode", "layer0", "layer1", "ensembling", "encoding"}
    preds = [Detections.from_json(line) for line in _read(tmp_path / "full" / "predictions.jsonl").splitlines()]
    assert [d.image_id for d in preds] == sorted(names)
    paths = {tuple(p) for d in preds for p in d.label_paths}
    # The Man merged into the Person and the Teddy bear into the Toy (same masks); the Woman stands alone.
    assert paths == {(PERSON, MAN), (PERSON, WOMAN), (TOY, TEDDY)} and all(len(d) == 3 for d in preds)
    rows = _read(tmp_path / "full" / "submission.csv").decode().splitlines()
    assert rows[0].startswith("ImageID,ImageWidth,ImageHeight,PredictionString")
    assert {r.split(",")[0] for r in rows[1:]} >= set(names)
    rotated = next(d for d in preds if d.image_id.startswith("0003"))
    assert (rotated.height, rotated.width) == (75, 61)  # EXIF applied: the viewed size
    for n in names:
        with Image.open(tmp_path / "full" / "visualize" / f"{n}.png") as png:
            d = next(d for d in preds if d.image_id == n)
            # Drawn at the display size (long side 512, the original's aspect), the colour legend below.
            assert (
                png.size[0] == display_size(d.height, d.width, 512)[1]
                and png.size[1] > display_size(d.height, d.width, 512)[0]
            )

    # A run that dies after its second model call, leaving a half-written temporary behind...
    calls = {"n": 0}
    real_predict = LayerPredictor.predict

    def dying_predict(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("killed")
        return real_predict(self, *a, **k)

    monkeypatch.setattr(LayerPredictor, "predict", dying_predict)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(*exports, str(tmp_path / "imgs"), str(tmp_path / "resumed"), config, **kw)
    monkeypatch.setattr(LayerPredictor, "predict", real_predict)
    parts = os.listdir(tmp_path / "resumed" / "parts")
    assert parts and not os.path.exists(tmp_path / "resumed" / "submission.csv")
    with open(tmp_path / "resumed" / "parts" / "part-0000000000000000.jsonl.tmp-999", "w") as f:
        f.write('{"image_id": "truncated')
    # ... then the same command again, through the CLI: only the missing images are predicted.
    hier = ["--hierarchy", str(tmp_path / "h.json"), "--classes", str(tmp_path / "c.csv")]
    with open(tmp_path / "h.json", "w") as f:
        json.dump(hierarchy.to_tree(), f)
    with open(tmp_path / "c.csv", "w") as f:
        f.writelines(f"{m},{hierarchy.name(m)}\n" for m in hierarchy.classes)
    assert (
        main(
            [
                "predict",
                "--layer0",
                exports[0],
                "--layer1",
                exports[1],
                "--images",
                str(tmp_path / "imgs"),
                "--out",
                str(tmp_path / "resumed"),
                "--batch_size",
                "2",
                "--no_progress",
                *hier,
            ]
        )
        == 0
    )
    timing = json.loads(_read(tmp_path / "resumed" / "timing.json"))
    assert 0 < timing["num_resumed"] < 11 and timing["num_predicted"] < 9
    for name in FINAL_FILES:
        assert _read(tmp_path / "resumed" / name) == _read(tmp_path / "full" / name), name
    # A third run finds everything done and rewrites the same files.
    again = predict_folder(*exports, str(tmp_path / "imgs"), str(tmp_path / "resumed"), config, **kw)
    assert again["num_resumed"] == 11 and again["num_predicted"] == 0
    for name in FINAL_FILES:
        assert _read(tmp_path / "resumed" / name) == _read(tmp_path / "full" / name), name
    shutil.rmtree(tmp_path / "imgs")


# ------------------------------------------------------------------------------- real tiny exports
@pytest.mark.slow
def test_predict_with_real_tiny_exports(synth_dir, prepared_dir, tmp_path):
    """Train each layer of the synthetic dataset one step, export it, predict the test images."""
    from ensembles.validate_submission import validate_submission
    from hierseg.hierarchy import Hierarchy
    from hierseg.serving.export import export_saved_model
    from hierseg.training.loop import train
    from hierseg.training.strategy import make_strategy
    from hierseg_cli.workflows.demo import _experiment, find_config
    from hierseg_cli.workflows.predict_folder import predict_folder

    hierarchy = Hierarchy.from_files(
        str(synth_dir / "challenge-2019-label300-segmentable-hierarchy.json"),
        str(synth_dir / "challenge-2019-classes-description-segmentable.csv"),
    )
    exports = []
    for layer in (0, 1):
        cfg = _experiment(find_config(), str(prepared_dir / f"layer{layer}"), 1, ["train.steps_per_loop=1"])
        model_dir = str(tmp_path / f"model{layer}")
        train(cfg, model_dir, make_strategy("cpu"), show_progress=False)
        exports.append(export_saved_model(cfg, model_dir, str(tmp_path / f"export{layer}")))
    res = predict_folder(
        *exports,
        str(synth_dir / "test"),
        str(tmp_path / "out"),
        PredictConfig(batch_size=4, visualize=True),
        hierarchy=hierarchy,
        show_progress=False,
    )
    test_ids = sorted(image_io.image_id_of(p) for p in os.listdir(synth_dir / "test"))
    assert res["num_ok"] == len(test_ids) > 0 and res["num_unreadable"] == 0
    assert (
        validate_submission(
            str(tmp_path / "out" / "submission.csv"), expected_images=test_ids, valid_mids=hierarchy.classes
        )
        == []
    )
    preds = [Detections.from_json(x) for x in _read(tmp_path / "out" / "predictions.jsonl").splitlines()]
    assert [d.image_id for d in preds] == test_ids
    for d in preds:
        with Image.open(synth_dir / "test" / f"{d.image_id}.jpg") as im:
            assert (d.width, d.height) == im.size
        assert all(p and p[-1] == c for p, c in zip(d.label_paths, d.classes))
    assert len(os.listdir(tmp_path / "out" / "visualize")) == len(test_ids)


def test_predict_cli_passes_ensembling_and_submission_options(tmp_path, exports, hierarchy, capsys):
    from hierseg_cli.main import main

    write_image_folder(tmp_path / "imgs", n=4, broken=False)
    out = tmp_path / "out"
    argv = ["predict", "--layer0", exports[0], "--layer1", exports[1], "--images", str(tmp_path / "imgs" / "*.jpg")]
    # An IoU threshold no pair reaches: nothing merges; and at most one triple per submission row.
    assert (
        main(
            [
                *argv,
                "--out",
                str(out),
                "--params_override",
                "ensemble.iou_threshold=1.5",
                "--max_per_image",
                "1",
                "--no_progress",
            ]
        )
        == 0
    )
    preds = [Detections.from_json(x) for x in _read(out / "predictions.jsonl").splitlines()]
    assert len(preds) == 2  # the glob takes the two JPEGs, not the PNG
    # Unmerged, each layer's detections stay apart: 2 + 3 instances (merged: 3, Man->Person and Teddy->Toy).
    assert [len(d) for d in preds] == [5, 5]
    for row in _read(out / "submission.csv").decode().splitlines()[1:]:
        assert len(row.split(",")[3].split()) == 3
    # An unknown key is one line naming it, exit status 2 (hierseg_cli.main).
    assert main([*argv, "--out", str(tmp_path / "o2"), "--params_override", "ensemble.iou_treshold=0.4"]) == 2
    assert "unknown config key 'ensemble.iou_treshold'" in capsys.readouterr().err
