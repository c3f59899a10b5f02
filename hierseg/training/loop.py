"""The training loop: any model of the factory under any tf.distribute strategy (Cloud TPU, GPUs, workers, CPU).

One call of :func:`train` does, in order:

1. write the effective config to ``model_dir/params.yaml`` (chief only);
2. build the input with ``strategy.distribute_datasets_from_function`` (per-replica batch =
   ``global_batch_size / num_replicas``, with the model's ``build_train_targets`` map), and under
   ``strategy.scope()`` the model (``hierseg.models.factory.build_model``), the momentum
   optimizer and a step counter;
3. restore the latest checkpoint of ``model_dir`` (a preempted job just restarts) or else initialise
   the model (or some modules) from ``train.init`` (:mod:`hierseg.training.checkpoint_readers`);
4. repeat: one ``tf.function`` call runs ``steps_per_loop`` steps of ``strategy.run(replica_step)``;
   each replica computes its loss (+ L2 weight decay) scaled by ``1 / num_replicas``, its gradients
   (XLA-compiled when ``train.jit_compile``), the gradients are all-reduced (SUM = the mean over the
   global batch), clipped by global norm and applied; then log, summaries, and checkpoints every
   ``checkpoint_every`` steps and at the end.

With ``eval_fn`` (``--mode train_and_eval``) every new checkpoint is evaluated on the chief.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hierseg import features, layout
from hierseg.config import save as save_config
from hierseg.config.experiment import ExperimentConfig
from hierseg.config.training import TrainConfig
from hierseg.layout import ModelDir
from hierseg.models.factory import build_model, build_train_targets
from hierseg.priors import stage_shape_priors
from hierseg.training.checkpoint_readers.init import with_source_architecture
from hierseg.training.checkpoints import CHECKPOINT_NAME, init_from_pretrained, make_checkpoint, variables_fingerprint
from hierseg.training.optimizer import MomentumSGD, resolve_freeze_at, trainable_variables, weight_decay_loss
from hierseg.training.schedule import WarmupStepDecay
from hierseg.training.strategy import effective_precision, is_chief, task_id
from hierseg.training.summaries import write_scalars

log = logging.getLogger(__name__)

CONFIG_FILE = layout.PARAMS_NAME  # the effective config, written to model_dir


# ------------------------------------------------------------------------------------- one step
def make_gradient_fn(model: keras.Model, variables: list, train: TrainConfig, num_replicas: int) -> Callable:
    """``features -> (losses, grads)`` of ONE replica; an XLA-compiled tf.function when ``train.jit_compile``.

    ``losses`` are the model's float32 scalars plus ``weight_decay_loss`` and ``loss`` (their sum, the
    optimised objective), unscaled. ``grads`` are those of ``loss / num_replicas`` w.r.t. ``variables``,
    so that summing over replicas gives the gradient of the mean loss over the global batch.
    """

    def gradient_fn(batch: dict) -> tuple[dict, list]:
        with tf.GradientTape() as tape:
            losses = {k: tf.cast(v, tf.float32) for k, v in model(batch, training=True).items()}
            losses["weight_decay_loss"] = weight_decay_loss(variables, train.weight_decay)
            losses["loss"] = losses["total_loss"] + losses["weight_decay_loss"]
            scaled = losses["loss"] / float(num_replicas)
        grads = tape.gradient(scaled, variables)
        grads = [
            tf.zeros(v.shape, tf.float32) if g is None else tf.cast(g, tf.float32) for g, v in zip(grads, variables)
        ]
        return losses, grads

    # Without XLA the function is left to be traced into the caller's graph (the train loop): a nested
    # tf.function inside strategy.run cannot hold a cross-replica sync point (sync batch norm).
    return tf.function(gradient_fn, jit_compile=True) if train.jit_compile else gradient_fn


def all_reduce_gradients(grads: list, clip_norm: float) -> tuple[list, tf.Tensor]:
    """Sums per-replica gradients over all replicas (replica context) and clips them by global norm."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    if clip_norm > 0:
        grads, norm = tf.clip_by_global_norm(grads, clip_norm)
    else:
        norm = tf.linalg.global_norm(grads)
    return list(grads), norm


