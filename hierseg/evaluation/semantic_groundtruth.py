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


def _ids_and_images(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(ImageID, encoded image bytes)`` of one record, parsing only those keys (no image decoding)."""
    spec = {
        features.IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        features.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        features.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    parsed = tf.io.parse_single_example(serialized, spec)
    return ex.source_id_of(parsed), parsed[features.IMAGE_ENCODED]


def _image_ids(file_pattern: str) -> set[str]:
    """The ImageIDs of every record matching ``file_pattern``."""
    ds = tf.data.TFRecordDataset(list_files(file_pattern)).map(lambda s: _ids_and_images(s)[0])
    return {image_id.decode() for image_id in ds.as_numpy_iterator()}


def class_maps(
    file_pattern: str, config: SemanticTargetConfig, keep: set[str]
) -> Iterator[tuple[str, bytes, np.ndarray]]:
    """``(ImageID, encoded image bytes, int32 [H, W] source-frame class map)`` of the records whose ImageID is
    in ``keep``, in file order; the others are dropped before their image and masks are decoded."""
    if not keep:
        return
    keys = tf.constant(sorted(keep), tf.string)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.bool)), default_value=False
    )

    def decode(serialized, image_id, encoded):
        d = ex.decode_example(serialized)
        labels = source_class_map(d[ex.IMAGE], d[ex.MASKS], d[ex.CLASSES], d[ex.BOXES], d[ex.SEMANTIC_PNG], config)
        return image_id, encoded, labels

    ds = tf.data.TFRecordDataset(list_files(file_pattern))
    ds = ds.map(lambda s: (s, *_ids_and_images(s))).filter(lambda s, image_id, _: table.lookup(image_id))
    for image_id, encoded, labels in ds.map(decode).as_numpy_iterator():
        yield image_id.decode(), encoded, labels


def write_semantic_groundtruth(
    prepared_dir: str,
    out_dir: str,
    split: str = "validation",
    config: SemanticTargetConfig | None = None,
    show_progress: bool = True,
) -> dict[str, int]:
    """Writes the label folders and images (see the module docstring); returns the counts.

    Only the records still missing a file are decoded, so a resumed run reads the rest cheaply.

    Returns:
      ``{"images": written or already there, "only_layer0": skipped, "only_layer1": skipped}``.
    Raises:
      FileNotFoundError: naming the pattern when a layer has no ``split`` shards.
    """
    config = config or SemanticTargetConfig(enabled=True)
    patterns = [PreparedLayer.of(prepared_dir, layer).shard_pattern(split) for layer in (0, 1)]
    ids = [_image_ids(p) for p in patterns]
    both = ids[0] & ids[1]
    images_dir = os.path.join(out_dir, IMAGES_DIR)
    have_image = {os.path.splitext(n)[0] for n in os.listdir(images_dir)} if os.path.isdir(images_dir) else set()
    for layer, (pattern, layer_dir) in enumerate(zip(patterns, LAYER_DIRS)):
        todo = {i for i in both if not os.path.exists(os.path.join(out_dir, layer_dir, f"{i}.png"))}
        if layer == 0:
            todo |= both - have_image
        bar = tqdm(total=len(todo), desc=f"{layer_dir} ground truth", unit="img", disable=not show_progress)
        for image_id, encoded, labels in class_maps(pattern, config, todo):
            png = os.path.join(out_dir, layer_dir, f"{image_id}.png")
            if not os.path.exists(png):
                save_label_png(labels, png)
            if layer == 0 and image_id not in have_image:
                suffix = ".png" if encoded.startswith(PNG_MAGIC) else ".jpg"
                atomic_write.write_bytes(os.path.join(images_dir, image_id + suffix), encoded)
            bar.update()
        bar.close()
    return {"images": len(both), "only_layer0": len(ids[0] - both), "only_layer1": len(ids[1] - both)}
