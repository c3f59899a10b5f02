"""hierseg's own checkpoints as a pretrained start (issue 12 §1): whole model, some modules, Layer0 -> Layer1.

A Layer0 model (3 classes) warm-starts a Layer1 model (5 classes): every variable is copied except the
class-specific layers (class logits, class box deltas, class masks), which are skipped, listed and left
random. A mismatch anywhere else is an error naming the variable.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf

from hierseg import features as F
from hierseg.config.model import ModelConfig
from hierseg.models.mask_rcnn import MaskRCNN
from hierseg.training import checkpoints, loop
from hierseg.training.checkpoint_readers import initialize, parse_modules
from hierseg.training.checkpoint_readers.hierseg_ckpt import checkpoint_key, path_of_key

SIZE = 128
CLASS_LAYERS = [
    "box_head/box_deltas/bias",
    "box_head/box_deltas/kernel",
    "box_head/class_logits/bias",
    "box_head/class_logits/kernel",
    "mask_head/mask_logits/bias",
    "mask_head/mask_logits/kernel",
]


def build(num_classes: int, **fpn) -> MaskRCNN:
    config = ModelConfig.tiny(num_classes)
    for k, v in fpn.items():
        setattr(config.fpn, k, v)
    model = MaskRCNN(config, num_classes, SIZE)
    info = tf.constant([[[SIZE, SIZE], [SIZE, SIZE], [1.0, 1.0], [0.0, 0.0]]], tf.float32)
    model({F.IMAGE: tf.zeros([1, SIZE, SIZE, 3]), F.IMAGE_INFO: info}, training=False)
    return model


@pytest.fixture(scope="module")
def layer0(tmp_path_factory):
    """A saved 3-class model, written the way the training loop writes checkpoints."""
    tf.keras.utils.set_random_seed(1)
    model = build(3)
    step = tf.Variable(7, dtype=tf.int64)
    out = tmp_path_factory.mktemp("layer0")
    manager = tf.train.CheckpointManager(
        checkpoints.make_checkpoint(model, step=step), str(out), 1, checkpoint_name="ckpt"
    )
    manager.save(checkpoint_number=7)
    return model, str(out)


def values(model, under: str = "") -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in checkpoints.variables_by_path(model, under).items()}


def test_key_escaping_round_trips():
    for path in ("backbone/stage2_0/conv1/kernel", "box_head/fc1.x/bias"):
        assert path_of_key(checkpoint_key(path)) == path
    assert parse_modules("all") == ("backbone", "fpn", "rpn", "box_head", "mask_head")
    assert parse_modules("fpn, backbone") == ("backbone", "fpn")


def test_layer0_warm_starts_layer1(layer0, caplog):
    source, ckpt_dir = layer0
    tf.keras.utils.set_random_seed(2)
    target = build(5)
    before = values(target)
    with caplog.at_level(logging.INFO):
        report = initialize(target, ckpt_dir, "all")
    assert report.source == "hierseg"
    assert sorted(ours for _, ours, _ in report.skipped) == CLASS_LAYERS
    src, got = values(source), values(target)
    for path, value in got.items():
        if path in CLASS_LAYERS:
            np.testing.assert_array_equal(value, before[path])  # left random
        else:
            np.testing.assert_array_equal(value, src[path], err_msg=path)
    assert {k: sorted(v) for k, v in report.left_random.items()} == {
        "box_head": CLASS_LAYERS[:4],
        "mask_head": CLASS_LAYERS[4:],
    }
    assert report.num_loaded == len(got) - len(CLASS_LAYERS)
    assert "module" in caplog.text and "class-specific" in caplog.text and "left random" in caplog.text


def test_same_classes_load_everything(layer0):
    source, ckpt_dir = layer0
    target = build(3)
    report = initialize(target, ckpt_dir + "/ckpt-7", "all")
    assert not report.skipped and not report.left_random
    assert all(np.array_equal(a, values(source)[k]) for k, a in values(target).items())


def test_backbone_only_leaves_the_rest(layer0):
    source, ckpt_dir = layer0
    target = build(3)
    before = values(target)
    report = initialize(target, ckpt_dir, "backbone")
    assert set(report.loaded) == {"backbone"}
    after, src = values(target), values(source)
    for path in after:
        want = src[path] if path.startswith("backbone/") else before[path]
        np.testing.assert_array_equal(after[path], want, err_msg=path)


def test_mismatch_outside_class_layers_is_an_error(layer0):
    _, ckpt_dir = layer0
    with pytest.raises(
        ValueError, match=r"model/fpn.Slateral_p2.Skernel.*shape \[1, 1, 16, 32\].*fpn/lateral_p2/kernel"
    ):
        initialize(build(3, num_filters=16), ckpt_dir, "fpn")
    # FPN norms the checkpoint does not have: a count mismatch naming our variable.
    with pytest.raises(ValueError, match=r"missing.*fpn/norm_p2/gamma|fpn/norm_p2/gamma.*no counterpart"):
        model = MaskRCNN(_with_fpn_norm(), 3, SIZE)
        info = tf.constant([[[SIZE, SIZE], [SIZE, SIZE], [1.0, 1.0], [0.0, 0.0]]], tf.float32)
        model({F.IMAGE: tf.zeros([1, SIZE, SIZE, 3]), F.IMAGE_INFO: info}, training=False)
        initialize(model, ckpt_dir, "fpn")


def _with_fpn_norm() -> ModelConfig:
    config = ModelConfig.tiny(3)
    config.fpn.use_norm = True
    return config


@pytest.mark.slow
def test_training_loop_warm_starts_layer1_from_layer0(tmp_path, caplog):
    """`hierseg train` with train.init = a Layer0 model_dir: a 5-class Layer1 run starts from its weights."""
    from hierseg.config import load, merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.training.strategy import make_strategy
    from hierseg_cli.experiment_args import data_dir_overrides
    from tests.test_training_loop import TINY
    from tests.tiny_layer import write_tiny_layer

    layer = write_tiny_layer(tmp_path / "layer", num_images=4)
    base = merge(load(ExperimentConfig, str(TINY)), data_dir_overrides(str(layer)))
    # The stem conv stays frozen in the Layer1 run, so its value proves where it came from.
    train = {"total_steps": 2, "steps_per_loop": 1, "checkpoint_every": 2, "global_batch_size": 2}
    layer0 = merge(base, {"train": train})
    loop.train(layer0, str(tmp_path / "l0"), make_strategy("cpu"), show_progress=False)
    layer1 = merge(
        layer0,
        {
            "model": {"num_classes": 5},
            "train": {"init": {"path": str(tmp_path / "l0")}, "frozen_variables": "backbone/stem_conv/"},
        },
    )
    with caplog.at_level(logging.INFO):
        result = loop.train(layer1, str(tmp_path / "l1"), make_strategy("cpu"), show_progress=False)
    assert result["start_step"] == 0 and result["step"] == 2
    assert "(hierseg checkpoint; modules: backbone,fpn,rpn,box_head,mask_head)" in caplog.text
    assert "-> box_head/class_logits/kernel: class-specific" in caplog.text
    key = checkpoint_key("backbone/stem_conv/kernel")
    stem0 = tf.train.load_checkpoint(str(tmp_path / "l0" / "ckpt-2")).get_tensor(key)
    stem1 = tf.train.load_checkpoint(str(tmp_path / "l1" / "ckpt-2")).get_tensor(key)
    np.testing.assert_array_equal(stem1, stem0)
