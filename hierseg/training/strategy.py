"""tf.distribute strategies by name: Cloud TPU, local GPUs, several workers, or the CPU.

Create the strategy FIRST in a program (before any other TensorFlow op): TPU initialisation and
MultiWorkerMirroredStrategy's collective setup both require a fresh runtime.
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

STRATEGIES = ("tpu", "mirrored", "multi_worker", "cpu")
log = logging.getLogger(__name__)


def tpu_strategy(tpu: str | None) -> tf.distribute.TPUStrategy:
    """Connects to a Cloud TPU (``tpu`` = its name, a grpc:// address, or None/"local" for a TPU VM)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="" if tpu in (None, "local") else tpu)
    if tpu not in (None, "", "local"):
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """``tpu`` | ``mirrored`` (all local GPUs, else the CPU) | ``multi_worker`` (reads TF_CONFIG) | ``cpu``."""
    if name == "tpu":
        strategy = tpu_strategy(tpu)
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multi_worker needs the TF_CONFIG environment variable "
                '({"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker", "index": i}})'
            )
        json.loads(os.environ["TF_CONFIG"])  # a malformed TF_CONFIG fails here with a clear JSON error
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "cpu":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    else:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    log.info("strategy %s: %d replica(s)", name, strategy.num_replicas_in_sync)
    return strategy


def effective_precision(precision: str, on_tpu: bool) -> str:
    """``train.precision`` on a strategy: "auto" is bfloat16 on TPU (as the seed) and float32 elsewhere."""
    if precision != "auto":
        return precision
    return "bfloat16" if on_tpu else "float32"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one task that writes checkpoints, summaries and the config (worker 0 / chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


def task_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    return int(resolver.task_id or 0)
