"""`hierseg plot`: training curves read back from TensorBoard event files with TensorBoard's reader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hierseg.training.curves import panels, read_model_dir
from hierseg.training.summaries import write_scalars
from hierseg_cli.main import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    for step in range(10, 60, 10):
        write_scalars(
            str(d / "train"),
            step,
            {"total_loss": 3.0 / step, "mask_loss": 1.0 / step, "learning_rate": 0.01 * step, "grad_norm": 2.0},
        )
    for step in (20, 50):
        write_scalars(str(d / "eval"), step, {"box/AP": step / 100, "mask/AP": step / 200})
    return d


def test_scalars_read_back_and_sorted_into_panels(model_dir):
    runs = read_model_dir(str(model_dir))
    assert set(runs) == {"train", "eval"}
    assert [s for s, _ in runs["train"]["total_loss"]] == [10, 20, 30, 40, 50]
    assert runs["train"]["mask_loss"][0][1] == pytest.approx(0.1)
    assert runs["eval"]["mask/AP"] == [(20, pytest.approx(0.1)), (50, pytest.approx(0.25))]
    groups = panels(runs)
    assert set(groups["losses"]) == {"train/total_loss", "train/mask_loss"}
    assert set(groups["learning rate"]) == {"train/learning_rate"}
    assert set(groups["eval"]) == {"eval/box/AP", "eval/mask/AP"}
    assert set(groups["other"]) == {"train/grad_norm"}


def test_plot_command_writes_a_png_with_four_panels(model_dir, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", "--model_dir", str(model_dir), "--out", str(out)]) == 0
    assert "eval: eval/box/AP, eval/mask/AP" in capsys.readouterr().out
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[:2] == (4 * 288, 810)  # four 9 x 3.2 inch panels stacked, at 90 dpi
    colored = (image.max(-1).astype(int) - image.min(-1)) > 80  # plotted lines, not gray axes or text
    assert colored[: image.shape[0] // 4].any() and colored[-image.shape[0] // 4 :].any()


def test_plot_command_without_events_names_the_folder(tmp_path, capsys):
    assert main(["plot", "--model_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "no TensorBoard event files" in err
