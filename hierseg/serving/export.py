"""Export a trained checkpoint as a SavedModel (``hierseg export``).

The export directory holds the SavedModel, ``label_map.pbtxt`` (class id -> MID) and
``export_config.yaml`` (the effective experiment config). Two signatures:

``serving_default(image_bytes: tf.string [])`` -- one encoded JPEG/PNG:
    ``detection_boxes`` float32 [D, 4]: normalized (ymin, xmin, ymax, xmax) of the ORIGINAL image;
    ``detection_classes`` int32 [D]: 1..K (label map ids);
    ``detection_scores`` float32 [D], descending;
    ``detection_masks`` uint8 [D, H, W]: 0/1 at the original resolution H x W (box-level mask
    probabilities pasted into the image and thresholded at ``eval.mask_threshold``);
    ``num_detections`` int32 []: D. Outputs hold only the valid detections (D == num_detections).

``serve_images(images: float32 [B, S, S, 3], image_info: float32 [B, 4, 2])`` -- a batch already
through ``hierseg.input.preprocess.resize_and_pad`` (S = ``data.output_size``): the model's batched
outputs, padded to ``model.detection.max_detections`` = D: ``detection_boxes`` [B, D, 4] normalized
to each original image, ``detection_classes`` int32 [B, D] (0 = padding), ``detection_scores``
[B, D], ``detection_masks`` float32 [B, D, M, M] probabilities inside each box, ``num_detections``
int32 [B].
"""

from __future__ import annotations

import logging
import os
import shutil

import tensorflow as tf

from hierseg import features, layout
from hierseg.config import save as save_config
from hierseg.config.experiment import ExperimentConfig
from hierseg.input.preprocess import decode_image, resize_and_pad
from hierseg.label_map import LabelMap
from hierseg.priors import stage_shape_priors
from hierseg.serving.serving_module import ServingModule

log = logging.getLogger(__name__)

LABEL_MAP_FILE = layout.EXPORT_LABEL_MAP_NAME
CONFIG_FILE = layout.EXPORT_CONFIG_NAME


class DetectionModule(ServingModule):
    """The model plus pre/post-processing, as the two ``tf.function`` signatures of the export."""

    def __init__(self, model, output_size: int, mask_threshold: float = 0.5):
        self.mask_threshold = float(mask_threshold)
        super().__init__(model, output_size, name="hierseg_detection")

    def _serve_images(self, images: tf.Tensor, image_info: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self._run_model(images, image_info)
        served = {
            features.DET_BOXES: tf.cast(out[features.DET_BOXES], tf.float32),
            features.DET_CLASSES: tf.cast(out[features.DET_CLASSES], tf.int32),
            features.DET_SCORES: tf.cast(out[features.DET_SCORES], tf.float32),
            features.NUM_DETECTIONS: tf.cast(out[features.NUM_DETECTIONS], tf.int32),
        }
        if features.DET_MASKS in out:  # box-only models (output_kind "boxes") export no masks
            served[features.DET_MASKS] = tf.cast(out[features.DET_MASKS], tf.float32)
        return served

    def _serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        from hierseg.ops.mask_paste import paste_masks

        image = decode_image(image_bytes)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        padded, info = resize_and_pad(image, self.output_size)
        out = self._serve_images(padded[tf.newaxis], info[tf.newaxis])
        n = out[features.NUM_DETECTIONS][0]
        boxes = tf.clip_by_value(out[features.DET_BOXES][0, :n], 0.0, 1.0)
        served = {
            features.DET_BOXES: boxes,
            features.DET_CLASSES: out[features.DET_CLASSES][0, :n],
            features.DET_SCORES: out[features.DET_SCORES][0, :n],
            features.NUM_DETECTIONS: n,
        }
        if features.DET_MASKS in out:
            probs = paste_masks(out[features.DET_MASKS][0, :n], boxes, height, width)
            masks = tf.cast(probs >= self.mask_threshold, tf.uint8)
            served[features.DET_MASKS] = tf.reshape(masks, [n, height, width])
        return served


def export_saved_model(config: ExperimentConfig, checkpoint_path_or_model_dir: str, export_dir: str) -> str:
    """Writes the SavedModel of a checkpoint (prefix, or a model_dir's latest) to ``export_dir``.

    The export is written next to ``export_dir`` and renamed into place (local paths), so a reader
    never sees half an export; an existing ``export_dir`` is replaced. Returns ``export_dir``.
    """
    from hierseg.training.checkpoints import checkpoint_path, restore_model

    ckpt = checkpoint_path(checkpoint_path_or_model_dir)
    model = restore_model(config, ckpt)
    if model.output_kind == "semantic":
        from hierseg.serving.semantic_module import SemanticModule

        module = SemanticModule(model, config.data.output_size)
    else:
        module = DetectionModule(model, config.data.output_size, config.eval.mask_threshold)
    export_dir = export_dir.rstrip("/")
    local = "://" not in export_dir
    tmp = f"{export_dir}.tmp-{os.getpid()}" if local else export_dir
    if local and os.path.exists(tmp):
        shutil.rmtree(tmp)
    tf.saved_model.save(
        module, tmp, signatures={"serving_default": module.serve_bytes, "serve_images": module.serve_images}
    )
    if config.data.label_map:
        LabelMap.load(config.data.label_map).save(os.path.join(tmp, LABEL_MAP_FILE))
    else:
        log.warning("data.label_map is empty: the export has no %s", LABEL_MAP_FILE)
    save_config(
        stage_shape_priors(config, tmp, export_dir), os.path.join(tmp, CONFIG_FILE)
    )  # a ShapeMask's priors go along
    if local:
        old = f"{export_dir}.old-{os.getpid()}"
        if os.path.exists(export_dir):
            os.rename(export_dir, old)
        os.rename(tmp, export_dir)
        shutil.rmtree(old, ignore_errors=True)
    log.info("exported %s to %s", ckpt, export_dir)
    return export_dir
