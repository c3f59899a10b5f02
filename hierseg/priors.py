"""ShapeMask shape priors (``hierseg priors``): per-class k-means of the training masks, and their .npy file.

Every training instance's mask is cropped to its box and resized to ``S x S`` (bilinear, values in
[0, 1]: :func:`hierseg.input.transforms.crop_masks_to_boxes`, the pipeline's own crop), then for each
class scikit-learn's ``KMeans`` clusters its masks into K centroids, ordered by cluster size (largest
first). A class with fewer distinct masks than K gets them repeated cyclically (by first appearance);
a class without any gets the class-agnostic mean mask, K times. At most ``max_per_class`` masks per class
are kept (a seeded reservoir sample), so memory stays bounded on the full dataset.

The file is a float32 ``.npy`` of shape ``[num_classes, K, S, S]`` (row i = class id i + 1), as the seed's
published ``91 x 20 x 32 x 32`` COCO priors; read and written through ``tf.io.gfile`` (local or gs://),
written atomically.
"""

from __future__ import annotations

import io
import logging

import numpy as np

log = logging.getLogger(__name__)


def read_priors(path: str) -> np.ndarray:
    """float32 ``[C, K, S, S]`` priors from a .npy file (local or gs://); a clear error when it is not one."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"shape priors file {path} does not exist (make one with `hierseg priors`)")
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            priors = np.load(io.BytesIO(f.read()), allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path}: not a .npy file: {e}") from None
    if priors.ndim != 4 or priors.shape[2] != priors.shape[3] or 0 in priors.shape:
        raise ValueError(f"{path}: shape priors must be [num_classes, K, S, S], got {list(priors.shape)}")
    return priors.astype(np.float32)


def write_priors(priors: np.ndarray, path: str) -> None:
    """Writes float32 priors as .npy, atomically (a temporary file renamed into place; local or gs://)."""
    from hierseg import atomic_write

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(priors, np.float32), allow_pickle=False)
    atomic_write.write_bytes(path, buffer.getvalue())


PRIORS_FILE = "shape_priors.npy"  # the copy of a ShapeMask's priors in its model directory and export


def stage_shape_priors(config, directory: str, final_directory: str | None = None):
    """A ShapeMask experiment's priors copied to ``directory/shape_priors.npy`` (model dir or export), and
    the config pointing at the copy (returned); other configs are returned unchanged.

    ``final_directory``: where ``directory`` will be renamed to (an export written to a temporary folder),
    for the path in the config. So a model directory or an export holds everything its config names.
    """
    from hierseg.config import merge

    path = config.model.shapemask.shape_prior_path
    if config.model.type != "shapemask" or not path:
        return config
    target = f"{directory.rstrip('/')}/{PRIORS_FILE}"
    if path != target:
        write_priors(read_priors(path), target)
    final = f"{(final_directory or directory).rstrip('/')}/{PRIORS_FILE}"
    return merge(config, {"model": {"shapemask": {"shape_prior_path": final}}})


def class_priors(masks: np.ndarray, k: int, seed: int, n_init: int = 3) -> np.ndarray:
    """float32 ``[k, S, S]`` centroids of one class's ``masks [n, S, S]`` (values in [0, 1]), see the module doc.

    Deterministic for a seed. Fewer than ``k`` distinct masks: those repeated cyclically. ``n == 0`` is
    the caller's case (it has no masks to cluster).
    """
    from sklearn.cluster import KMeans

    flat = np.asarray(masks, np.float32).reshape(len(masks), -1)
    _, first = np.unique(flat, axis=0, return_index=True)
    distinct = flat[np.sort(first)]
    size = masks.shape[1:]
    if len(distinct) <= k:
        return distinct[np.arange(k) % len(distinct)].reshape(k, *size)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(flat)
    counts = np.bincount(km.labels_, minlength=k)
    order = np.lexsort((np.arange(k), -counts))  # largest cluster first, ties by cluster index
    return np.clip(km.cluster_centers_[order], 0.0, 1.0).astype(np.float32).reshape(k, *size)


