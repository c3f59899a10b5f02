"""One exported layer as a predictor: batches of preprocessed images in, :class:`Detections` out.

An export directory (``hierseg export``) holds a SavedModel with two signatures, ``label_map.pbtxt``
(class ids 1..K -> MIDs) and ``export_config.yaml`` (the experiment config; ``data.output_size`` is
the side ``S`` of the network input). :class:`LayerPredictor` uses the batched ``serve_images``
signature, so that both layers of a prediction run share one decoded and preprocessed image (when
their ``S`` agree) and run on whole batches::

    serve_images(images float32 [B, S, S, 3], image_info float32 [B, 4, 2]) ->
      detection_boxes [B, D, 4] normalized (ymin, xmin, ymax, xmax) of the original image,
      detection_classes [B, D] int 1..K, detection_scores [B, D], num_detections [B],
      detection_masks [B, D, M, M] float32 mask probabilities inside each box.

The box-level masks are pasted into the original image size, thresholded and run-length encoded at
once (:func:`hierseg.evaluation.model_outputs.image_detections`), so only one image's dense masks exist
at any time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from hierseg.config.params import read_yaml
from hierseg.config.training import EvalConfig
from hierseg.detections import Detections
from hierseg.evaluation.model_outputs import image_detections
from hierseg.features import original_hw
from hierseg.label_map import LabelMap
from hierseg.layout import ExportDir
from hierseg.serving.export import CONFIG_FILE as EXPORT_CONFIG_FILE
from hierseg.serving.export import LABEL_MAP_FILE

BATCH_SIGNATURE = "serve_images"


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def export_mask_threshold(config: dict, source: str) -> float:
    """``eval.mask_threshold`` of an export's config dict (``source`` names it in errors); the
    :class:`EvalConfig` default when the export does not record one."""
    value = (config.get("eval") or {}).get("mask_threshold", EvalConfig().mask_threshold)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{source}: eval.mask_threshold must be a number in [0, 1], got {value!r}")
    return float(value)


class LayerPredictor:
    """Runs one exported layer's ``serve_images`` signature and decodes its outputs.

    Args:
      export_dir: the export directory (local or gs://).
      min_score: detections scoring below this are dropped before their masks are pasted (pasting
        at full resolution is the costly part of post-processing); 0 keeps everything the model
        returns, which is already above its own ``model.detection.score_threshold``.

    The mask threshold is the export's own (``eval.mask_threshold`` of its ``export_config.yaml``,
    the one its ``serving_default`` signature and evaluation use; the EvalConfig default when absent).

    Attributes:
      label_map: the layer's classes (id i <-> ``label_map.mids[i - 1]``).
      output_size: ``S``: images fed to :meth:`predict` must be preprocessed to ``[S, S, 3]`` by
        :func:`hierseg.input.preprocess.resize_and_pad`.
      config: the export's experiment config as a plain dict.
      mask_threshold: pasted mask probabilities at or above this are foreground (from the export).
    """

    def __init__(self, export_dir: str, *, min_score: float = 0.0) -> None:
        self.export_dir = export_dir
        self.min_score = float(min_score)
        for path in ExportDir(export_dir).required_files():
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(f"{export_dir}: not an export directory ({path.rsplit('/', 1)[-1]} is missing)")
        self.label_map = LabelMap.load(_join(export_dir, LABEL_MAP_FILE))
        self.config = read_yaml(_join(export_dir, EXPORT_CONFIG_FILE))
        try:
            self.output_size = int(self.config["data"]["output_size"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{_join(export_dir, EXPORT_CONFIG_FILE)}: no data.output_size") from None
        self.mask_threshold = export_mask_threshold(self.config, _join(export_dir, EXPORT_CONFIG_FILE))
        self._model = tf.saved_model.load(export_dir)
        if BATCH_SIGNATURE not in self._model.signatures:
            raise ValueError(
                f"{export_dir}: the SavedModel has no '{BATCH_SIGNATURE}' signature "
                f"(has {sorted(self._model.signatures)})"
            )
        self._serve = self._model.signatures[BATCH_SIGNATURE]
        spec = self._serve.structured_input_signature[1]["images"]
        # A signature traced with a fixed batch needs every batch padded to that size.
        self._static_batch = spec.shape[0] if spec.shape.rank and spec.shape[0] is not None else None
        # Box-only exports (model.type retinanet) have no masks: no segmentation-track submission from them.
        self.has_masks = "detection_masks" in self._serve.structured_outputs

    @property
    def mids(self) -> tuple[str, ...]:
        return self.label_map.mids

    def run(self, images: np.ndarray, image_info: np.ndarray) -> dict[str, np.ndarray]:
        """Raw batched outputs of ``serve_images`` as numpy (keys of :mod:`hierseg.features`)."""
        images = np.asarray(images, np.float32)
        image_info = np.asarray(image_info, np.float32)
        n = images.shape[0]
        if self._static_batch and n != self._static_batch:
            if n > self._static_batch:
                raise ValueError(f"batch of {n} images exceeds the export's fixed batch {self._static_batch}")
            pad = self._static_batch - n
            images = np.concatenate([images, np.zeros([pad, *images.shape[1:]], np.float32)])
            image_info = np.concatenate([image_info, np.repeat(image_info[:1], pad, axis=0)])
        out = self._serve(images=tf.constant(images), image_info=tf.constant(image_info))
        return {k: v.numpy()[:n] for k, v in out.items()}

    def predict(self, images: np.ndarray, image_info: np.ndarray, image_ids: Sequence[str]) -> list[Detections]:
        """One batch -> one :class:`Detections` per image, masks at the original resolution.

        Args:
          images: float32 ``[B, S, S, 3]`` from ``resize_and_pad``.
          image_info: float32 ``[B, 4, 2]``; masks are pasted at its ``original_hw``.
          image_ids: B ImageIDs.
        """
        out = self.run(images, image_info)
        sizes = np.rint(original_hw(np.asarray(image_info, np.float32))).astype(int)
        return [
            self.decode_one(out, b, image_ids[b], int(h), int(w)) for b, (h, w) in enumerate(sizes[: len(image_ids)])
        ]

    def decode_one(self, out: dict[str, np.ndarray], b: int, image_id: str, height: int, width: int) -> Detections:
        """Image ``b`` of a batched output -> :class:`Detections` (empty masks dropped)."""
        return image_detections(
            out,
            b,
            image_id,
            height,
            width,
            self.label_map,
            min_score=self.min_score,
            mask_threshold=self.mask_threshold,
            drop_empty_masks=True,
            source=self.export_dir,
        )
