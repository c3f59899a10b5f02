"""Evaluation of a semantic model (``output_kind == "semantic"``) on the validation records: mIoU.

The model runs over the eval pipeline with ``data.semantic.enabled`` (every image once, resized so its
longer side is ``data.output_size``, no augmentation); its SEMANTIC_LABELS are compared with
GT_SEMANTIC pixel by pixel in that input frame (padding and unknown pixels carry the ignore label and
are left out), accumulating one confusion matrix over the set. For PASCAL VOC at ``output_size`` 513
the frame is the original image upsampled by at most 513/500 with nearest-neighbour labels.

Outputs: ``semantic/mIoU``, ``semantic/pixel_accuracy`` and ``semantic/IoU/<class>`` (background
included), the per-class table (IoU with ground-truth and predicted pixel counts) printed to the log,
written to the metrics JSON under ``per_class`` and as TensorBoard scalars.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hierseg import features
from hierseg.config.experiment import ExperimentConfig
from hierseg.evaluation.coco_metric import write_metrics_json
from hierseg.evaluation.semantic_metric import ConfusionMatrix, iou_table
from hierseg.label_map import LabelMap
from hierseg.training.summaries import write_scalars

log = logging.getLogger(__name__)


def class_names(label_map_path: str) -> list[str]:
    """``["background", <label map names>...]``: the names of ids 0..K."""
    return ["background", *LabelMap.load(label_map_path).names]


def semantic_confusion(
    model: keras.Model, config: ExperimentConfig, *, show_progress: bool = True
) -> tuple[ConfusionMatrix, int]:
    """The confusion matrix over ``data.eval_file_pattern`` (at most ``eval.max_images``) and the image count."""
    from hierseg.input.pipeline import build_dataset

    data = dataclasses.replace(config.data, semantic=dataclasses.replace(config.data.semantic, enabled=True))
    dataset = build_dataset(data.eval_file_pattern, data, is_training=False, batch_size=config.eval.batch_size)

    @tf.function
    def predict(image: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
        out = model({features.IMAGE: image, features.IMAGE_INFO: image_info}, training=False)
        return out[features.SEMANTIC_LABELS]

    cm = ConfusionMatrix(config.model.num_classes + 1, features.SEMANTIC_IGNORE)
    limit = config.eval.max_images or None
    done = 0
    with tqdm(total=limit, unit="img", disable=not show_progress, desc="eval") as bar:
        for batch in dataset:
            labels = predict(batch[features.IMAGE], batch[features.IMAGE_INFO]).numpy()
            gt = batch[features.GT_SEMANTIC].numpy()
            n = len(gt) if limit is None else min(len(gt), limit - done)
            cm.update(gt[:n], labels[:n])
            done += n
            bar.update(n)
            if limit is not None and done >= limit:
                break
    return cm, done


def evaluate_semantic(
    model: keras.Model,
    config: ExperimentConfig,
    *,
    step: int = 0,
    checkpoint: str = "",
    output_json: str | None = None,
    summary_dir: str | None = None,
    show_progress: bool = True,
) -> dict:
    """mIoU of ``model`` on the eval set; see the module docstring. Returns the metrics dict."""
    cm, num_images = semantic_confusion(model, config, show_progress=show_progress)
    names = class_names(config.data.label_map)
    if len(names) != cm.num_classes:
        raise ValueError(f"{config.data.label_map}: {len(names) - 1} classes, the model has {cm.num_classes - 1}")
    result = cm.result()
    metrics = result.as_dict(names)
    metrics["per_class"] = [
        {
            "class": name,
            "iou": None if np.isnan(result.iou[c]) else float(result.iou[c]),
            "gt_pixels": int(result.gt_pixels[c]),
            "pred_pixels": int(result.pred_pixels[c]),
        }
        for c, name in enumerate(names)
    ]
    metrics.update(step=int(step), checkpoint=checkpoint, num_images=num_images)
    log.info("step %d: mIoU %.4f on %d images\n%s", step, result.miou, num_images, iou_table(result, names))
    if output_json:
        write_metrics_json(metrics, output_json)
    if summary_dir:
        write_scalars(summary_dir, int(step), {k: v for k, v in metrics.items() if k.startswith("semantic/")})
    return metrics
