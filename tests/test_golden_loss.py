"""Golden losses: the tiny Mask R-CNN on a fixed seed and batch gives the loss values recorded on main
(20e6510, before the factory refactor), at initialisation and after 3 plain SGD steps, so a regression
that keeps the losses finite (a swapped coordinate, a wrong normalisation, a target off by one) fails.

If a change is MEANT to change these numbers, re-record them and say why in the commit message.
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from test_model import synthetic_batch

from hierseg.config.model import ModelConfig
from hierseg.models.factory import build_model

# classification -> (losses at initialisation, losses after 3 SGD steps of lr 0.02 on the same batch)
GOLDEN = {
    "softmax": (
        {"total_loss": 2.784738, "rpn_score_loss": 0.690921, "rpn_box_loss": 0.03022, "frcnn_class_loss": 1.370498,
         "frcnn_box_loss": 7e-06, "mask_loss": 0.693093},
        {"total_loss": 1.527866, "rpn_score_loss": 0.685601, "rpn_box_loss": 0.03027, "frcnn_class_loss": 0.130717,
         "frcnn_box_loss": 1.3e-05, "mask_loss": 0.681265},
    ),
    "sigmoid": (
        {"total_loss": 1.624051, "rpn_score_loss": 0.690921, "rpn_box_loss": 0.03022, "frcnn_class_loss": 0.20981,
         "frcnn_box_loss": 7e-06, "mask_loss": 0.693093},
        {"total_loss": 1.605654, "rpn_score_loss": 0.685579, "rpn_box_loss": 0.029884, "frcnn_class_loss": 0.2068,
         "frcnn_box_loss": 6e-06, "mask_loss": 0.683385},
    ),
}  # fmt: skip


def losses_then_after_three_steps(classification: str) -> tuple[dict, dict]:
    keras.utils.set_random_seed(0)
    config = ModelConfig.tiny(3)
    config.classification = classification
    batch = synthetic_batch(0, 2, config)
    keras.utils.set_random_seed(1)
    model = build_model(config, 128)
    seen = []
    for _ in range(4):
        with tf.GradientTape() as tape:
            losses = model(batch, training=True)
        seen.append({k: float(v) for k, v in losses.items()})
        grads = tape.gradient(losses["total_loss"], model.trainable_variables)
        for g, v in zip(grads, model.trainable_variables):
            if g is not None:
                v.assign_sub(0.02 * g)
    return seen[0], seen[-1]


@pytest.mark.parametrize("classification", sorted(GOLDEN))
def test_tiny_model_reproduces_the_golden_losses(classification):
    got = losses_then_after_three_steps(classification)
    for when, expected, actual in zip(("initial", "after 3 steps"), GOLDEN[classification], got):
        assert sorted(actual) == sorted(expected), when
        for key, value in expected.items():
            assert actual[key] == pytest.approx(value, rel=2e-3, abs=2e-6), (when, key)