class _Reservoir:
    """At most ``capacity`` uniformly sampled rows per class (Algorithm R, seeded)."""

    def __init__(self, num_classes: int, capacity: int, seed: int):
        self.rows: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self.seen = np.zeros(num_classes, np.int64)
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)

    def add(self, cls: int, mask: np.ndarray) -> None:
        self.seen[cls] += 1
        if len(self.rows[cls]) < self.capacity:
            self.rows[cls].append(mask)
            return
        j = int(self.rng.integers(0, self.seen[cls]))
        if j < self.capacity:
            self.rows[cls][j] = mask


def _mask_crops(file_pattern: str, size: int):
    """Yields (classes int [n], crops uint8 [n, S, S] = round(255 * mask)) per training example."""
    import tensorflow as tf

    from hierseg.input import example_decoder as ex
    from hierseg.input.pipeline import list_files
    from hierseg.input.transforms import crop_masks_to_boxes

    def crop(serialized):
        d = ex.decode_example(serialized)
        crops = crop_masks_to_boxes(d[ex.MASKS], d[ex.BOXES], size)
        return d[ex.CLASSES], tf.cast(tf.round(crops * 255.0), tf.uint8)

    ds = tf.data.TFRecordDataset(list_files(file_pattern), buffer_size=8 << 20)
    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(4)
    yield from ds.as_numpy_iterator()


def compute_priors(
    train_file_pattern: str,
    num_classes: int,
    k: int = 20,
    *,
    size: int = 32,
    seed: int = 0,
    max_per_class: int = 2000,
    show_progress: bool = True,
) -> np.ndarray:
    """float32 ``[num_classes, k, size, size]`` shape priors of the prepared TFRecords (see the module doc).

    Args:
      train_file_pattern: glob(s) of a prepared layer's training shards (local or gs://).
      num_classes: K of the layer's label map; instance labels outside 1..K are an error.
      k: clusters per class; size: side of the priors (= ``model.shapemask.mask_crop_size``).
      seed: makes the reservoir sampling and the k-means deterministic.
      max_per_class: masks kept per class for the k-means.
    """
    from tqdm import tqdm

    if k < 1 or size < 2 or num_classes < 1 or max_per_class < 1:
        raise ValueError("priors: need k >= 1, size >= 2, num_classes >= 1, max_per_class >= 1")
    reservoir = _Reservoir(num_classes, max_per_class, seed)
    images = 0
    for classes, crops in tqdm(_mask_crops(train_file_pattern, size), disable=not show_progress, unit="image"):
        images += 1
        for cls, crop in zip(classes, crops):
            if not 1 <= cls <= num_classes:
                raise ValueError(f"{train_file_pattern}: instance class {cls} outside the label map's 1..{num_classes}")
            reservoir.add(int(cls) - 1, crop)
    total = int(reservoir.seen.sum())
    if total == 0:
        raise ValueError(f"{train_file_pattern}: no instance masks in {images} training examples")
    mean = sum(np.sum(np.asarray(r, np.float64), axis=0) for r in reservoir.rows if r) / sum(
        len(r) for r in reservoir.rows
    )
    out = np.zeros([num_classes, k, size, size], np.float32)
    for c in tqdm(range(num_classes), disable=not show_progress, unit="class"):
        if reservoir.rows[c]:
            out[c] = class_priors(np.stack(reservoir.rows[c]).astype(np.float32) / 255.0, k, seed)
        else:
            out[c] = (mean / 255.0).astype(np.float32)[None]
    empty = int(np.sum(reservoir.seen == 0))
    log.info(
        "shape priors: %d masks in %d images, %d classes, %d without masks (mean mask)",
        total,
        images,
        num_classes,
        empty,
    )
    return out
