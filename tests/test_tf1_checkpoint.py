"""init_backbone from a TF1 name-based ResNet checkpoint (TPU ImageNet layout), mapped by creation order.

The fake checkpoint is written name-based with a graph-mode ``tf.compat.v1.train.Saver``; its variable names
follow tensorflow/tpu ``resnet_model.py`` creation order (stem; per block: projection shortcut first, then
conv1..conv3, each conv followed by its batch norm), which this test spells out independently of the module.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hierseg.config.model import BackboneConfig
from hierseg.config.training import CheckpointInitConfig
from hierseg.models.resnet import ResNet
from hierseg.training.checkpoints import init_backbone

PREFIX = "resnet50/"
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


class _Detector(keras.Model):
    """Just what init_backbone needs: a model with a built ``backbone``."""

    def __init__(self, backbone: ResNet):
        super().__init__()
        self.backbone = backbone


def _model() -> _Detector:
    backbone = ResNet(BackboneConfig(depth=50, width_multiplier=0.125, norm="frozen"), name="backbone")
    backbone(tf.zeros([1, 32, 32, 3]))
    return _Detector(backbone)


def _suffix(i: int) -> str:
    return "" if i == 0 else f"_{i}"


def _tf1_layout(backbone: ResNet) -> list[tuple[int, object, object]]:
    """(TF1 index, our conv, our bn) as the TPU code creates them; spelled out by hand for the test."""
    layers = [(backbone.stem_conv, backbone.stem_bn)]
    for stage, num_blocks in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        for b in range(num_blocks):
            block = next(x for x in backbone.blocks if x.name == f"stage{stage}_{b}")
            if b == 0:  # every ResNet-50 stage starts with a projection block
                layers.append((block.shortcut_conv, block.shortcut_bn))
            layers.extend(zip(block.convs, block.norms))
    return [(i, conv, bn) for i, (conv, bn) in enumerate(layers)]


def _write_tf1(path: str, values: dict[str, np.ndarray]) -> None:
    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.Variable(v, name=name.replace("/", "_")) for name, v in values.items()}
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, path, write_meta_graph=False)


def _fake_checkpoint(backbone: ResNet, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Distinctive values for every TF1 variable, plus the extras a real one has (slots, global_step, dense)."""
    values = {}
    for i, conv, bn in _tf1_layout(backbone):
        values[f"{PREFIX}conv2d{_suffix(i)}/kernel"] = rng.normal(size=conv.kernel.shape).astype(np.float32) + i
        for attr in BN_VARIABLES:
            shape = getattr(bn, attr).shape
            values[f"{PREFIX}batch_normalization{_suffix(i)}/{attr}"] = (
                rng.uniform(0.5, 1.5, size=shape).astype(np.float32) + 100 * i
            )
    values[f"{PREFIX}conv2d/kernel/Momentum"] = np.zeros(backbone.stem_conv.kernel.shape, np.float32)
    values[f"{PREFIX}dense/kernel"] = rng.normal(size=(8, 10)).astype(np.float32)
    values["global_step"] = np.array(112000, np.int64)
    return values


def test_tf1_resnet_checkpoint_maps_by_creation_order(tmp_path):
    model = _model()
    backbone = model.backbone
    values = _fake_checkpoint(backbone, np.random.default_rng(0))
    path = str(tmp_path / "model.ckpt-112000")
    _write_tf1(path, values)

    before = [np.array(v) for v in backbone.variables]
    loaded = init_backbone(model, CheckpointInitConfig(path=path, prefix=PREFIX))

    layout = _tf1_layout(backbone)
    assert len(layout) == 53  # ResNet-50: stem + 16 blocks x 3 + 4 projections
    assert loaded == 5 * len(layout)
    for i, conv, bn in layout:
        np.testing.assert_array_equal(conv.kernel.numpy(), values[f"{PREFIX}conv2d{_suffix(i)}/kernel"], conv.path)
        for attr in BN_VARIABLES:
            np.testing.assert_array_equal(
                getattr(bn, attr).numpy(), values[f"{PREFIX}batch_normalization{_suffix(i)}/{attr}"], bn.path
            )
    # Spot checks of the order the TPU code uses: stage-2 block 0 is projection = conv2d_1, conv1 = conv2d_2, ...
    stage2 = backbone.blocks[0]
    np.testing.assert_array_equal(stage2.shortcut_conv.kernel.numpy(), values[f"{PREFIX}conv2d_1/kernel"])
    np.testing.assert_array_equal(stage2.convs[0].kernel.numpy(), values[f"{PREFIX}conv2d_2/kernel"])
    np.testing.assert_array_equal(stage2.norms[2].gamma.numpy(), values[f"{PREFIX}batch_normalization_4/gamma"])
    stage3 = backbone.blocks[3]  # 3 stage-2 blocks: 1 + 4 + 3 + 3 = conv2d_11 is stage 3's projection
    np.testing.assert_array_equal(stage3.shortcut_conv.kernel.numpy(), values[f"{PREFIX}conv2d_11/kernel"])
    np.testing.assert_array_equal(stage3.convs[1].kernel.numpy(), values[f"{PREFIX}conv2d_13/kernel"])
    # Every backbone variable changed (all are conv kernels or BN variables).
    changed = [not np.array_equal(b, np.array(v)) for b, v in zip(before, backbone.variables)]
    assert all(changed), [v.path for v, c in zip(backbone.variables, changed) if not c]


def test_tf1_resnet_checkpoint_wrong_shape_names_both_variables(tmp_path):
    model = _model()
    backbone = model.backbone
    values = _fake_checkpoint(backbone, np.random.default_rng(1))
    bad = f"{PREFIX}conv2d_5/kernel"  # stage 2 block 1 conv1, given 1 extra output channel
    shape = list(values[bad].shape)
    values[bad] = np.zeros(shape[:-1] + [shape[-1] + 1], np.float32)
    path = str(tmp_path / "bad.ckpt")
    _write_tf1(path, values)
    stem_before = backbone.stem_conv.kernel.numpy().copy()

    with pytest.raises(ValueError) as err:
        init_backbone(model, CheckpointInitConfig(path=path, prefix=PREFIX))
    message = str(err.value)
    assert bad in message
    assert backbone.blocks[1].convs[0].kernel.path in message
    # Checked before anything is assigned.
    np.testing.assert_array_equal(backbone.stem_conv.kernel.numpy(), stem_before)


def test_checkpoint_without_tf1_or_own_names_still_raises(tmp_path):
    model = _model()
    path = str(tmp_path / "other.ckpt")
    _write_tf1(path, {"other/dense/kernel": np.ones((2, 2), np.float32)})
    with pytest.raises(ValueError, match="no backbone variable found under prefix"):
        init_backbone(model, CheckpointInitConfig(path=path, prefix=PREFIX))


def test_tf1_resnet_checkpoint_of_another_depth_is_an_error(tmp_path):
    model = _model()
    values = _fake_checkpoint(model.backbone, np.random.default_rng(2))
    last = len(_tf1_layout(model.backbone)) - 1  # drop the last conv + bn: one layer fewer than a ResNet-50
    values = {
        k: v
        for k, v in values.items()
        if not k.startswith((f"{PREFIX}conv2d_{last}/", f"{PREFIX}batch_normalization_{last}/"))
    }
    path = str(tmp_path / "short.ckpt")
    _write_tf1(path, values)
    with pytest.raises(ValueError, match="has 52 conv2d and 52 batch_normalization layers, the backbone"):
        init_backbone(model, CheckpointInitConfig(path=path, prefix=PREFIX))