def _strip_host_only(batch: dict) -> dict:
    """Drops keys a TPU cannot take (strings) and those the model does not read at training time."""
    return {k: v for k, v in batch.items() if k not in (features.SOURCE_ID,)}


def make_train_loop(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: MomentumSGD,
    variables: list,
    schedule: WarmupStepDecay,
    step: tf.Variable,
    train: TrainConfig,
) -> Callable:
    """``(iterator, num_steps) -> metrics``: ``num_steps`` optimizer steps in one ``tf.function`` call.

    metrics: the mean over those steps of every loss (itself the mean over replicas), ``grad_norm``,
    ``learning_rate`` of the last step, and the sum of ``instances_dropped`` by the input pipeline.
    """
    gradient_fn = make_gradient_fn(model, variables, train, strategy.num_replicas_in_sync)

    def replica_step(batch: dict) -> dict:
        batch = _strip_host_only(batch)
        losses, grads = gradient_fn(batch)
        grads, norm = all_reduce_gradients(grads, train.gradient_clip_norm)
        lr = schedule(step)
        optimizer.apply(grads, lr)
        out = dict(losses, grad_norm=norm, learning_rate=lr)
        if features.NUM_DROPPED in batch:
            out["instances_dropped"] = tf.cast(tf.reduce_sum(batch[features.NUM_DROPPED]), tf.float32)
        return out

    def one_step(iterator) -> dict:
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        step.assign_add(1)
        out = {}
        for k, v in per_replica.items():
            op = tf.distribute.ReduceOp.SUM if k == "instances_dropped" else tf.distribute.ReduceOp.MEAN
            out[k] = strategy.reduce(op, v, axis=None)
        return out

    @tf.function
    def train_loop(iterator, num_steps: tf.Tensor) -> dict:
        totals = one_step(iterator)  # the first step outside the loop fixes the structure of the sums
        for _ in tf.range(num_steps - 1):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            metrics = one_step(iterator)
            totals = {k: metrics[k] if k == "learning_rate" else totals[k] + metrics[k] for k in totals}
        n = tf.cast(num_steps, tf.float32)
        return {k: (v if k in ("instances_dropped", "learning_rate") else v / n) for k, v in totals.items()}

    return train_loop


# ------------------------------------------------------------------------------------ the loop
def _build(config: ExperimentConfig, strategy: tf.distribute.Strategy) -> tuple:
    """Under ``strategy.scope()``: the factory's model, the variables it trains, the optimizer, the step."""
    # auto freeze_at resolved here, not in the saved config: a resumed run resolves it the same way.
    config = resolve_freeze_at(config)
    log.info("backbone stages frozen: %d (model.backbone.freeze_at)", config.model.backbone.freeze_at)
    train_cfg = config.train
    previous_policy = keras.mixed_precision.global_policy()
    precision = effective_precision(train_cfg.precision, isinstance(strategy, tf.distribute.TPUStrategy))
    log.info("precision %s (train.precision=%s on %s)", precision, train_cfg.precision, type(strategy).__name__)
    if precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with strategy.scope():
            model = build_model(config.model, config.data.output_size)
            variables = trainable_variables(model, train_cfg.frozen_variables, config.model.backbone.freeze_at)
            optimizer = MomentumSGD(variables, momentum=train_cfg.momentum)
            step = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return model, variables, optimizer, step


def _restore_or_start(
    checkpoint: tf.train.Checkpoint, model: keras.Model, step: tf.Variable, model_dir: str, train_cfg
) -> str | None:
    """Restores ``model_dir``'s latest checkpoint (a restarted job resumes) or starts from ``train.init``."""
    restored = tf.train.latest_checkpoint(model_dir)
    if restored:
        checkpoint.restore(restored).assert_existing_objects_matched()
        log.info("restored checkpoint %s at step %d", restored, int(step.numpy()))
    elif train_cfg.init.path:
        init_from_pretrained(model, train_cfg.init)
    return restored


