"""The training engine on the tiny config (all slow: each builds or trains a model): XLA step, effective config and summaries, resume after
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
from hierseg.models.factory import build_model, build_train_targets
from hierseg.training import checkpoints, loop, optimizer
from hierseg.training.strategy import make_strategy
from hierseg.training.summaries import read_scalars
from hierseg_cli.experiment_args import data_dir_overrides

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY = REPO / "configs" / "tiny_cpu.yaml"


def tiny_config(layer: Path, **overrides) -> ExperimentConfig:
    cfg = merge(load(ExperimentConfig, str(TINY)), data_dir_overrides(str(layer)))
    return merge(cfg, overrides)


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    return write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=6)


@pytest.fixture(scope="module")
def trained(layer, tmp_path_factory):
    """The tiny model trained XLA-compiled (jit_compile=True) on the 6 images until it overfits them:
    150 steps of batch 4 (100 epochs), warmup 30 steps to lr 0.02, x0.1 at 120 and 140; no scale jitter.
    Returns (config, model_dir, result)."""
    model_dir = tmp_path_factory.mktemp("model")
    cfg = tiny_config(
        layer,
        data={"aug": {"flip_prob": 0.5, "scale_min": 1.0, "scale_max": 1.0}},
        train={
            "total_steps": 150,
            "steps_per_loop": 50,
            "checkpoint_every": 50,
            "summary_every": 50,
            "jit_compile": True,
            "learning_rate": {"warmup_steps": 30, "decay_steps": [120, 140]},
        },
    )
    result = loop.train(cfg, str(model_dir), make_strategy("cpu"), show_progress=False)
    return cfg, model_dir, result


def test_train_writes_effective_config_checkpoints_and_summaries(trained):
    cfg, model_dir, result = trained
    assert result["start_step"] == 0 and result["step"] == 150
    assert result["checkpoint"] == str(model_dir / "ckpt-150") and checkpoints.latest_step(str(model_dir)) == 150
    assert sorted(p.name for p in model_dir.glob("ckpt-*.index")) == ["ckpt-100.index", "ckpt-150.index"]  # keep 2
    assert load(ExperimentConfig, str(model_dir / "params.yaml")) == cfg  # the effective config
    assert cfg.train.jit_compile and cfg.model.num_classes == 3  # the steps above ran XLA-compiled
    scalars = read_scalars(str(model_dir / "train"))
    for tag in ("loss", "total_loss", "mask_loss", "learning_rate", "images_per_second", "weight_decay_loss"):
        assert [s for s, _ in scalars[tag]] == [50, 100, 150], tag
    lr = dict(scalars["learning_rate"])  # the lr of the last step of each loop (step indices 49, 99, 149)
    assert lr[50] == np.float32(0.02) and lr[150] == np.float32(0.02 * 0.01)
    losses = dict(scalars["loss"])
    assert losses[150] < 0.5 * losses[50]


def test_gradients_and_weight_decay_covers_kernels_only(trained, layer):
    from hierseg.input.pipeline import build_dataset

    cfg = tiny_config(layer)
    model = build_model(cfg.model, cfg.data.output_size)
    variables = optimizer.trainable_variables(model, "")
    targets = build_train_targets(cfg.model, cfg.data.output_size)
    batch = next(
        iter(
            build_dataset(
                cfg.data.train_file_pattern, cfg.data, is_training=True, batch_size=2, seed=0, train_targets=targets
            )
        )
    )
    losses, grads = tf.function(loop.make_gradient_fn(model, variables, cfg.train, num_replicas=2))(batch)
    assert float(losses["loss"]) == pytest.approx(float(losses["total_loss"] + losses["weight_decay_loss"]))
    assert np.isfinite(float(losses["loss"])) and float(losses["mask_loss"]) > 0
    assert len(grads) == len(variables) and all(np.all(np.isfinite(g.numpy())) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads) > len(grads) // 2
    kernels = [v for v in variables if len(v.shape) >= 2]
    expected = 1e-4 * sum(0.5 * float(np.sum(np.square(v.numpy()))) for v in kernels)
    assert float(optimizer.weight_decay_loss(variables, 1e-4)) == pytest.approx(expected, rel=1e-5)
    assert 0 < len(kernels) < len(variables)  # biases / BN are left out
    frozen = optimizer.trainable_variables(model, "backbone")
    assert 0 < len(frozen) < len(variables) and not any("backbone" in v.path for v in frozen)


def test_backbone_init_object_based_and_by_name(trained, layer, tmp_path):
    cfg, model_dir, _ = trained
    source = build_model(merge(cfg, {"model": {"num_classes": 3}}).model, cfg.data.output_size)
    checkpoints.make_checkpoint(source).read(
        str(model_dir / "ckpt-150")
    ).expect_partial().assert_existing_objects_matched()
    fresh = build_model(merge(cfg, {"model": {"num_classes": 3}}).model, cfg.data.output_size)
    n = checkpoints.init_backbone(fresh, CheckpointInitConfig(path=str(model_dir)))
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
    other = build_model(merge(cfg, {"model": {"num_classes": 3}}).model, cfg.data.output_size)
    assert checkpoints.init_backbone(other, CheckpointInitConfig(path=prefix, prefix="resnet18/")) == len(names)
    for a, b in zip(source.backbone.variables, other.backbone.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="no backbone variable found under prefix 'resnet50/'"):
        checkpoints.init_backbone(other, CheckpointInitConfig(path=prefix, prefix="resnet50/"))


def test_overfits_to_mask_ap_05_via_evaluate_cli(trained, tmp_path):
    """The key proof: `hierseg evaluate` (real eval pipeline, mask pasting, pycocotools) on the 6 training
    images gives COCO mask AP >= 0.5 after the fixture's 150 steps."""
    import json

    from hierseg_cli.main import main

    _, model_dir, _ = trained
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model_dir", str(model_dir), "--output_json", str(out), "--no_progress"]) == 0
    metrics = json.loads(out.read_text())
    print(f"tiny overfit, 150 steps: box AP {metrics['box/AP']:.3f}, mask AP {metrics['mask/AP']:.3f}")
    assert metrics["num_images"] == 6 and metrics["step"] == 150 and metrics["skipped_unknown_class"] == 0
    assert metrics["mask/AP"] >= 0.5, metrics
    assert metrics["box/AP50"] >= 0.5, metrics
    assert dict(read_scalars(str(model_dir / "eval"))["mask/AP"])[150] == pytest.approx(metrics["mask/AP"])


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
        while checkpoints.latest_step(str(model_dir)) in (None, 2) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)  # wait for a checkpoint past the first, so the kill can land mid-save too
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = checkpoints.latest_step(str(model_dir))
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
    assert checkpoints.latest_step(str(model_dir)) == killed_at + 2


