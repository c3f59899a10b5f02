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
