"""`hierseg browse`: ground truth drawn from the dataset folder and from the prepared TFRecords."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hierseg.hierarchy import Hierarchy
from hierseg.serving.visualize import class_color
from hierseg_cli.ground_truth_view import label_path_text, oid_examples, prepared_examples
from hierseg_cli.main import main


def colour_pixels(png, mid) -> int:
    return int((np.asarray(Image.open(png).convert("RGB")) == np.array(class_color(mid))).all(-1).sum())


def test_browse_oid_dir_filters_by_class_and_draws_each_picture(synth_dir, tmp_path, capsys):
    from hierseg.oid.layout import OidPaths

    h = OidPaths.from_dir(str(synth_dir)).load_hierarchy()
    woman = h.mid_of("Woman")
    out = tmp_path / "b"
    assert main(["browse", "--oid_dir", str(synth_dir), "--classes", "Woman", "--images", "3", "--out", str(out)]) == 0
    pngs = sorted(p for p in out.glob("*.png") if p.name != "grid.png")
    assert 1 <= len(pngs) <= 3 and (out / "grid.png").exists()
    for png in pngs:
        assert colour_pixels(png, woman) > 20  # the Woman's outline, caption and legend swatch
    examples = list(oid_examples(str(synth_dir), "validation", h, {woman}, 3))
    assert [e[0] for e in examples] == [p.stem for p in pngs]
    styles = {i.style for _, _, inst in oid_examples(str(synth_dir), "validation", h, None, 100) for i in inst}
    assert styles >= {"mask", "box_only"}  # the synthetic data has boxes without masks
    assert "Person › Woman" in {i.text.split(" (")[0] for _, _, inst in examples for i in inst}


def test_browse_prepared_records_shows_the_gray_fill(prepared_dir, tmp_path):
    h = Hierarchy.builtin()
    layer = prepared_dir / "layer1"
    examples = list(prepared_examples(str(layer), "train", h, None, 30))
    assert examples and all(img.dtype == np.uint8 and img.ndim == 3 for _, img, _ in examples)
    # Layer1 paints the boxes of non-target parents (Person, Car, ...) gray: visible as decoded.
    gray = [((img == 128).all(-1)).sum() for _, img, _ in examples]
    assert max(gray) > 100
    out = tmp_path / "p"
    assert main(["browse", "--data", str(layer), "--split", "train", "--images", "4", "--out", str(out)]) == 0
    pngs = sorted(p for p in out.glob("*.png") if p.name != "grid.png")
    assert len(pngs) == 4
    first = examples[0][2][0]
    assert colour_pixels(out / f"{examples[0][0]}.png", first.mid) > 20


def test_label_path_text():
    h = Hierarchy.builtin()
    assert label_path_text(h, h.mid_of("Man")) == "Person › Man"
    assert label_path_text(h, "/m/unknown") == "/m/unknown"


def test_prediction_pictures_of_an_annotated_split_show_the_ground_truth_beside(synth_dir, tmp_path):
    from ensembles.metric.groundtruth import ground_truth_as_detections
    from ensembles.metric.groundtruth_files import load_ground_truth
    from hierseg.detections import write_jsonl
    from hierseg.oid.layout import OidPaths
    from hierseg.serving.render import display_size
    from hierseg_cli.ground_truth_view import draw_prediction_file

    h = OidPaths.from_dir(str(synth_dir)).load_hierarchy()
    gts = load_ground_truth(str(synth_dir), "validation", h)[0]
    dets = [ground_truth_as_detections(g, 0.9) for g in list(gts.values())[:2]]
    write_jsonl(str(tmp_path / "p.jsonl"), dets)
    pngs = draw_prediction_file(
        str(tmp_path / "p.jsonl"), str(synth_dir / "validation"), str(tmp_path / "vis"), h.name, min_score=0.3, limit=5
    )
    assert [p.rsplit("/", 1)[-1] for p in pngs] == [f"{d.image_id}.png" for d in dets]
    for d, png in zip(dets, pngs):
        width = Image.open(png).size[0]
        assert width == 2 * display_size(d.height, d.width, 512)[1] + 6  # ground truth | prediction
        assert colour_pixels(png, d.classes[0]) > 40  # drawn on both sides