def test_bfloat16_precision_trains_with_float32_variables(layer, tmp_path):
    import keras

    cfg = tiny_config(
        layer, train={"global_batch_size": 2, "total_steps": 2, "steps_per_loop": 2, "precision": "bfloat16"}
    )
    result = loop.train(cfg, str(tmp_path), make_strategy("cpu"), show_progress=False)
    assert result["step"] == 2 and np.isfinite(result["metrics"]["loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building the model
    names = tf.train.load_checkpoint(str(tmp_path / "ckpt-2")).get_variable_to_dtype_map()
    assert {d for n, d in names.items() if n.startswith("model/")} == {tf.float32}


def test_cli_train_and_eval_then_export_on_the_prepared_layer(prepared_dir, synth_dir, tmp_path):
    """The real path: `hierseg prepare` output -> `hierseg train --mode train_and_eval` -> `hierseg export`
    -> the SavedModel on an original validation JPEG returns masks of that image's size."""
    import json

    from hierseg_cli.main import main

    model_dir, export_dir = tmp_path / "model", tmp_path / "export"
    common = ["--config_file", str(TINY), "--data_dir", str(prepared_dir / "layer1")]
    assert (
        main(
            [
                "train",
                *common,
                "--model_dir",
                str(model_dir),
                "--strategy",
                "cpu",
                "--no_progress",
                "--mode",
                "train_and_eval",
                "--params_override",
                "train.total_steps=2,train.steps_per_loop=2,eval.max_images=4",
            ]
        )
        == 0
    )
    metrics = json.loads((model_dir / "eval" / "metrics-2.json").read_text())
    assert metrics["num_images"] == 4 and metrics["step"] == 2 and "mask/AP" in metrics
    assert main(["export", "--model_dir", str(model_dir), "--export_dir", str(export_dir)]) == 0
    jpeg_path = sorted((synth_dir / "validation").glob("*.jpg"))[0]
    jpeg = jpeg_path.read_bytes()
    height, width = tf.io.decode_jpeg(jpeg).shape[:2]
    out = tf.saved_model.load(str(export_dir)).signatures["serving_default"](image_bytes=tf.constant(jpeg))
    n = int(out[F.NUM_DETECTIONS])
    assert tuple(out[F.DET_MASKS].shape) == (n, height, width) and out[F.DET_MASKS].dtype == tf.uint8
    k = load(ExperimentConfig, str(export_dir / "export_config.yaml")).model.num_classes
    assert k == len((prepared_dir / "layer1" / "label_map.pbtxt").read_text().split("item {")) - 1
    assert np.all((out[F.DET_CLASSES].numpy() >= 1) & (out[F.DET_CLASSES].numpy() <= k))
