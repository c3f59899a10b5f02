"""``build_dataset``: prepared TFRecord shards -> batches of fixed-shape feature dicts (TPU-ready).

Training element (keys from :mod:`hierseg.features`; S = output_size, N = max_instances,
M = gt_mask_size)::

    IMAGE float32 [S, S, 3]      IMAGE_INFO float32 [4, 2]     GT_BOXES float32 [N, 4]
    GT_CLASSES int32 [N]         GT_VALID bool [N]             GT_IS_CROWD bool [N]
    GT_MASKS float32 [N, M, M]   GT_MASK_VALID bool [N]        WEIGHT float32 []
    NUM_DROPPED int32 []

plus the model's own training targets, added per example by ``train_targets``
(:func:`hierseg.models.factory.build_train_targets`; RPN_SCORE_TARGETS int32 [A] and RPN_BOX_TARGETS
float32 [A, 4] for Mask R-CNN). Eval elements hold IMAGE, IMAGE_INFO, SOURCE_ID (string) and the same
GT_* keys, WEIGHT and NUM_DROPPED, no targets, and the last batch may be short (every image is evaluated).

``GT_BOXES`` are clipped to the part of the image visible in the input and input-normalized (the
frame in :mod:`hierseg.features`; :func:`hierseg.features.boxes_to_input_pixels` gives input pixels).
Without a crop (eval, or a jitter scale <= 1) that is the same as normalized to the (flipped) original image. ``GT_MASKS`` are the masks
inside those boxes; ``GT_MASK_VALID`` is False for box-only instances (an all-zero mask that the mask
loss skips; they are still boxes for the RPN and Fast R-CNN). Instances beyond ``max_instances`` (a random subset at training time) are dropped, counted in
``NUM_DROPPED`` and logged with the image's source_id.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import tensorflow as tf

from hierseg import features
from hierseg.config.data import DataConfig
from hierseg.input import example_decoder as ex
from hierseg.input.preprocess import resize_and_pad
from hierseg.input.semantic_targets import labels_to_input_frame, source_class_map
from hierseg.input.transforms import (
    clip_boxes_to_window,
    crop_masks_to_boxes,
    random_flip,
    random_scale_and_crop,
    source_to_input_boxes,
)


def list_files(file_pattern: str) -> list[str]:
    """Sorted files matching one or more comma-separated globs (local or gs://); error if none."""
    files: list[str] = []
    for pattern in [p.strip() for p in file_pattern.split(",") if p.strip()]:
        matched = tf.io.gfile.glob(pattern)
        if not matched:
            raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
        files.extend(matched)
    if not files:
        raise FileNotFoundError(f"no TFRecord file pattern given ('{file_pattern}')")
    return sorted(set(files))


def _pad(t: tf.Tensor, n: int) -> tf.Tensor:
    """Zero-pads (or keeps) the first dimension of ``t`` to ``n`` rows and fixes the static shape."""
    pad = [[0, n - tf.shape(t)[0]]] + [[0, 0]] * (t.shape.rank - 1)
    out = tf.pad(t, pad)
    out.set_shape([n, *t.shape[1:]])
    return out


class _ExampleParser:
    """Serialized tf.Example (+ an int64 element index for stateless seeds) -> one feature dict."""

    def __init__(self, data: DataConfig, is_training: bool, base_seed: int, train_targets: Callable | None):
        self.data = data
        self.is_training = is_training
        self.base_seed = base_seed
        self.train_targets = train_targets

    def __call__(self, index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        data = self.data
        size, cap = data.output_size, data.max_instances
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(self.base_seed, tf.int64), tf.cast(index, tf.int64)]), 4
        )
        d = ex.decode_example(serialized)
        image, boxes, classes, crowd, masks = d[ex.IMAGE], d[ex.BOXES], d[ex.CLASSES], d[ex.IS_CROWD], d[ex.MASKS]
        mask_valid = d[ex.MASK_VALID]

        def keep(mask, *tensors):
            return [tf.boolean_mask(t, mask) for t in tensors]

        labels = None  # GT_SEMANTIC in the source frame, from every instance (crowds included) or a PNG
        if data.semantic.enabled:
            labels = source_class_map(image, masks, classes, boxes, d[ex.SEMANTIC_PNG], data.semantic)
        if self.is_training and data.skip_crowd_during_training:
            boxes, classes, crowd, masks, mask_valid = keep(~crowd, boxes, classes, crowd, masks, mask_valid)
        if self.is_training:
            if labels is not None:  # same seed: flipped exactly when the image is
                labels = random_flip(image, boxes, labels[None], data.aug.flip_prob, seeds[0])[2][0]
            image, boxes, masks = random_flip(image, boxes, masks, data.aug.flip_prob, seeds[0])
            image, info = random_scale_and_crop(image, size, data.aug.scale_min, data.aug.scale_max, seeds[1])
        else:
            image, info = resize_and_pad(image, size)
        boxes, visible = clip_boxes_to_window(boxes, info, size, data.min_box_size)
        boxes, classes, crowd, masks, mask_valid = keep(visible, boxes, classes, crowd, masks, mask_valid)

        num = tf.shape(boxes)[0]
        num_dropped = tf.maximum(num - cap, 0)
        if self.is_training:  # over the cap, a random subset survives (a different one each epoch)
            chosen = tf.argsort(tf.random.stateless_uniform([num], seeds[2]))[:cap]
            chosen = tf.sort(chosen)  # keep the record's order among the survivors
        else:
            chosen = tf.range(tf.minimum(num, cap))
        boxes, classes, crowd, masks, mask_valid = (
            tf.gather(t, chosen) for t in (boxes, classes, crowd, masks, mask_valid)
        )
        tf.cond(
            num_dropped > 0,
            lambda: tf.print(
                "hierseg input: image",
                d[ex.SOURCE_ID],
                "has",
                num,
                "instances; dropped",
                num_dropped,
                "over max_instances =",
                cap,
                output_stream=sys.stderr,
            ),
            lambda: tf.no_op(),
        )
        crops = crop_masks_to_boxes(masks, boxes, data.gt_mask_size)  # source boxes on source masks
        boxes = source_to_input_boxes(boxes, info)
        kept = tf.shape(boxes)[0]
        weight = d[ex.WEIGHT] if data.use_example_weights else tf.constant(1.0)

        out = {
            features.IMAGE: image,
            features.IMAGE_INFO: info,
            features.GT_BOXES: _pad(boxes, cap),
            features.GT_CLASSES: _pad(classes, cap),
            features.GT_VALID: tf.range(cap) < kept,
            features.GT_IS_CROWD: _pad(tf.cast(crowd, tf.int32), cap) > 0,
            features.GT_MASKS: _pad(crops, cap),
            features.GT_MASK_VALID: _pad(tf.cast(mask_valid, tf.int32), cap) > 0,
            features.WEIGHT: tf.reshape(tf.cast(weight, tf.float32), []),
            features.NUM_DROPPED: tf.cast(num_dropped, tf.int32),
        }
        if labels is not None:
            out[features.GT_SEMANTIC] = labels_to_input_frame(labels, info, size)
        if self.is_training:
            if self.train_targets is not None:
                out = self.train_targets(dict(out, **{features.TARGETS_SEED: seeds[3]}))
                out.pop(features.TARGETS_SEED, None)
        else:
            out[features.SOURCE_ID] = d[ex.SOURCE_ID]
        return out


