"""COCO evaluation of a checkpoint on the prepared validation set (``hierseg evaluate``).

The model runs over the eval pipeline (``build_dataset(..., is_training=False)``: every image once,
resized and padded as at training time); each image's outputs become a host-side
:class:`hierseg.detections.Detections`: boxes stay normalized to the original image, box-level mask
probabilities are pasted into the original resolution (``hierseg.ops.mask_paste.paste_masks``) and
thresholded at ``eval.mask_threshold``, class ids map to MIDs through the layer's label map. Then
``hierseg.evaluation.coco_metric.evaluate_coco`` scores them against ``data.eval_json``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hierseg import features
from hierseg.config.experiment import ExperimentConfig
from hierseg.detections import Detections, write_jsonl
from hierseg.evaluation.coco_metric import evaluate_coco, write_metrics_json
from hierseg.evaluation.model_outputs import image_detections
from hierseg.label_map import LabelMap
from hierseg.layout import ModelDir
from hierseg.training.checkpoints import checkpoint_path, checkpoint_step, restore_model, restore_weights
from hierseg.training.summaries import write_scalars

log = logging.getLogger(__name__)


def to_detections(
    outputs: dict[str, np.ndarray],
    source_ids: np.ndarray,
    label_map: LabelMap,
    mask_threshold: float = 0.5,
    min_score: float = 0.0,
) -> list[Detections]:
    """A batch of model outputs (numpy) -> one :class:`Detections` per image.

    Args:
      outputs: DET_BOXES [B, D, 4] normalized to the original image, DET_CLASSES [B, D] int 1..K,
        DET_SCORES [B, D], DET_MASKS [B, D, M, M] probabilities in the box, NUM_DETECTIONS [B], and
        IMAGE_INFO [B, 4, 2] (its original_hw is the size the masks are pasted at).
      source_ids: [B] bytes ImageIDs.
    """
    out = []
    for b, sid in enumerate(source_ids):
        h, w = (int(round(float(x))) for x in features.original_hw(outputs[features.IMAGE_INFO][b]))
        image_id = sid.decode("utf-8") if isinstance(sid, bytes) else str(sid)
        out.append(
            image_detections(outputs, b, image_id, h, w, label_map, min_score=min_score, mask_threshold=mask_threshold)
        )
    return out


def predict_eval_set(
    model: keras.Model, config: ExperimentConfig, *, show_progress: bool = True
) -> Iterator[Detections]:
    """Runs ``model`` over ``data.eval_file_pattern`` (at most ``eval.max_images``) and yields detections."""
    from hierseg.input.pipeline import build_dataset

    label_map = LabelMap.load(config.data.label_map)
    dataset = build_dataset(
        config.data.eval_file_pattern,
        config.data,
        is_training=False,
        batch_size=config.eval.batch_size,
    )

    @tf.function
    def predict(image: tf.Tensor, image_info: tf.Tensor) -> dict:
        out = model({features.IMAGE: image, features.IMAGE_INFO: image_info}, training=False)
        return dict(out, **{features.IMAGE_INFO: image_info})

    limit = config.eval.max_images or None
    done = 0
    with tqdm(total=limit, unit="img", disable=not show_progress, desc="eval") as bar:
        for batch in dataset:
            outputs = {k: v.numpy() for k, v in predict(batch[features.IMAGE], batch[features.IMAGE_INFO]).items()}
            source_ids = batch[features.SOURCE_ID].numpy()
            if limit is not None:
                source_ids = source_ids[: limit - done]
            yield from to_detections(outputs, source_ids, label_map, config.eval.mask_threshold, config.eval.min_score)
            done += len(source_ids)
            bar.update(len(source_ids))
            if limit is not None and done >= limit:
                return


def _subset_json(coco_json: str, source_ids: set[str], directory: str) -> str:
    """The COCO JSON restricted to ``source_ids`` (so ``eval.max_images`` does not count the rest as misses)."""
    with tf.io.gfile.GFile(coco_json, "r") as f:
        data = json.load(f)
    images = [im for im in data["images"] if im["file_name"].rsplit(".", 1)[0] in source_ids]  # ImageID.jpg
    ids = {im["id"] for im in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    path = os.path.join(directory, "eval_subset_coco.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def evaluate(
    config: ExperimentConfig,
    checkpoint: str | None = None,
    *,
    model: keras.Model | None = None,
    output_json: str | None = None,
    summary_dir: str | None = None,
    step: int | None = None,
    predictions_jsonl: str | None = None,
    show_progress: bool = True,
) -> dict:
    """COCO box and mask metrics of a checkpoint (or of an in-memory ``model``) on the eval set.

    Args:
      config: needs ``data.eval_file_pattern``, ``data.eval_json`` and ``data.label_map``.
      checkpoint: checkpoint prefix or model_dir (latest checkpoint); ignored when ``model`` is given.
      output_json: write the metrics here (atomic JSON).
      summary_dir: write the metrics as TensorBoard scalars here at ``step``.
      predictions_jsonl: also write the detections (JSON lines of :class:`Detections`).

    Returns:
      the :func:`evaluate_coco` dict (``box/AP``, ``mask/AP``, ...) plus ``step`` and ``checkpoint``.
    """
    for key in ("eval_file_pattern", "label_map"):
        if not getattr(config.data, key):
            raise ValueError(f"data.{key} is empty (set it, or pass --data_dir)")
    ckpt = None
    if model is None:
        if checkpoint is None:
            raise ValueError("evaluate: give a checkpoint or a model")
        ckpt = checkpoint_path(checkpoint)
        model = restore_model(config, ckpt)
        if step is None:
            step = checkpoint_step(ckpt)
    if model.output_kind == "semantic":  # mIoU instead of COCO AP (hierseg.evaluation.semantic_eval)
        from hierseg.evaluation.semantic_eval import evaluate_semantic

        return evaluate_semantic(
            model,
            config,
            step=int(step or 0),
            checkpoint=ckpt or "",
            output_json=output_json,
            summary_dir=summary_dir,
            show_progress=show_progress,
        )
    if not config.data.eval_json:
        raise ValueError("data.eval_json is empty (set it, or pass --data_dir)")
    detections = list(predict_eval_set(model, config, show_progress=show_progress))
    label_map = LabelMap.load(config.data.label_map)
    with tempfile.TemporaryDirectory() as tmp:
        gt_json = config.data.eval_json
        if config.eval.max_images:
            gt_json = _subset_json(gt_json, {d.image_id for d in detections}, tmp)
        metrics = evaluate_coco(detections, gt_json, label_map)
    metrics["step"] = int(step or 0)
    metrics["checkpoint"] = ckpt or ""
    log.info(
        "step %d: box AP %.4f, mask AP %.4f on %d images",
        metrics["step"],
        metrics["box/AP"],
        metrics["mask/AP"],
        metrics["num_images"],
    )
    if output_json:
        write_metrics_json(metrics, output_json)
    if predictions_jsonl:
        write_jsonl(predictions_jsonl, detections)
    if summary_dir:
        write_scalars(summary_dir, metrics["step"], {k: v for k, v in metrics.items() if "/" in k})
    return metrics


def checkpoint_evaluator(config: ExperimentConfig, model_dir: str, *, show_progress: bool = False):
    """``(checkpoint_path, step) -> metrics`` for ``train(..., eval_fn=...)``: evaluates each new checkpoint
    with a float32 model on the host (built once), writing ``eval/metrics-<step>.json`` and summaries."""
    state: dict = {}

    def eval_fn(path: str, step: int) -> dict:
        if "model" not in state:
            state["model"] = restore_model(config, path)
        else:
            restore_weights(state["model"], path)
        return evaluate(
            config,
            model=state["model"],
            step=step,
            summary_dir=ModelDir(model_dir).eval_dir,
            output_json=ModelDir(model_dir).eval_metrics_json(step),
            show_progress=show_progress,
            predictions_jsonl=(
                ModelDir(model_dir).eval_predictions_jsonl(step) if config.eval.write_predictions else None
            ),
        )

    return eval_fn