def _distributed_input(config: ExperimentConfig, strategy: tf.distribute.Strategy, start_step: int):
    """The training pipeline with the model's own targets, one input pipeline per worker."""
    from hierseg.input.pipeline import build_dataset

    train_targets = build_train_targets(config.model, config.data.output_size)

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return build_dataset(
            config.data.train_file_pattern,
            config.data,
            is_training=True,
            batch_size=config.train.global_batch_size,
            input_context=ctx,
            seed=config.train.seed + start_step,  # a resumed run does not replay the first examples
            train_targets=train_targets,  # the model's own targets (RPN targets for Mask R-CNN)
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def _check_and_log(metrics: dict, current: int, n: int, train_cfg: TrainConfig, chief: bool) -> None:
    """Stops on a diverged loss; the chief logs the loop's loss, learning rate, throughput and dropped instances."""
    if not np.isfinite(metrics["loss"]):
        raise FloatingPointError(
            f"loss is {metrics['loss']} at step {current}: diverged "
            f"(lower train.learning_rate.init_lr or set train.gradient_clip_norm)"
        )
    if not chief:
        return
    log.info(
        "step %d/%d loss %.4f lr %.5g %.2f images/s",
        current,
        train_cfg.total_steps,
        metrics["loss"],
        metrics["learning_rate"],
        metrics["images_per_second"],
    )
    if metrics.get("instances_dropped", 0) > 0:
        log.info("%d instances over data.max_instances dropped in the last %d steps", metrics["instances_dropped"], n)


def _check_setup(config: ExperimentConfig, strategy: tf.distribute.Strategy) -> None:
    """Stops before any work on an experiment this strategy cannot train."""
    train_cfg = config.train
    if not config.data.train_file_pattern:
        raise ValueError("data.train_file_pattern is empty (set it, or pass --data_dir)")
    replicas = strategy.num_replicas_in_sync
    if train_cfg.global_batch_size % replicas:
        raise ValueError(
            f"train.global_batch_size={train_cfg.global_batch_size} is not divisible by the {replicas} replicas"
        )


class _CheckpointSaver:
    """Saves numbered checkpoints into ``model_dir``. Every worker saves (the save is collective), but
    only the chief's copy lands in ``model_dir``: the others write to a temporary folder of their own,
    removed after each save and at the end."""

    def __init__(self, checkpoint: tf.train.Checkpoint, model_dir: str, strategy, train_cfg: TrainConfig) -> None:
        self.model_dir, self.chief = model_dir, is_chief(strategy)
        self.save_dir = model_dir if self.chief else os.path.join(model_dir, f".worker{task_id(strategy)}_tmp")
        self.manager = tf.train.CheckpointManager(
            checkpoint, self.save_dir, max_to_keep=train_cfg.keep_checkpoints, checkpoint_name=CHECKPOINT_NAME
        )

    def save(self, at: int) -> str:
        """Saves the step-``at`` checkpoint; returns its path in ``model_dir``."""
        path = self.manager.save(checkpoint_number=at)
        if not self.chief:  # this worker's copy was only needed for the collective save
            tf.io.gfile.rmtree(self.save_dir)
            return os.path.join(self.model_dir, f"{CHECKPOINT_NAME}-{at}")
        log.info("saved checkpoint %s", path)
        return path

    def remove_worker_copy(self) -> None:
        if not self.chief and tf.io.gfile.exists(self.save_dir):
            shutil.rmtree(self.save_dir, ignore_errors=True)


def _run_loops(
    train_loop: Callable,
    iterator,
    step: tf.Variable,
    saver: _CheckpointSaver,
    train_cfg: TrainConfig,
    *,
    chief: bool,
    show_progress: bool,
    summaries_dir: str,
    eval_fn: Callable[[str, int], dict] | None,
    saved_path: str | None,
) -> tuple[int, dict, str | None]:
    """Calls ``train_loop`` until ``train.total_steps``: each call runs up to ``steps_per_loop`` steps and
    stops at the next checkpoint; then logs, writes summaries, saves and evaluates when due. Returns
    ``(step reached, the last loop's metrics, the last checkpoint path)``."""
    start_step = current = last_summary = int(step.numpy())
    writer = tf.summary.create_file_writer(summaries_dir) if chief else tf.summary.create_noop_writer()
    bar = tqdm(
        total=train_cfg.total_steps,
        initial=start_step,
        disable=not (show_progress and chief),
        unit="step",
        dynamic_ncols=True,
    )
    metrics: dict = {}
    try:
        while current < train_cfg.total_steps:
            next_ckpt = (current // train_cfg.checkpoint_every + 1) * train_cfg.checkpoint_every
            n = min(train_cfg.steps_per_loop, train_cfg.total_steps - current, next_ckpt - current)
            t0 = time.perf_counter()
            metrics = {k: float(v) for k, v in train_loop(iterator, tf.constant(n, tf.int32)).items()}
            metrics["images_per_second"] = n * train_cfg.global_batch_size / max(time.perf_counter() - t0, 1e-9)
            current = int(step.numpy())
            _check_and_log(metrics, current, n, train_cfg, chief)
            bar.update(n)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", img_s=f"{metrics['images_per_second']:.1f}")
            if current - last_summary >= train_cfg.summary_every or current >= train_cfg.total_steps:
                last_summary = current
                write_scalars(writer, current, metrics)
            if current % train_cfg.checkpoint_every == 0 or current >= train_cfg.total_steps:
                saved_path = saver.save(current)
                if eval_fn is not None and chief:
                    eval_fn(saved_path, current)
    finally:
        bar.close()
        writer.close()
    return current, metrics, saved_path


def train(
    config: ExperimentConfig,
    model_dir: str,
    strategy: tf.distribute.Strategy,
    *,
    show_progress: bool = True,
    eval_fn: Callable[[str, int], dict] | None = None,
) -> dict:
    """Trains ``config`` into ``model_dir`` until ``train.total_steps``; resumes from its latest checkpoint.

    Args:
      config: the experiment (``data.train_file_pattern`` must be set; ``model.num_classes`` resolved).
      model_dir: checkpoints, ``params.yaml`` and TensorBoard summaries (``train/``); local or gs://.
      strategy: from :func:`hierseg.training.strategy.make_strategy`.
      show_progress: a tqdm bar on the chief (log lines are written either way).
      eval_fn: ``(checkpoint_path, step) -> metrics`` run on the chief after every checkpoint.

    Returns:
      ``{"start_step", "step", "checkpoint", "metrics" (last loop's), "images_per_second",
      "variables_fingerprint"}``.
    """
    config = with_source_architecture(config)
    train_cfg = config.train
    _check_setup(config, strategy)
    chief = is_chief(strategy)
    tf.io.gfile.makedirs(model_dir)
    if chief:
        save_config(stage_shape_priors(config, model_dir), os.path.join(model_dir, CONFIG_FILE))  # + ShapeMask priors
    keras.utils.set_random_seed(train_cfg.seed)
    model, variables, optimizer, step = _build(config, strategy)
    checkpoint = make_checkpoint(model, optimizer=optimizer, step=step)
    saver = _CheckpointSaver(checkpoint, model_dir, strategy, train_cfg)
    saved_path = _restore_or_start(checkpoint, model, step, model_dir, train_cfg)
    start_step = int(step.numpy())
    log.info(
        "training from step %d to %d: %d replica(s), global batch %d",
        start_step,
        train_cfg.total_steps,
        strategy.num_replicas_in_sync,
        train_cfg.global_batch_size,
    )
    iterator = iter(_distributed_input(config, strategy, start_step))
    schedule = WarmupStepDecay.from_config_section(train_cfg.learning_rate)
    train_loop = make_train_loop(strategy, model, optimizer, variables, schedule, step, train_cfg)
    current, metrics, saved_path = _run_loops(
        train_loop,
        iterator,
        step,
        saver,
        train_cfg,
        chief=chief,
        show_progress=show_progress,
        summaries_dir=ModelDir(model_dir).train_summaries,
        eval_fn=eval_fn,
        saved_path=saved_path,
    )
    saver.remove_worker_copy()
    return {
        "start_step": start_step,
        "step": current,
        "checkpoint": saved_path,
        "metrics": metrics,
        "images_per_second": metrics.get("images_per_second", 0.0),
        "variables_fingerprint": variables_fingerprint(model.trainable_variables),
    }
