"""DeepLab v3+: atrous ResNet, ASPP and decoder shapes at output strides 8 and 16, the loss vs numpy,
the XLA-compiled train step, bfloat16, and MirroredStrategy over 2 logical CPUs = one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from hierseg import features as F
from hierseg.config.deeplab import ASPPConfig, DecoderConfig, DeepLabConfig
from hierseg.config.model import BackboneConfig
from hierseg.config.training import TrainConfig
from hierseg.models.deeplab import DeepLabV3Plus
from hierseg.models.deeplab_loss import semantic_loss
from hierseg.training import loop
from hierseg.training.checkpoints import variables_by_path

REPO = Path(__file__).resolve().parents[1]
K = 3  # foreground classes


def tiny(size: int, norm: str = "batch", dropout: float = 0.1) -> DeepLabV3Plus:
    backbone = BackboneConfig(depth=18, width_multiplier=0.25, norm=norm, norm_momentum=0.9)
    cfg = DeepLabConfig(
        multi_grid=[1, 2],
        aspp=ASPPConfig(num_filters=16, dropout=dropout),
        decoder=DecoderConfig(low_level_filters=8, num_filters=16),
    )
    return DeepLabV3Plus(backbone, cfg, K, size)


def batch(size: int, b: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K + 1, (b, size, size)).astype(np.int32)
    labels[:, :3] = 255
    return {
        F.IMAGE: tf.constant(rng.normal(size=(b, size, size, 3)).astype(np.float32)),
        F.GT_SEMANTIC: tf.constant(labels),
        F.WEIGHT: tf.constant(rng.uniform(0.5, 2.0, b).astype(np.float32)),
    }


@pytest.mark.parametrize("size", [64, 65])
def test_backbone_aspp_decoder_shapes_at_output_strides_8_and_16(size):
    model = tiny(size)
    images = batch(size)[F.IMAGE]
    c2 = -(-size // 4)
    for stride in (16, 8):
        feats = model.backbone(images, output_stride=stride, multi_grid=(1, 2))
        side = -(-size // stride)
        assert feats[5].shape == (2, side, side, model.backbone.channels[5])
        assert feats[2].shape[1:3] == (c2, c2)
        aspp = model.aspp(feats[5], output_stride=stride)
        assert aspp.shape == (2, side, side, 16)
        logits = model.decoder(aspp, feats[2])
        assert logits.shape == (2, c2, c2, K + 1)
    # The eval call runs at stride 8, training at 16; both upsample to the input.
    assert model.logits(images, training=False).shape == (2, size, size, K + 1)
    assert model.logits(images, training=True).shape == (2, size, size, K + 1)
    out = model({F.IMAGE: images}, training=False)
    assert out[F.SEMANTIC_LABELS].shape == (2, size, size) and out[F.SEMANTIC_LABELS].dtype == tf.int32
    assert out[F.SEMANTIC_SCORES].shape == (2, size, size)
    assert model.output_kind == "semantic" and model.loss_keys == ("total_loss", "semantic_loss")


def test_dilated_stages_use_the_same_weights():
    model = tiny(64)
    images = batch(64)[F.IMAGE]
    model.backbone(images, output_stride=32)
    n = len(model.backbone.weights)
    model.backbone(images, output_stride=8)
    assert len(model.backbone.weights) == n  # atrous units reuse the strided units' kernels
    assert model.backbone(images, output_stride=32)[5].shape[1] == 2  # the default is unchanged


def test_aspp_rates_scale_with_output_stride():
    cfg = DeepLabConfig()
    assert cfg.rates_at(16) == [6, 12, 18] and cfg.rates_at(8) == [12, 24, 36]
    with pytest.raises(ValueError, match="class_weights has 2 entries"):
        DeepLabConfig(class_weights=[1.0, 2.0]).validate(3)
    with pytest.raises(ValueError, match="eval_output_stride"):
        DeepLabConfig(eval_output_stride=4).validate(3)


def test_semantic_loss_matches_numpy_with_ignore_and_class_weights():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4, 4)).astype(np.float32)
    labels = rng.integers(0, 4, (3, 5, 4))
    labels[rng.random(labels.shape) < 0.3] = 255
    labels[2] = 255  # an image without any labelled pixel contributes 0
    cw = [0.5, 1.0, 2.0, 3.0]
    ew = np.array([1.0, 2.0, 1.5], np.float32)
    got = float(semantic_loss(tf.constant(logits), tf.constant(labels), 255, cw, tf.constant(ew)))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_image = []
    for b in range(3):
        valid = labels[b] != 255
        ce = [-logp[b][y, x, labels[b, y, x]] * cw[labels[b, y, x]] for y, x in zip(*np.nonzero(valid))]
        per_image.append(sum(ce) / max(valid.sum(), 1))
    assert got == pytest.approx(float(np.sum(np.array(per_image) * ew) / 3), rel=1e-5)


@pytest.mark.slow
def test_train_step_compiles_with_xla_and_matches_eager():
    model = tiny(64, dropout=0.0)
    feats = batch(64)
    model(feats, training=False)
    variables = loop.trainable_variables(model, "")
    eager = loop.make_gradient_fn(model, variables, TrainConfig(jit_compile=False), 1)
    xla = loop.make_gradient_fn(model, variables, TrainConfig(jit_compile=True), 1)
    # Batch norm in training mode updates moving averages: compare losses of the same inputs/weights.
    l1, g1 = eager(feats)
    l2, g2 = xla(feats)
    assert float(l2["total_loss"]) == pytest.approx(float(l1["total_loss"]), rel=1e-4)
    assert np.isfinite(float(l2["loss"]))
    scale = max(float(tf.reduce_max(tf.abs(g))) for g in g1)
    assert max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(g1, g2)) <= 1e-3 * scale


def test_bfloat16_forward_and_loss():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tiny(64)
        feats = batch(64)
        losses = model(feats, training=True)
        assert losses["total_loss"].dtype == tf.float32 and np.isfinite(float(losses["total_loss"]))
        assert all(v.dtype == tf.float32 for v in model.trainable_variables)
        out = model({F.IMAGE: feats[F.IMAGE]}, training=False)
        assert out[F.SEMANTIC_SCORES].dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


MIRRORED_PROGRAM = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from test_deeplab_model import batch, tiny
    from hierseg.config.training import TrainConfig
    from hierseg.training import loop

    feats = batch(64, b=4)

    def losses_and_grads(strategy, weights=None):
        with strategy.scope():
            model = tiny(64, norm="sync", dropout=0.0)  # sync BN: statistics of the global batch
            model({"image": feats["image"][:1]}, training=False)
            if weights is not None:
                for v, w in zip(model.variables, weights):
                    v.assign(w)
        initial = [v.numpy() for v in model.variables]
        variables = loop.trainable_variables(model, "")
        n = strategy.num_replicas_in_sync
        gradient_fn = loop.make_gradient_fn(model, variables, TrainConfig(weight_decay=1e-3), n)

        def replica_fn(b):
            losses, grads = gradient_fn(b)
            grads, _ = loop.all_reduce_gradients(grads, 0.0)
            return losses["loss"], grads

        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group::n] for k, v in feats.items()})
        loss, grads = tf.function(lambda d: strategy.run(replica_fn, args=(d,)))(dist)
        loss = float(strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None))
        return loss, [[g.numpy() for g in strategy.experimental_local_results(x)] for x in grads], initial

    loss1, grads1, vars1 = losses_and_grads(tf.distribute.OneDeviceStrategy("/cpu:0"))
    loss2, grads2, _ = losses_and_grads(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), vars1)
    scale = max(float(np.max(np.abs(g[0]))) for g in grads1)
    diff = max(float(np.max(np.abs(a[0] - b[0]))) for a, b in zip(grads1, grads2))
    replica_diff = max(float(np.max(np.abs(g[0] - g[1]))) for g in grads2)
    print("RESULT " + json.dumps({"loss1": loss1, "loss2": loss2, "grad_scale": scale, "grad_diff": diff,
                                  "replica_diff": replica_diff}))
""")


