"""SGD with momentum that applies gradients already all-reduced by the training loop.

Keras 3 optimizers all-reduce inside ``apply_gradients``, which leaves no place for clipping by the
GLOBAL norm of the summed gradients. This one does only the update, as TF1's MomentumOptimizer (the
seed's): ``accum = momentum * accum + grad; var -= lr * accum``. Its slots are tracked, so a
``tf.train.Checkpoint(optimizer=...)`` saves and restores them.
"""

from __future__ import annotations

import re
import types

import keras
import tensorflow as tf


def _tf_variable(v):
    """keras.Variable -> the tf.Variable (mirrored under a strategy) that holds it."""
    return v.value if isinstance(v, keras.Variable) else v


class MomentumSGD(tf.Module):
    """Momentum SGD over a fixed list of variables. Create it under ``strategy.scope()``."""

    def __init__(self, variables: list, momentum: float = 0.9, name: str = "momentum_sgd"):
        super().__init__(name=name)
        self.momentum = float(momentum)
        # Held outside TensorFlow's tracking (a plain namespace) so a checkpoint does not store the
        # model's variables a second time under the optimizer.
        self._state = types.SimpleNamespace(variables=[_tf_variable(v) for v in variables])
        strategy = tf.distribute.get_strategy()
        self.accumulators = []
        for v in self._vars:
            with strategy.extended.colocate_vars_with(v):
                self.accumulators.append(
                    tf.Variable(
                        tf.zeros(v.shape, v.dtype),
                        trainable=False,
                        name=v.name.split(":")[0].replace("/", "_") + "_momentum",
                    )
                )

    @property
    def _vars(self) -> list:
        return self._state.variables

    def apply(self, grads: list[tf.Tensor], learning_rate: tf.Tensor) -> None:
        """Applies ``grads`` (same order as the variables; identical on every replica) in replica context."""
        if len(grads) != len(self._vars):
            raise ValueError(f"{len(grads)} gradients for {len(self._vars)} variables")
        ctx = tf.distribute.get_replica_context()
        if ctx is None:  # cross-replica context (e.g. called directly under the default strategy)
            self._update(tf.distribute.get_strategy(), grads, learning_rate)
        else:
            ctx.merge_call(self._update, args=(grads, learning_rate))

    def _update(self, distribution, grads, learning_rate) -> None:
        momentum = self.momentum

        def step(var, grad, accum, lr):
            lr = tf.cast(lr, var.dtype)
            new_accum = accum.assign(momentum * accum + tf.cast(grad, var.dtype), read_value=True)
            return var.assign_sub(lr * new_accum)

        for var, grad, accum in zip(self._vars, grads, self.accumulators):
            distribution.extended.update(var, step, args=(grad, accum, learning_rate), group=False)


# ------------------------------------------------------------------------- what it updates
# Variable paths of the backbone stages that model.backbone.freeze_at keeps fixed (index = freeze_at).
FROZEN_STAGES = ("", r"backbone/stem_", r"backbone/(stem_|stage2_)")


def resolve_freeze_at(config):
    """``model.backbone.freeze_at = -1`` (auto) -> 2 (stem + res2, Detectron) with a pretrained start, else 0."""
    from hierseg.config import merge

    backbone = config.model.backbone
    if backbone.freeze_at >= 0:
        return config
    stages = 2 if config.train.init.path else 0
    return merge(config, {"model": {"backbone": {"freeze_at": stages}}})


def trainable_variables(model: keras.Model, frozen_regex: str, freeze_at: int = 0) -> list:
    """The variables the optimizer updates: trainable ones not matching ``train.frozen_variables`` nor in
    the backbone stages ``freeze_at`` keeps fixed (``FROZEN_STAGES``)."""
    variables = list(model.trainable_variables)
    for regex in (frozen_regex, FROZEN_STAGES[min(max(freeze_at, 0), 2)]):
        if regex:
            pattern = re.compile(regex)
            variables = [v for v in variables if not pattern.search(v.path)]
    if not variables:
        raise ValueError(f"train.frozen_variables={frozen_regex!r} freezes every variable")
    return variables


def weight_decay_loss(variables: list, weight_decay: float) -> tf.Tensor:
    """``weight_decay * sum(||w||^2) / 2`` over kernels: variables of rank >= 2 (no BN gammas/betas, biases)."""
    kernels = [v for v in variables if len(v.shape) >= 2]
    if weight_decay <= 0 or not kernels:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
