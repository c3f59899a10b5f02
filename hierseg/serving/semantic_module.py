"""The export of a semantic model (``output_kind == "semantic"``): the two signatures of ``hierseg export``.

``serve_images(images float32 [B, S, S, 3], image_info float32 [B, 4, 2])`` (the batched signature
``hierseg predict-semantic`` uses) -> ``semantic_labels`` int32 ``[B, S, S]`` (class ids 0..K of the
label map, 0 = background) and ``semantic_scores`` float32 ``[B, S, S]`` in the network input's frame:
crop ``[:scaled_h, :scaled_w]`` (``image_info[1]``) for the image content.

``serving_default(image_bytes string [])`` -> the same two maps at the original image size ``[H, W]``
(content cropped, nearest-neighbour resize), for one encoded image.
"""

from __future__ import annotations

import tensorflow as tf

from hierseg import features
from hierseg.input.preprocess import decode_image, resize_and_pad
from hierseg.serving.serving_module import ServingModule


class SemanticModule(ServingModule):
    """``SemanticModule(model, output_size)``: the model plus pre/post-processing (see the module docstring)."""

    def __init__(self, model, output_size: int):
        super().__init__(model, output_size, name="hierseg_semantic")

    def _serve_images(self, images: tf.Tensor, image_info: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self._run_model(images, image_info)
        return {
            features.SEMANTIC_LABELS: tf.cast(out[features.SEMANTIC_LABELS], tf.int32),
            features.SEMANTIC_SCORES: tf.cast(out[features.SEMANTIC_SCORES], tf.float32),
        }

    def _serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        image = decode_image(image_bytes)
        size = tf.shape(image)[:2]
        padded, info = resize_and_pad(image, self.output_size)
        out = self._serve_images(padded[tf.newaxis], info[tf.newaxis])
        scaled = tf.cast(tf.round(features.scaled_hw(info)), tf.int32)
        maps = tf.stack([tf.cast(out[features.SEMANTIC_LABELS][0], tf.float32), out[features.SEMANTIC_SCORES][0]], -1)
        maps = tf.image.resize(maps[: scaled[0], : scaled[1]], size, method="nearest")
        return {features.SEMANTIC_LABELS: tf.cast(maps[..., 0], tf.int32), features.SEMANTIC_SCORES: maps[..., 1]}
