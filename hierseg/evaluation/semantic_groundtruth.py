"""Ground-truth label folders for ``hierseg predict-semantic --groundtruth_layer0/1`` from two prepared layers.

``write_semantic_groundtruth(prepared_dir, out_dir, split)`` reads the ``split`` shards of
``prepared_dir/layer0`` and ``prepared_dir/layer1`` and writes, for every image present in both layers:

* ``out_dir/layer0/<ImageID>.png`` and ``out_dir/layer1/<ImageID>.png``: each layer's class map at the
  original image size, class ids of that layer's label map (0 = background), ``features.SEMANTIC_IGNORE``
  (255) where the class is unknown; exactly the map a DeepLab model trains on
  (:func:`hierseg.input.semantic_targets.source_class_map`: masks painted in record order, mask-less boxes
  and gray-filled regions ignored);
* ``out_dir/images/<ImageID>.jpg`` (``.png`` for PNG records): the record's encoded image bytes as stored,
  the ``--images`` of predict-semantic.

Images in only one layer are skipped and counted: the other layer has no ground truth for them (Layer1
keeps only images with its classes), so a fused label path could not be scored. Every file is written
atomically and existing ones are kept, so running again resumes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hierseg import atomic_write, features
from hierseg.config.deeplab import SemanticTargetConfig
from hierseg.input import example_decoder as ex
from hierseg.input.pipeline import list_files
from hierseg.input.semantic_targets import source_class_map
from hierseg.layout import PreparedLayer
from hierseg.serving.image_io import save_label_png

LAYER_DIRS = ("layer0", "layer1")
IMAGES_DIR = "images"
PNG_MAGIC = b"\x89PNG"


def _image_ids(file_pattern: str) -> set[str]:
    """The ImageIDs (``SOURCE_ID``) of every record matching ``file_pattern``, without decoding images."""
    spec = {
        features.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        features.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    ds = tf.data.TFRecordDataset(list_files(file_pattern))
    ds = ds.map(lambda s: ex.source_id_of(tf.io.parse_single_example(s, spec)))
    ids = {image_id.decode() for image_id in ds.as_numpy_iterator()}
    return ids


def class_maps(file_pattern: str, config: SemanticTargetConfig) -> Iterator[tuple[str, bytes, np.ndarray]]:
    """``(ImageID, encoded image bytes, int32 [H, W] source-frame class map)`` per record, in file order."""

    def decode(serialized):
        d = ex.decode_example(serialized)
        raw = tf.io.parse_single_example(serialized, {features.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)})
        labels = source_class_map(d[ex.IMAGE], d[ex.MASKS], d[ex.CLASSES], d[ex.BOXES], d[ex.SEMANTIC_PNG], config)
        return d[ex.SOURCE_ID], raw[features.IMAGE_ENCODED], labels

    ds = tf.data.TFRecordDataset(list_files(file_pattern)).map(decode)
    for image_id, encoded, labels in ds.as_numpy_iterator():
        yield image_id.decode(), encoded, labels


def _write_bytes(data: bytes, path: str) -> None:
    with atomic_write.atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_semantic_groundtruth(
    prepared_dir: str,
    out_dir: str,
    split: str = "validation",
    config: SemanticTargetConfig | None = None,
    show_progress: bool = True,
) -> dict[str, int]:
    """Writes the label folders and images (see the module docstring); returns the counts.

    Returns:
      ``{"images": written or already there, "only_layer0": skipped, "only_layer1": skipped}``.
    Raises:
      FileNotFoundError: naming the pattern when a layer has no ``split`` shards.
    """
    config = config or SemanticTargetConfig(enabled=True)
    patterns = [PreparedLayer.of(prepared_dir, layer).shard_pattern(split) for layer in (0, 1)]
    ids = [_image_ids(p) for p in patterns]
    both = ids[0] & ids[1]
    for layer, (pattern, layer_dir) in enumerate(zip(patterns, LAYER_DIRS)):
        bar = tqdm(total=len(both), desc=f"{layer_dir} ground truth", unit="img", disable=not show_progress)
        for image_id, encoded, labels in class_maps(pattern, config):
            if image_id not in both:
                continue
            png = os.path.join(out_dir, layer_dir, f"{image_id}.png")
            if not os.path.exists(png):
                save_label_png(labels, png)
            image = os.path.join(out_dir, IMAGES_DIR, image_id + (".png" if encoded.startswith(PNG_MAGIC) else ".jpg"))
            if layer == 0 and not os.path.exists(image):
                _write_bytes(encoded, image)
            bar.update()
        bar.close()
    return {"images": len(both), "only_layer0": len(ids[0] - both), "only_layer1": len(ids[1] - both)}