@pytest.mark.slow
def test_mirrored_two_cpus_equal_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=f"{REPO}:{REPO / 'tests'}")
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_PROGRAM], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][0][7:])
    print("mirrored vs one device:", r)
    assert r["loss1"] == pytest.approx(r["loss2"], rel=1e-4, abs=1e-6), r
    assert r["replica_diff"] == 0.0, r
    assert r["grad_diff"] <= 1e-4 * r["grad_scale"] + 1e-6, r


def test_poly_learning_rate_after_warmup():
    from hierseg.training.schedule import WarmupStepDecay

    s = WarmupStepDecay(0.01, 10, 0.001, [], policy="poly", poly_steps=100, poly_power=0.9)
    assert float(s(0)) == pytest.approx(0.001)
    assert float(s(50)) == pytest.approx(0.01 * 0.5**0.9, rel=1e-5)
    assert float(s(100)) == 0.0 and float(s(150)) == 0.0
    with pytest.raises(ValueError, match="poly_steps"):
        WarmupStepDecay(0.01, 0, 0.0, [], policy="poly")


def test_checkpoint_paths_are_unique_whatever_stride_builds_first():
    model = tiny(64)
    model({F.IMAGE: batch(64)[F.IMAGE]}, training=False)  # built at output stride 8 (atrous units first)
    paths = variables_by_path(model)  # raises on a duplicate path
    assert "aspp/atrous_2/conv/kernel" in paths and "backbone/stage5_1/conv2/kernel" in paths
    assert len(paths) == len(model.variables)


