"""The base of the exported modules: a model and its two ``tf.function`` signatures.

``serve_images(images float32 [B, S, S, 3], image_info float32 [B, 4, 2])`` takes a batch already through
``hierseg.input.preprocess.resize_and_pad`` (S = ``data.output_size``); ``serve_bytes(image_bytes
string [])`` takes one encoded image. Subclasses (``export.DetectionModule``,
``semantic_module.SemanticModule``) define ``_serve_images`` and ``_serve_bytes``.
"""

from __future__ import annotations

import types

import tensorflow as tf

from hierseg import features


class ServingModule(tf.Module):
    """``model`` plus the two signatures; the subclass says what they return."""

    def __init__(self, model, output_size: int, name: str):
        from hierseg.training.checkpoints import variables_by_path

        super().__init__(name=name)
        # The Keras model is kept out of TensorFlow's tracking (a plain namespace): saving it as an object
        # would try to serialize every layer's traced call (with non-string dict keys) and, as Keras 3 hides
        # sub-layers kept in lists, would miss variables anyway. Its variables are tracked by path instead.
        self._held = types.SimpleNamespace(model=model)
        self.model_variables = variables_by_path(model)
        self.output_size = int(output_size)
        s = self.output_size
        self.serve_images = tf.function(
            self._serve_images,
            input_signature=[
                tf.TensorSpec([None, s, s, 3], tf.float32, name="images"),
                tf.TensorSpec([None, 4, 2], tf.float32, name="image_info"),
            ],
        )
        self.serve_bytes = tf.function(
            self._serve_bytes, input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")]
        )

    def _run_model(self, images: tf.Tensor, image_info: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._held.model({features.IMAGE: images, features.IMAGE_INFO: image_info}, training=False)

    def _serve_images(self, images: tf.Tensor, image_info: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def _serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        raise NotImplementedError
