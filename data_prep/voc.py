"""PASCAL VOC 2012 semantic segmentation -> sharded TFRecords for DeepLab (``hierseg prepare-voc``).

Reads the published layout (``VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNGs: the palette index is the class (0..20, 255 = ignore)
    SegmentationClassAug/<id>.png       optional: the augmented set (Hariharan et al. 2011), gray PNGs
    ImageSets/Segmentation/{train,val}.txt

and writes, into OUT, ``train-*.tfrecord`` (train.txt), ``validation-*.tfrecord`` (val.txt) and, when
``SegmentationClassAug`` exists, ``train_aug-*.tfrecord``: every image with an augmented (or an
original) label that is not in val.txt, the 10,582-image ``train_aug`` set of DeepLab's recipe. Plus
``label_map.pbtxt`` with the 20 classes (ids 1..20, background 0 implicit).

Each record is the engine's tf.Example layout (:func:`data_prep.tf_example.build_example`) with no
instances, the JPEG bytes as published, and the label map as an 8-bit gray PNG of class ids under
``features.SEMANTIC_ENCODED`` (DeepLab's ``build_voc2012_data.py`` key, its palette removed as
``remove_gt_colormap.py`` does). Shards are written atomically by :mod:`data_prep.shards`, in a
deterministic order; a finished shard is kept when the command is run again (resumable).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Iterator

import numpy as np
from PIL import Image

from data_prep import shards, storage
from data_prep.pixels import ImageResult
from data_prep.tf_example import build_example
from hierseg import features as F
from hierseg.label_map import LabelMap
from hierseg.layout import PreparedLayer

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
SPLIT_FILES = {"train": "train", "validation": "val"}  # output split -> ImageSets/Segmentation/<name>.txt


class VocFormatError(ValueError):
    """A VOC file that does not follow the published layout (the message names it)."""


def read_ids(voc_dir: str, name: str) -> list[str]:
    """Image ids of ``ImageSets/Segmentation/<name>.txt`` in file order (blank lines skipped)."""
    path = os.path.join(voc_dir, "ImageSets", "Segmentation", f"{name}.txt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing (is --voc_dir the VOC2012 folder?)")
    with open(path) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if len(set(ids)) != len(ids):
        raise VocFormatError(f"{path}: an image id is listed twice")
    return ids


def read_label_png(path: str, num_classes: int = len(VOC_CLASSES)) -> np.ndarray:
    """uint8 ``[H, W]`` class ids of a VOC label PNG (palette index, or gray value for the Aug set).

    Raises VocFormatError (naming the file) for an RGB PNG or a value outside 0..num_classes and 255.
    """
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise VocFormatError(f"{path}: label PNG mode {im.mode}; expected a palette (P) or gray (L) PNG")
        labels = np.array(im)  # mode P: the palette indices themselves
    bad = (labels > num_classes) & (labels != F.SEMANTIC_IGNORE)
    if bad.any():
        raise VocFormatError(f"{path}: label value {int(labels[bad][0])} is not a class 0..{num_classes} or 255")
    return labels


def encode_labels_png(labels: np.ndarray) -> bytes:
    """uint8 ``[H, W]`` -> gray PNG bytes (values are class ids, no palette)."""
    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def label_path(voc_dir: str, image_id: str) -> str:
    """The original label when published, else the augmented one ("" when neither exists)."""
    for folder in ("SegmentationClass", "SegmentationClassAug"):
        path = os.path.join(voc_dir, folder, f"{image_id}.png")
        if os.path.exists(path):
            return path
    return ""


def voc_example(voc_dir: str, image_id: str, source_id: str) -> ImageResult:
    """One record (an :class:`ImageResult`, as the shard writer takes). Errors name the file.

    ``source_id`` is the image's decimal 1-based position in its split (the records' convention of a
    numeric image id); ``image/filename`` holds ``<VOC id>.jpg``.
    """
    image_path = os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg")
    lpath = label_path(voc_dir, image_id)
    if not os.path.exists(image_path):
        raise FileNotFoundError(f"{image_path}: image of listed id {image_id} is missing")
    if not lpath:
        raise FileNotFoundError(f"{voc_dir}/SegmentationClass/{image_id}.png: label of listed id {image_id} is missing")
    with open(image_path, "rb") as f:
        data = f.read()
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    labels = read_label_png(lpath)
    if labels.shape != (height, width):
        raise VocFormatError(f"{lpath}: label size {labels.shape[::-1]} differs from image size {(width, height)}")
    example = build_example(
        image=data,
        image_format="jpeg",
        height=height,
        width=width,
        source_id=source_id,
        filename=f"{image_id}.jpg",
        boxes=np.zeros([0, 4], np.float32),
        class_ids=[],
        mids=[],
        is_crowd=[],
        mask_pngs=[],
    )
    feature = example.features.feature
    feature[F.SEMANTIC_ENCODED].bytes_list.value.append(encode_labels_png(labels))
    feature[F.SEMANTIC_FORMAT].bytes_list.value.append(b"png")
    return ImageResult(image_id, example.SerializeToString(deterministic=True), Counter())


def split_ids(voc_dir: str) -> dict[str, list[str]]:
    """Output split -> image ids; ``train_aug`` = Aug-labelled (or original) images not in val, sorted."""
    out = {split: read_ids(voc_dir, name) for split, name in SPLIT_FILES.items()}
    aug_dir = os.path.join(voc_dir, "SegmentationClassAug")
    if os.path.isdir(aug_dir):
        val = set(out["validation"])
        labelled = {n[:-4] for n in os.listdir(aug_dir) if n.endswith(".png")} | set(out["train"])
        out["train_aug"] = sorted(labelled - val)
    return out


def _chunks(ids: list[str], num_shards: int) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    numbered = list(enumerate(ids, start=1))
    for k in range(num_shards):
        yield k, numbered[k::num_shards]


def prepare_voc(voc_dir: str, out_dir: str, *, images_per_shard: int = 1000, show_progress: bool = True) -> dict:
    """Writes the TFRecords and ``label_map.pbtxt`` (see the module docstring); returns images per split."""
    from tqdm import tqdm

    storage.makedirs(out_dir)
    shards.remove_stale(out_dir)
    counts = {}
    for split, ids in split_ids(voc_dir).items():
        num_shards = shards.shard_count(len(ids), 10**6, images_per_shard)
        for k, chunk in tqdm(list(_chunks(ids, num_shards)), desc=split, unit="shard", disable=not show_progress):
            name = shards.shard_name(split, k, num_shards)
            if not shards.is_complete(out_dir, name):
                shards.write_shard(out_dir, name, (voc_example(voc_dir, i, str(n)) for n, i in chunk))
        counts[split] = len(ids)
    LabelMap.from_classes([f"voc/{c}" for c in VOC_CLASSES], VOC_CLASSES).save(PreparedLayer(out_dir).label_map)
    return counts
