"""Deterministic sharding and atomic, resumable shard writing.

Assignment: the written examples of a split (each image repeated ``copies`` times) are put in a
random order fixed by the seed, and example ``k`` of that order goes to shard ``k % S`` at position
``k // S``. The content of every shard is therefore a pure function of the plan and the seed, whoever
writes it and in whatever order.

Writing: a shard is written under a temporary name, its stats file (skips, dropped masks, example
count) is written, and only then is the shard renamed to its final name. A shard is complete when its
final file and its stats file exist; a re-run skips complete shards and rewrites the rest, so the
final output is byte-identical to an uninterrupted run. Stale temporary files are removed.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from data_prep import storage
from hierseg import atomic_write, layout
from hierseg.layout import PreparedLayer

TMP_MARK = atomic_write.TMP_MARK  # temporary names, removed by remove_stale


def shard_count(num_examples: int, configured: int, min_per_shard: int) -> int:
    """min(configured, ceil(examples / min_per_shard)), at least 1."""
    if configured < 1:
        raise ValueError(f"num_shards must be >= 1, got {configured}")
    return max(1, min(configured, math.ceil(num_examples / max(1, min_per_shard))))


shard_name = layout.shard_name


def assign_shards(copies: np.ndarray, num_shards: int, seed: int, salt: int = 0) -> pd.DataFrame:
    """Examples of a split in shard order.

    Args:
      copies: int [I] examples per image (0 = not written).
      salt: mixed into the seed so layers and splits get different orders.

    Returns:
      DataFrame sorted by (shard, position) with int columns image_index, copy, shard, position.
    """
    copies = np.asarray(copies, np.int64)
    image_index = np.repeat(np.arange(len(copies)), copies)
    # copy number of each repeat: 0..copies-1 within each image
    starts = np.repeat(np.cumsum(copies) - copies, copies)
    copy = np.arange(len(image_index)) - starts
    order = np.random.default_rng([seed, 3, salt]).permutation(len(image_index))
    k = np.empty(len(image_index), np.int64)
    k[order] = np.arange(len(image_index))  # example i is the k-th in the shuffled order
    df = pd.DataFrame({"image_index": image_index, "copy": copy, "shard": k % num_shards, "position": k // num_shards})
    return df.sort_values(["shard", "position"], kind="stable").reset_index(drop=True)


def stats_path(layer_dir: str, name: str) -> str:
    return PreparedLayer(layer_dir).shard_stats_json(name)


def is_complete(layer_dir: str, name: str, files: set[str] | None = None) -> bool:
    """Whether a shard is finished (final file present and its stats written)."""
    if files is not None and name not in files:
        return False
    return storage.exists(storage.join(layer_dir, name)) and storage.exists(stats_path(layer_dir, name))


def remove_stale(layer_dir: str) -> int:
    """Deletes temporary files left by an interrupted run; returns how many."""
    n = 0
    for name in storage.listdir(layer_dir):
        if TMP_MARK in name:
            storage.remove(storage.join(layer_dir, name))
            n += 1
    return n


def read_stats(layer_dir: str, name: str) -> dict:
    return json.loads(storage.read_bytes(stats_path(layer_dir, name)))


class ShardWriter:
    """Writes one shard: records go to a local temporary file; :meth:`commit` publishes it atomically."""

    def __init__(self, layer_dir: str, name: str):
        from data_prep.tfrecord import TFRecordWriter

        self.layer_dir = layer_dir
        self.name = name
        scratch = storage.local_scratch(layer_dir)
        self.tmp = os.path.join(scratch, f"{name}{TMP_MARK}{os.getpid()}")
        self._writer = TFRecordWriter(self.tmp)
        self.num_examples = 0
        self.num_instances = 0
        self.skips: Counter = Counter()
        self.dropped_masks: list[str] = []
        self.skipped_images: list[str] = []

    def add(self, result) -> None:
        """Adds one :class:`data_prep.pixels.ImageResult` (its record, or its skip counts)."""
        self.skips.update(result.skips)
        self.dropped_masks.extend(result.dropped_masks)
        if result.example is None:
            self.skipped_images.append(result.image_id)
        else:
            self._writer.write(result.example)
            self.num_examples += 1
            self.num_instances += result.num_instances

    def commit(self) -> dict:
        self._writer.close()
        stats = {
            "shard": self.name,
            "num_examples": self.num_examples,
            "num_instances": self.num_instances,
            "skips": dict(sorted(self.skips.items())),
            "dropped_masks": sorted(set(self.dropped_masks)),
            "skipped_images": sorted(set(self.skipped_images)),
        }
        storage.write_text(stats_path(self.layer_dir, self.name), json.dumps(stats, indent=0))
        storage.publish_file(self.tmp, storage.join(self.layer_dir, self.name))
        return stats

    def abort(self) -> None:
        self._writer.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def write_shard(layer_dir: str, name: str, results: Iterable) -> dict:
    """Writes all ``results`` (ImageResults, in shard order) as one shard; returns its stats."""
    writer = ShardWriter(layer_dir, name)
    try:
        for r in results:
            writer.add(r)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()
