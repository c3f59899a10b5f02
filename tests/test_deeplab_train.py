"""The tiny DeepLab v3+ through the engine's training loop and the semantic evaluation (slow): it overfits
a handful of synthetic images (the tiny layer of tests/test_training_loop.py) to mIoU >= 0.6 on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_layer import write_tiny_layer

from hierseg.config import load, merge
from hierseg.config.experiment import ExperimentConfig
from hierseg.evaluation.semantic_eval import evaluate_semantic
from hierseg.training import loop
from hierseg.training.checkpoints import restore_model
from hierseg.training.strategy import make_strategy
from hierseg.training.summaries import read_scalars
from hierseg_cli.experiment_args import data_dir_overrides

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_cpu_deeplab.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    layer = write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=6)
    cfg = merge(load(ExperimentConfig, str(TINY)), data_dir_overrides(str(layer)))
    # 120 steps of batch 4 (80 epochs), XLA-compiled, no scale jitter (flips stay on); mIoU ~0.9 when tried.
    train = {"jit_compile": True, "total_steps": 120, "steps_per_loop": 40, "checkpoint_every": 120}
    train["learning_rate"] = {"poly_steps": 120}
    cfg = merge(cfg, {"data": {"aug": {"scale_min": 1.0, "scale_max": 1.0}}, "train": train})
    model_dir = tmp_path_factory.mktemp("model")
    result = loop.train(cfg, str(model_dir), make_strategy("cpu"), show_progress=False)
    return cfg, model_dir, result


def test_tiny_deeplab_overfits_to_miou_06(trained, tmp_path):
    cfg, model_dir, result = trained
    assert result["step"] == cfg.train.total_steps
    model = restore_model(cfg, str(model_dir))
    out = tmp_path / "metrics.json"
    metrics = evaluate_semantic(model, cfg, output_json=str(out), summary_dir=str(tmp_path / "tb"), step=1)
    print({k: v for k, v in metrics.items() if k != "per_class"})
    assert metrics["num_images"] == 6
    assert metrics["semantic/mIoU"] >= 0.6
    written = json.loads(out.read_text())
    assert [c["class"] for c in written["per_class"]] == ["background", "Rectangle", "Ellipse", "Diamond"]
    assert all(c["gt_pixels"] > 0 for c in written["per_class"])
    assert "semantic/mIoU" in read_scalars(str(tmp_path / "tb"))


def test_cli_evaluate_export_and_predict_semantic(trained, tmp_path):
    """`hierseg evaluate` prints/writes mIoU for the semantic model; `hierseg export` gives the semantic
    signatures; `hierseg predict-semantic` runs on two such exports."""
    import numpy as np
    import tensorflow as tf

    from hierseg import features as F
    from hierseg_cli.main import main

    cfg, model_dir, _ = trained
    layer = str(Path(cfg.data.label_map).parent)
    assert main(["evaluate", "--model_dir", str(model_dir), "--data_dir", layer, "--no_progress"]) == 0
    written = json.loads(next((Path(model_dir) / "eval").glob("metrics-*.json")).read_text())
    assert written["semantic/mIoU"] >= 0.6
    export = tmp_path / "export"
    assert main(["export", "--model_dir", str(model_dir), "--export_dir", str(export)]) == 0
    loaded = tf.saved_model.load(str(export))
    image = np.zeros((50, 70, 3), np.uint8)
    image[10:30, 20:50] = (220, 40, 40)  # a red rectangle: class 1 of the tiny layer
    out = loaded.signatures["serving_default"](image_bytes=tf.io.encode_png(image))
    labels = out[F.SEMANTIC_LABELS].numpy()
    assert labels.shape == (50, 70) and (labels[15:25, 25:45] == 1).mean() > 0.5
    images = tmp_path / "images"
    images.mkdir()
    tf.io.write_file(str(images / "a.png"), tf.io.encode_png(image))
    out_dir = tmp_path / "semantic"
    args = ["predict-semantic", "--layer0", str(export), "--layer1", str(export), "--images", str(images)]
    assert main([*args, "--out", str(out_dir), "--no_progress"]) == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["num_images"] == 1 and (out_dir / "layer0" / "a.png").exists()
