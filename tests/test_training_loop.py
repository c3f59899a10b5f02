"""The training engine on the tiny config: XLA step, effective config and summaries, resume after
SIGKILL, backbone init, evaluation, export (both signatures), and the overfit proof (mask AP >= 0.5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tiny_layer import write_tiny_layer

from hierseg import features as F
from hierseg.config import load, merge
from hierseg.config.experiment import ExperimentConfig
from hierseg.config.training import CheckpointInitConfig
from hierseg.training import loop
from hierseg.training.strategy import make_strategy
from hierseg.training.summaries import read_scalars
from hierseg_cli.experiment_args import data_dir_overrides

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_cpu.yaml"


def tiny_config(layer: Path, **overrides) -> ExperimentConfig:
    cfg = merge(load(ExperimentConfig, str(TINY)), data_dir_overrides(str(layer)))
    return merge(cfg, overrides)


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    return write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=6)


@pytest.fixture(scope="module")
def trained(layer, tmp_path_factory):
    """4 XLA-compiled steps of the tiny model on 2 images per step: (config, model_dir, result)."""
    model_dir = tmp_path_factory.mktemp("model")
    cfg = tiny_config(
        layer,
        train={
            "global_batch_size": 2,
            "total_steps": 4,
            "steps_per_loop": 2,
            "checkpoint_every": 2,
            "summary_every": 2,
            "jit_compile": True,
        },
    )
    result = loop.train(cfg, str(model_dir), make_strategy("cpu"), show_progress=False)
    return cfg, model_dir, result


def test_train_writes_effective_config_checkpoints_and_summaries(trained):
    cfg, model_dir, result = trained
    assert result["start_step"] == 0 and result["step"] == 4
    assert result["checkpoint"] == str(model_dir / "ckpt-4") and loop.latest_step(str(model_dir)) == 4
    assert load(ExperimentConfig, str(model_dir / "params.yaml")) == cfg  # the effective config
    assert cfg.train.jit_compile and cfg.model.num_classes == 3  # the steps above ran XLA-compiled
    scalars = read_scalars(str(model_dir / "train"))
    for tag in ("loss", "total_loss", "learning_rate", "images_per_second", "weight_decay_loss"):
        assert [s for s, _ in scalars[tag]] == [2, 4], tag
    lr = dict(scalars["learning_rate"])
    assert lr[2] == pytest.approx(0.0067 + 1 / 50 * (0.02 - 0.0067), rel=1e-5)  # the lr of step index 1


def test_gradients_and_weight_decay_covers_kernels_only(trained, layer):
    from hierseg.input.pipeline import build_dataset

    cfg = tiny_config(layer)
    model = loop.build_model(cfg)
    variables = loop.trainable_variables(model, "")
    batch = next(iter(build_dataset(cfg.data.train_file_pattern, cfg.data, cfg.model.anchor, is_training=True,
                                    batch_size=2, seed=0)))
    losses, grads = tf.function(loop.make_gradient_fn(model, variables, cfg.train, num_replicas=2))(batch)
    assert float(losses["loss"]) == pytest.approx(float(losses["total_loss"] + losses["weight_decay_loss"]))
    assert np.isfinite(float(losses["loss"])) and float(losses["mask_loss"]) > 0
    assert len(grads) == len(variables) and all(np.all(np.isfinite(g.numpy())) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads) > len(grads) // 2
    kernels = [v for v in variables if len(v.shape) >= 2]
    expected = 1e-4 * sum(0.5 * float(np.sum(np.square(v.numpy()))) for v in kernels)
    assert float(loop.weight_decay_loss(variables, 1e-4)) == pytest.approx(expected, rel=1e-5)
    assert 0 < len(kernels) < len(variables)  # biases / BN are left out
    frozen = loop.trainable_variables(model, "backbone")
    assert 0 < len(frozen) < len(variables) and not any("backbone" in v.path for v in frozen)


def test_backbone_init_object_based_and_by_name(trained, layer, tmp_path):
    cfg, model_dir, _ = trained
    source = loop.build_model(merge(cfg, {"model": {"num_classes": 3}}))
    loop.make_checkpoint(source).read(str(model_dir / "ckpt-4")).expect_partial().assert_existing_objects_matched()
    fresh = loop.build_model(merge(cfg, {"model": {"num_classes": 3}}))
    n = loop.init_backbone(fresh, CheckpointInitConfig(path=str(model_dir)))
    assert n == len(fresh.backbone.variables)
    for a, b in zip(source.backbone.variables, fresh.backbone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # A name-based (TF1-style) checkpoint: "<prefix><path inside the backbone>".
    names = [v.path.split(f"{source.backbone.name}/", 1)[-1] for v in source.backbone.variables]
    prefix = str(tmp_path / "named")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=[f"resnet18/{n}" for n in names],
        shape_and_slices=[""] * len(names),
        tensors=[v.numpy() for v in source.backbone.variables],
    )
    other = loop.build_model(merge(cfg, {"model": {"num_classes": 3}}))
    assert loop.init_backbone(other, CheckpointInitConfig(path=prefix, prefix="resnet18/")) == len(names)
    for a, b in zip(source.backbone.variables, other.backbone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="no backbone variable found under prefix 'resnet50/'"):
        loop.init_backbone(other, CheckpointInitConfig(path=prefix, prefix="resnet50/"))


def test_evaluate_cli_writes_metrics_json(trained, tmp_path):
    from hierseg_cli.main import main

    _, model_dir, _ = trained
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model_dir", str(model_dir), "--output_json", str(out), "--no_progress"]) == 0
    import json

    metrics = json.loads(out.read_text())
    assert metrics["num_images"] == 6 and metrics["step"] == 4
    assert -1 <= metrics["mask/AP"] <= 1 and "box/AP50" in metrics
    assert "mask/AP" in read_scalars(str(model_dir / "eval"))


def test_export_signatures_on_a_jpeg(trained, layer, tmp_path):
    from hierseg.input.preprocess import decode_image, resize_and_pad
    from hierseg.label_map import LabelMap
    from hierseg.serving.export import export_saved_model

    cfg, model_dir, _ = trained
    export_dir = export_saved_model(cfg, str(model_dir), str(tmp_path / "export"))
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no temporary left behind
    assert LabelMap.load(os.path.join(export_dir, "label_map.pbtxt")).num_classes == 3
    assert load(ExperimentConfig, os.path.join(export_dir, "export_config.yaml")).model.num_classes == 3
    imported = tf.saved_model.load(export_dir)
    jpeg = tf.io.encode_jpeg(tf.cast(tf.random.uniform([83, 117, 3], 0, 255, seed=1), tf.uint8)).numpy()
    out = imported.signatures["serving_default"](image_bytes=tf.constant(jpeg))
    n = int(out[F.NUM_DETECTIONS])
    assert out[F.DET_MASKS].dtype == tf.uint8 and tuple(out[F.DET_MASKS].shape) == (n, 83, 117)
    assert tuple(out[F.DET_BOXES].shape) == (n, 4) and out[F.DET_CLASSES].dtype == tf.int32
    assert set(np.unique(out[F.DET_MASKS].numpy())) <= {0, 1}
    # serve_images on the same preprocessed image gives the same detections, box-level masks.
    image, info = resize_and_pad(decode_image(tf.constant(jpeg)), cfg.data.output_size)
    batched = imported.signatures["serve_images"](images=image[None], image_info=info[None])
    assert int(batched[F.NUM_DETECTIONS][0]) == n
    m = cfg.model.mask_head.mask_size
    assert tuple(batched[F.DET_MASKS].shape)[2:] == (m, m)
    np.testing.assert_allclose(np.clip(batched[F.DET_BOXES][0, :n].numpy(), 0, 1), out[F.DET_BOXES].numpy(), atol=1e-5)
    np.testing.assert_array_equal(batched[F.DET_CLASSES][0, :n].numpy(), out[F.DET_CLASSES].numpy())


@pytest.mark.slow
def test_resume_after_sigkill_restarts_at_the_last_checkpoint(layer, tmp_path):
    model_dir = tmp_path / "model"
    cmd = [
        sys.executable,
        "-m",
        "hierseg_cli.main",
        "train",
        "--config_file",
        str(TINY),
        "--data_dir",
        str(layer),
        "--model_dir",
        str(model_dir),
        "--strategy",
        "cpu",
        "--no_progress",
        "--params_override",
        "train.global_batch_size=2,train.steps_per_loop=2,train.checkpoint_every=2",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [*cmd, "--params_override", "train.total_steps=100000"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while loop.latest_step(str(model_dir)) in (None, 2) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)  # wait for a checkpoint past the first, so the kill can land mid-save too
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = loop.latest_step(str(model_dir))
    assert killed_at is not None and killed_at >= 4, "no checkpoint before the kill"
    second = subprocess.run(
        [*cmd, "--params_override", f"train.total_steps={killed_at + 2}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"restored checkpoint {model_dir}/ckpt-{killed_at} at step {killed_at}" in second.stderr
    assert f"training from step {killed_at} to {killed_at + 2}" in second.stderr
    assert loop.latest_step(str(model_dir)) == killed_at + 2


@pytest.mark.slow
def test_tiny_model_overfits_a_few_images_to_mask_ap_05(layer, tmp_path):
    from hierseg.training.evaluator import evaluate

    cfg = tiny_config(
        layer,
        data={"aug": {"flip_prob": 0.5, "scale_min": 1.0, "scale_max": 1.0}},
        # 150 steps of batch 4 (about 100 epochs of the 6 images): warmup 30, lr 0.02, x0.1 at 120 and 140.
        train={"total_steps": 150, "checkpoint_every": 150, "steps_per_loop": 50,
               "learning_rate": {"warmup_steps": 30, "decay_steps": [120, 140]}},
    )
    result = loop.train(cfg, str(tmp_path), make_strategy("cpu"), show_progress=False)
    metrics = evaluate(cfg, str(tmp_path), show_progress=False, output_json=str(tmp_path / "metrics.json"))
    print(
        f"overfit after {result['step']} steps: loss {result['metrics']['loss']:.3f}, "
        f"box AP {metrics['box/AP']:.3f}, mask AP {metrics['mask/AP']:.3f}"
    )
    assert metrics["num_images"] == 6
    assert metrics["mask/AP"] >= 0.5, metrics

