"""A model's training step compiled with XLA, for the tests of each model type."""

from __future__ import annotations

import tensorflow as tf

from hierseg import features as F


def xla_train_step(model, batch: dict) -> tuple[dict, list]:
    """Builds ``model`` on ``batch`` (inference call), then runs one XLA-compiled forward + backward.

    Returns the loss dict and the gradients of ``total_loss`` w.r.t. ``model.trainable_variables``.
    """
    model({F.IMAGE: batch[F.IMAGE], F.IMAGE_INFO: batch[F.IMAGE_INFO]}, training=False)

    @tf.function(jit_compile=True)
    def step(batch):
        with tf.GradientTape() as tape:
            losses = model(batch, training=True)
        return losses, tape.gradient(losses["total_loss"], model.trainable_variables)

    return step(batch)
