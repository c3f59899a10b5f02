"""Test-time augmentation: views, mirroring back, merging, and a geometric round trip through a fake
predictor that segments what it sees."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg.detections import Detections
from hierseg.label_map import LabelMap
from hierseg.rle import decode_rles, pairwise_iou
from hierseg.serving.tta import TTAConfig, TTAPredictor, make_view, merge_views, parse_tta, unflip

MAN = "/m/04yx4"
S = 64


def test_parse_tta():
    assert parse_tta("flip") == TTAConfig(enabled=True, flip=True, scales=(1.0,))
    assert parse_tta("flip,scales=0.75:1,merge=nms,iou=0.6") == TTAConfig(True, True, (0.75, 1.0), "nms", 0.6)
    assert parse_tta("scales=0.5:1").flip is False and parse_tta("flip,scales=0.5:1").num_views == 4
    with pytest.raises(ValueError, match="unknown item 'rotate'"):
        parse_tta("flip,rotate")
    with pytest.raises(ValueError, match="scales must lie in"):
        parse_tta("scales=1.5")


def _preprocessed(h, w):
    """A fake preprocessed batch of one image: content (h, w) scaled to fit S, values = column index."""
    scale = S / max(h, w)
    sh, sw = round(h * scale), round(w * scale)
    images = np.zeros([1, S, S, 3], np.float32)
    images[0, :sh, :sw] = np.arange(sw, dtype=np.float32)[None, :, None]
    info = np.array([[[h, w], [sh, sw], [sh / h, sw / w], [0, 0]]], np.float32)
    return images, info


def test_view_flips_and_scales_only_the_content():
    images, info = _preprocessed(40, 80)  # content 32 x 64
    flipped, finfo = make_view(images, info, 1.0, True)
    np.testing.assert_array_equal(flipped[0, :32, :64, 0], images[0, :32, :64, 0][:, ::-1])
    assert (flipped[0, 32:] == 0).all()
    np.testing.assert_array_equal(finfo, info)
    half, hinfo = make_view(images, info, 0.5, False)
    assert (half[0, 16:] == 0).all() and (half[0, :, 32:] == 0).all() and half[0, :16, :32].any()
    np.testing.assert_allclose(hinfo[0, 1], [16, 32])
    np.testing.assert_allclose(hinfo[0, 2], [16 / 40, 32 / 80])


def _det(masks, scores, classes=None, h=30, w=40):
    return Detections.from_dense("img", classes or [MAN] * len(masks), np.asarray(scores, np.float32), np.stack(masks))


def _rect(y0, x0, y1, x1, h=30, w=40):
    m = np.zeros([h, w], bool)
    m[y0:y1, x0:x1] = True
    return m


def test_unflip_mirrors_masks_and_boxes():
    d = _det([_rect(5, 2, 20, 12)], [0.9])
    u = unflip(d)
    np.testing.assert_array_equal(decode_rles(u.rles, 30, 40)[0], _rect(5, 28, 20, 38))
    np.testing.assert_allclose(u.boxes[0], [5 / 30, 28 / 40, 20 / 30, 38 / 40], atol=1e-6)
    np.testing.assert_array_equal(decode_rles(unflip(u).rles, 30, 40)[0], _rect(5, 2, 20, 12))


def test_vote_averages_masks_and_scores_by_views_found():
    a, b = _rect(5, 5, 25, 25), _rect(5, 5, 25, 29)  # IoU 0.83
    other = _rect(0, 30, 10, 40)
    views = [_det([a, other], [0.9, 0.4]), _det([a], [0.7]), _det([b], [0.8])]
    config = TTAConfig(flip=True, scales=(1.0, 0.5), merge="vote", iou=0.5)  # 4 views
    merged = merge_views(views, config)
    assert len(merged) == 2
    np.testing.assert_array_equal(decode_rles(merged.rles[:1], 30, 40)[0], a)  # 2 of 3 members: a
    assert merged.scores[0] == pytest.approx((0.9 + 0.7 + 0.8) / 3 * 3 / 4, rel=1e-6)
    assert merged.scores[1] == pytest.approx(0.4 / 4, rel=1e-6)
    np.testing.assert_allclose(merged.boxes[0], [5 / 30, 5 / 40, 25 / 30, 25 / 40], atol=1e-6)
    nms = merge_views(views, TTAConfig(flip=True, merge="nms", iou=0.5))
    assert nms.scores.tolist() == pytest.approx([0.9, 0.4])
    # Different classes never merge.
    two = merge_views([_det([a], [0.9]), _det([a], [0.8], classes=["/m/03bt1vf"])], config)
    assert sorted(two.classes) == sorted([MAN, "/m/03bt1vf"])


class SegmentsBrightPixels:
    """A stand-in predictor: one detection per image, the mask of the bright pixels (> 0.5) of the
    input mapped back to the original image through image_info, as the real model's outputs are."""

    output_size = S
    label_map = LabelMap.from_classes([MAN], ["Man"])
    mids = (MAN,)

    def predict(self, images, image_info, image_ids):
        out = []
        for b, image_id in enumerate(image_ids):
            h, w = (int(round(float(v))) for v in image_info[b, 0])
            sy, sx = image_info[b, 2]
            ys = np.minimum(((np.arange(h) + 0.5) * sy).astype(int), S - 1)
            xs = np.minimum(((np.arange(w) + 0.5) * sx).astype(int), S - 1)
            mask = images[b, :, :, 0][ys][:, xs] > 0.5
            out.append(Detections.from_dense(image_id, [MAN], np.array([0.9], np.float32), mask[None]))
        return out


