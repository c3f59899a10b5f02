"""The balance report chart stays readable at the real 213 (Layer0) and 87 (Layer1) classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep.report import ROWS_PER_PANEL, draw_report, panel_layout, report_png_paths, write_report


def fake_report(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    before = (10 ** rng.uniform(0, 5, n)).astype(np.int64)
    after = np.maximum(before, 300)
    return pd.DataFrame(
        {
            "class_id": np.arange(1, n + 1),
            "mid": [f"/m/{i:05d}" for i in range(n)],
            "name": [f"Class name {i}" for i in range(n)],
            "instances_before": 2 * before,
            "images_before": before,
            "instances_after": 2 * after,
            "images_after": after,
            "weighted_images_after": after.astype(float),
        }
    )


@pytest.mark.parametrize("n, panels", [(87, [87]), (213, [107, 106]), (300, [100, 100, 100])])
def test_layout_balances_panels_in_one_file(n, panels):
    layout = panel_layout(n)
    assert len(layout) == 1 and [len(p) for p in layout[0]] == panels
    assert all(len(p) <= ROWS_PER_PANEL for p in layout[0])


def test_many_classes_go_to_further_files():
    layout = panel_layout(500)
    assert len(layout) == 2 and sum(len(p) for f in layout for p in f) == 500
    assert report_png_paths("a/balance_train.png", 500) == ["a/balance_train.png", "a/balance_train-2.png"]


@pytest.mark.parametrize("n", [87, 213])
def test_every_class_name_is_drawn_inside_the_figure_without_overlap(n):
    import matplotlib.pyplot as plt

    r = fake_report(n).sort_values("images_before", ascending=False)
    fig = draw_report(r, panel_layout(n)[0], "layer0 train: images per class")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    names = []
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        boxes = [label.get_window_extent(renderer) for label in ax.get_yticklabels()]
        names += [label.get_text() for label in ax.get_yticklabels()]
        for b in boxes:
            assert 0 <= b.x0 and b.x1 <= width and 0 <= b.y0 and b.y1 <= height
        for upper, lower in zip(boxes, boxes[1:]):  # top to bottom: display y decreases
            assert lower.y1 <= upper.y0 + 0.5, (upper, lower)
    plt.close(fig)
    assert names == r["name"].tolist()  # every class, sorted by images before, most first


def test_write_report_writes_csv_and_png(tmp_path):
    r = fake_report(213)
    paths = write_report(r, str(tmp_path / "b.csv"), str(tmp_path / "b.png"), "layer0 train")
    assert paths == [str(tmp_path / "b.png")]
    assert pd.read_csv(tmp_path / "b.csv")["images_before"].tolist() == r["images_before"].tolist()
    image = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert image.shape[1] >= 1000  # two panels side by side
    blue = (image[..., 2] > 150) & (image[..., 0] < 60)
    gray = np.abs(image.astype(int) - 153).max(-1) < 5
    assert blue.sum() > 10000 and gray.sum() > 10000  # after and before bars