def build_dataset(
    file_pattern: str,
    data: DataConfig,
    *,
    is_training: bool,
    batch_size: int,
    input_context: tf.distribute.InputContext | None = None,
    seed: int | None = None,
    train_targets: Callable[[dict], dict] | None = None,
) -> tf.data.Dataset:
    """The input pipeline (see the module docstring for the element layout).

    Args:
      file_pattern: glob(s) of prepared TFRecords, comma-separated, local or gs://.
      data: input config (sizes, augmentation, RPN labelling, reading).
      is_training: training = shuffled, repeated forever, augmented, ``train_targets``, drop_remainder;
        eval = one pass in a deterministic order, no augmentation, SOURCE_ID kept, last batch may be short.
      batch_size: the GLOBAL batch size; with ``input_context`` this pipeline yields
        ``input_context.get_per_replica_batch_size(batch_size)`` (``distribute_datasets_from_function``).
      input_context: shards files (or, with fewer files than pipelines, examples) across input pipelines.
      seed: makes shuffling and augmentation reproducible (with ``data.deterministic``); None = random.
      train_targets: the model's per-example targets map
        (``hierseg.models.factory.build_train_targets(config.model, data.output_size)``), applied at
        training time with a stateless seed in TARGETS_SEED; None = no targets.

    Raises:
      FileNotFoundError: nothing matches ``file_pattern``.
    """
    if data.output_size <= 0:
        raise ValueError(f"data.output_size={data.output_size} must be positive")
    files = list_files(file_pattern)
    per_replica = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    if per_replica <= 0:
        raise ValueError(f"batch size {batch_size} gives {per_replica} images per replica")
    base_seed = seed if seed is not None else random.randrange(2**31)
    num_pipes, pipe_id = (
        (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)
    )
    base_seed += 1_000_003 * pipe_id  # different augmentation per input pipeline

    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_examples = num_pipes > 1 and len(files) < num_pipes
    if num_pipes > 1 and not shard_examples:
        ds = ds.shard(num_pipes, pipe_id)
    if is_training and not data.cache:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    cycle = max(1, min(data.cycle_length, len(files)))
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=8 << 20),
        cycle_length=cycle,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=data.deterministic or not is_training,
    )
    if shard_examples:
        ds = ds.shard(num_pipes, pipe_id)
    if data.cache:
        ds = ds.cache()
        if is_training:
            ds = ds.repeat()
    if is_training and data.shuffle_buffer > 1:
        ds = ds.shuffle(data.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.enumerate()
    parser = _ExampleParser(data, is_training, base_seed, train_targets)
    # The parser is plain TF ops (tf.cond where it branches on tensors): no AutoGraph conversion, which
    # took most of the tracing time of every pipeline built.
    parser_fn = tf.autograph.experimental.do_not_convert(parser)
    ds = ds.map(parser_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=data.deterministic or not is_training)
    ds = ds.batch(per_replica, drop_remainder=is_training)
    ds = ds.prefetch(tf.data.AUTOTUNE if data.prefetch < 0 else data.prefetch)
    options = tf.data.Options()
    options.deterministic = data.deterministic or not is_training
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options)