@pytest.mark.parametrize("spec", ["flip", "flip,scales=0.5:1", "scales=0.75:1,merge=nms"])
def test_every_view_maps_back_onto_the_object(spec):
    h, w = 48, 96
    truth = np.zeros([h, w], bool)
    truth[10:40, 12:50] = True  # off-centre, so a missing un-flip would show
    scale = S / w
    images = np.zeros([1, S, S, 3], np.float32)
    ys = np.minimum(((np.arange(round(h * scale)) + 0.5) / scale).astype(int), h - 1)
    xs = np.minimum(((np.arange(S) + 0.5) / scale).astype(int), w - 1)
    images[0, : len(ys), :, 0] = truth[ys][:, xs]
    info = np.array([[[h, w], [len(ys), S], [len(ys) / h, S / w], [0, 0]]], np.float32)
    tta = TTAPredictor(SegmentsBrightPixels(), parse_tta(spec))
    assert tta.output_size == S and tta.mids == (MAN,)
    (merged,) = tta.predict(images, info, ["img"])
    assert len(merged) == 1 and merged.scores[0] == pytest.approx(0.9)  # found in every view
    truth_rle = Detections.from_dense("img", [MAN], np.ones(1), truth[None]).rles
    assert pairwise_iou(merged.rles, truth_rle)[0, 0] > 0.9


def test_predict_cli_tta_flag_runs_the_views(tmp_path):
    """The fake exports of test_predict answer with fixed boxes of the original image, whatever they
    see: the mirrored view's answers, mirrored back, land on the other side, so with merging off every
    layer's detections double and each keeps half its score (found by one view of two)."""
    from hierseg_cli.main import main
    from tests.test_predict import PERSON, _read, make_fake_export, write_image_folder

    l0 = make_fake_export(str(tmp_path / "l0"), [PERSON], ["Person"], [[0.1, 0.05, 0.9, 0.45]], [1])
    l1 = make_fake_export(str(tmp_path / "l1"), [MAN], ["Man"], [[0.2, 0.1, 0.8, 0.3]], [1], output_size=96)
    write_image_folder(tmp_path / "imgs", n=2, broken=False)
    argv = ["predict", "--layer0", l0, "--layer1", l1, "--images", str(tmp_path / "imgs" / "*.jpg"), "--no_progress"]
    off = ["--params_override", "ensemble.iou_threshold=1.5"]  # no Layer0/Layer1 merging: count each layer
    assert main([*argv, "--out", str(tmp_path / "plain"), *off]) == 0
    assert main([*argv, "--out", str(tmp_path / "tta"), "--tta", "flip", *off]) == 0
    plain = [Detections.from_json(x) for x in _read(tmp_path / "plain" / "layer0.jsonl").splitlines()]
    tta = [Detections.from_json(x) for x in _read(tmp_path / "tta" / "layer0.jsonl").splitlines()]
    for p, t in zip(plain, tta):
        assert len(p) == 1 and len(t) == 2
        mask = decode_rles(p.rles, p.height, p.width)[0]
        got = decode_rles(t.rles, t.height, t.width)
        assert {m.tobytes() for m in got} == {mask.tobytes(), np.ascontiguousarray(mask[:, ::-1]).tobytes()}
        assert max(t.scores) <= p.scores[0] * 0.5 + 0.05  # half: found by one view of two
    # The config's tta section does the same.
    config = tmp_path / "predict.yaml"
    config.write_text("tta:\n  enabled: true\n  flip: true\n")
    assert main([*argv, "--out", str(tmp_path / "cfg"), "--config_file", str(config), *off]) == 0
    assert _read(tmp_path / "cfg" / "layer0.jsonl") == _read(tmp_path / "tta" / "layer0.jsonl")
