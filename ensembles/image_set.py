"""The set of images a submission must cover, with their original sizes.

A submission has one row per image of the set (an image folder, or a split of the dataset folder);
sizes come from the image headers (:mod:`hierseg.oid.image_size`), never from decoding pixels.
Sizes are ``(height, width)`` everywhere in this package, as in :class:`~hierseg.detections.Detections`.
"""

from __future__ import annotations

import os

from hierseg.oid.image_size import ImageSizeCache
from hierseg.oid.layout import OidPaths

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def list_images(image_dir: str) -> dict[str, str]:
    """ImageID (file name without extension) -> path, for the images directly in ``image_dir``, sorted.

    Raises:
      FileNotFoundError: if the folder does not exist.
      ValueError: if two files have the same ImageID.
    """
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"{image_dir}: image folder not found")
    out: dict[str, str] = {}
    for name in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            if stem in out:
                raise ValueError(f"{image_dir}: two images with ImageID {stem}: {out[stem]} and {name}")
            out[stem] = os.path.join(image_dir, name)
    return out


def image_sizes_from_dir(
    image_dir: str, *, cache_csv: str | None = None, num_workers: int = 8, show_progress: bool = False
) -> dict[str, tuple[int, int]]:
    """ImageID -> (height, width) of every image in ``image_dir``, read from the headers.

    Args:
      cache_csv: optional ``ImageID,Width,Height`` cache (read, and written when new sizes were read).
    """
    images = list_images(image_dir)
    cache = ImageSizeCache(cache_csv)
    return cache.get_many(list(images), list(images.values()), num_workers=num_workers, show_progress=show_progress)


def image_sizes_for_split(oid_dir: str, split: str, **kwargs) -> dict[str, tuple[int, int]]:
    """ImageID -> (height, width) of every image of ``split`` in the dataset folder (``DIR/{split}/``)."""
    return image_sizes_from_dir(OidPaths.from_dir(oid_dir).image_dir(split), **kwargs)
