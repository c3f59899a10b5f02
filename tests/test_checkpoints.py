"""hierseg.training.checkpoints: step parsing, restore, and whole-model starts across class counts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hierseg.config.model import ModelConfig
from hierseg.config.training import CheckpointInitConfig
from hierseg.models.factory import build_model
from hierseg.training import checkpoints


def test_checkpoint_step_and_paths(tmp_path):
    assert checkpoints.checkpoint_step("/m/ckpt-1500") == 1500
    assert checkpoints.checkpoint_step("gs://b/run/ckpt-7") == 7
    assert checkpoints.checkpoint_step("/m/model.ckpt") is None
    assert checkpoints.latest_step(str(tmp_path)) is None
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        checkpoints.checkpoint_path(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ckpt-3.index"):
        checkpoints.checkpoint_path(str(tmp_path / "ckpt-3"))


def test_whole_model_start_from_a_detector_of_another_class_count(tmp_path):
    source = build_model(ModelConfig.tiny(3), 128)
    prefix = checkpoints.make_checkpoint(source).save(str(tmp_path / "ckpt"))
    assert checkpoints.checkpoint_path(str(tmp_path)) == prefix and checkpoints.latest_step(str(tmp_path)) == 1

    same = build_model(ModelConfig.tiny(3), 128)
    checkpoints.restore_weights(same, prefix)
    for a, b in zip(source.variables, same.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    other = build_model(ModelConfig.tiny(5), 128)
    before = {k: v.numpy().copy() for k, v in checkpoints.variables_by_path(other).items()}
    n = checkpoints.init_from_pretrained(other, CheckpointInitConfig(path=str(tmp_path), modules="all"))
    mine, theirs = checkpoints.variables_by_path(other), checkpoints.variables_by_path(source)
    differ = [k for k in mine if mine[k].shape != theirs[k].shape]
    assert differ and all(("class_logits" in k or "box_deltas" in k or "mask_logits" in k) for k in differ)
    assert n == len(mine) - len(differ)
    for k, v in mine.items():
        expected = before[k] if k in differ else theirs[k].numpy()
        np.testing.assert_array_equal(v.numpy(), expected, err_msg=k)
    unrelated = tf.train.Checkpoint(x=tf.Variable([1.0])).write(str(tmp_path / "other" / "x"))
    with pytest.raises(ValueError, match="no variable of the model"):
        checkpoints.init_whole_model(other, unrelated)
