"""The TF1 Cloud TPU ResNet reader on a checkpoint written by tensorflow/tpu's own ``resnet_model.py``.

``tests/data/pretrained/tf1_resnet50`` was written by ``tools/make_tf1_resnet_fixture.py`` (see its
docstring): ``resnet_v1(50)`` under ``variable_scope("resnet50")`` with 8x narrower convs, random
variables, and its block-group outputs (C2..C5, inference mode) on fixed images. Loading it into
hierseg's ResNet-50 (width 0.125) with the TF1 architecture choices (fixed padding, BN epsilon 1e-5)
must reproduce those features to 1e-4; with hierseg's default "same" padding it must not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hierseg.config.model import BackboneConfig
from hierseg.models.resnet import ResNet
from hierseg.training.checkpoints import load_tf1_resnet

FIXTURE = Path(__file__).parent / "data" / "pretrained" / "tf1_resnet50"
TOLERANCE = 1e-4


def _backbone(padding: str) -> ResNet:
    config = BackboneConfig(depth=50, width_multiplier=0.125, norm="frozen", norm_epsilon=1e-5, conv_padding=padding)
    backbone = ResNet(config, name="backbone")
    backbone(tf.zeros([1, 64, 64, 3]))
    path = str(FIXTURE / "model.ckpt")
    assert load_tf1_resnet(backbone, tf.train.load_checkpoint(path), "resnet50/", path) == 53 * 5
    return backbone


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "outputs.npz") as f:
        return dict(f)


def test_tf1_resnet_checkpoint_reproduces_the_tpu_features(expected):
    out = _backbone("fixed")(tf.constant(expected["images"]), training=False)
    for level in (2, 3, 4, 5):
        want = expected[f"c{level}"]
        got = out[level].numpy()
        assert got.shape == want.shape
        err = np.abs(got - want).max()
        assert err <= TOLERANCE * max(1.0, np.abs(want).max()), f"C{level}: max abs error {err}"


def test_same_padding_is_a_real_difference(expected):
    """hierseg's default "same" padding shifts strided convs by a pixel: the features differ."""
    out = _backbone("same")(tf.constant(expected["images"]), training=False)
    assert np.abs(out[5].numpy() - expected["c5"]).max() > 100 * TOLERANCE


def test_checkpoint_holds_the_real_tf1_names():
    names = set(tf.train.load_checkpoint(str(FIXTURE / "model.ckpt")).get_variable_to_shape_map())
    assert {"global_step", "resnet50/conv2d/kernel", "resnet50/conv2d_52/kernel", "resnet50/dense/kernel"} <= names
    assert "resnet50/batch_normalization_52/moving_variance" in names


def test_initialize_adopts_the_tf1_architecture_and_loads_the_backbone(expected):
    """The train.init path: detect the source, adopt its choices (fixed padding, eps 1e-5), load, report."""
    from hierseg import features as F
    from hierseg.config.model import AnchorConfig, FPNConfig, ModelConfig
    from hierseg.models.mask_rcnn import MaskRCNN
    from hierseg.training.checkpoint_readers import detect_source, initialize
    from hierseg.training.checkpoint_readers.init import apply_source_architecture

    path = str(FIXTURE / "model.ckpt")
    assert detect_source(list(tf.train.load_checkpoint(path).get_variable_to_shape_map())) == "tf1_resnet"
    config = ModelConfig(
        num_classes=3,
        anchor=AnchorConfig(min_level=2, max_level=5),
        backbone=BackboneConfig(depth=50, width_multiplier=0.125, norm="frozen"),
        fpn=FPNConfig(num_filters=16),
    )
    changes = apply_source_architecture(config, "tf1_resnet")
    assert changes == ["model.backbone.conv_padding: same -> fixed", "model.backbone.norm_epsilon: 0.0001 -> 1e-05"]
    model = MaskRCNN(config, 3, 64)
    info = tf.constant([[[64, 64], [64, 64], [1.0, 1.0], [0.0, 0.0]]], tf.float32)
    model({F.IMAGE: tf.zeros([1, 64, 64, 3]), F.IMAGE_INFO: info}, training=False)
    report = initialize(model, path, "all", prefix="resnet50/")
    assert report.loaded == {"backbone": 265} and set(report.left_random) == {"fpn", "rpn", "box_head", "mask_head"}
    out = model.backbone(tf.constant(expected["images"]), training=False)
    assert np.abs(out[5].numpy() - expected["c5"]).max() <= TOLERANCE * np.abs(expected["c5"]).max()
    with pytest.raises(ValueError, match="holds only a backbone"):
        initialize(model, path, "backbone,fpn", prefix="resnet50/")