@pytest.mark.parametrize(
    "name",
    [
        "voc_deeplab_v3plus_r101.yaml",
        "layer0_deeplab_v3plus_r101.yaml",
        "layer1_deeplab_v3plus_r101.yaml",
        "tiny_cpu_deeplab.yaml",
    ],
)
def test_deeplab_configs_load_strictly_and_are_consistent(name):
    from hierseg.config import load
    from hierseg.config.experiment import ExperimentConfig

    cfg = load(ExperimentConfig, str(REPO / "configs" / name))
    assert cfg.model.type == "deeplab_v3plus" and cfg.data.semantic.enabled
    cfg.model.deeplab.validate(max(cfg.model.num_classes, 1))
    lr = cfg.train.learning_rate
    assert lr.policy == "poly" and lr.poly_steps == cfg.train.total_steps
    assert (REPO / "configs" / name).read_text().startswith(f"# hierseg train --config_file configs/{name}")


def test_deeplab_config_values_are_range_checked_naming_the_key():
    from hierseg.config import load
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.config.params import ConfigError

    tiny_cfg = str(REPO / "configs" / "tiny_cpu_deeplab.yaml")
    with pytest.raises(ConfigError, match=r"model.deeplab.aspp.dropout: 1.5 is out of range"):
        load(ExperimentConfig, tiny_cfg, "model.deeplab.aspp.dropout=1.5")
    with pytest.raises(ConfigError, match=r"data.semantic.gray_value: 300 is out of range"):
        load(ExperimentConfig, tiny_cfg, "data.semantic.gray_value=300")
    with pytest.raises(ConfigError, match=r"model.deeplab.aspp.atrous_rates"):
        load(ExperimentConfig, tiny_cfg, "model.deeplab.aspp.atrous_rates=[1]")


def test_loss_on_stride_4_logits_when_upsample_logits_is_off():
    from hierseg.models.deeplab import downsample_labels

    labels = np.random.default_rng(0).integers(0, 4, (2, 65, 65)).astype(np.int32)
    np.testing.assert_array_equal(downsample_labels(tf.constant(labels), (17, 17), True), labels[:, ::4, ::4])
    assert downsample_labels(tf.constant(labels[:, :64, :64]), (16, 16), False).shape == (2, 16, 16)
    model = tiny(65, dropout=0.0)
    model.config.upsample_logits = False
    feats = batch(65)
    losses = model(feats, training=True)
    logits = model.logits(feats[F.IMAGE], training=True, upsample=False)  # BN in training mode: same batch stats
    expected = semantic_loss(logits, feats[F.GT_SEMANTIC].numpy()[:, ::4, ::4], 255, None, feats[F.WEIGHT])
    assert logits.shape == (2, 17, 17, K + 1)
    assert float(losses["semantic_loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert model({F.IMAGE: feats[F.IMAGE]}, training=False)[F.SEMANTIC_LABELS].shape == (2, 65, 65)
