"""Image sizes from JPEG/PNG headers (no pixel decoding), with a persistent CSV cache.

No challenge CSV carries image sizes, yet masks must be resized to their image and the submission
needs ImageWidth/ImageHeight. Reading only the header (PIL's lazy open) costs a few KB per image.

EXIF orientation: the size returned is that of the **stored** pixel array, ignoring any EXIF
orientation tag. Open Images box coordinates and masks are relative to the stored (non-rotated)
pixels, so the stored size is the one to resize masks to and to report in submissions.

The cache file is a CSV ``ImageID,Width,Height`` (the column order of Open Images size tables),
ImageID read as a string; it is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from hierseg import atomic_write
from hierseg.oid.errors import OidFormatError
from hierseg.oid.layout import open_binary, path_exists

CACHE_HEADER = ("ImageID", "Width", "Height")


def read_image_size(path_or_bytes: str | bytes | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a JPEG or PNG from its header; local path, gs:// URL or the file's bytes.

    Raises:
      OidFormatError: naming the file if it is missing, unreadable or not an image.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name, opener = "<image bytes>", lambda: io.BytesIO(bytes(path_or_bytes))
    else:
        name = str(path_or_bytes)
        opener = lambda: open_binary(name, buffer_size=1 << 16)  # noqa: E731  (headers are small)
    try:
        with opener() as f, Image.open(f) as im:  # lazy: parses the header only
            width, height = im.size
    except FileNotFoundError:
        raise OidFormatError(f"{name}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's ways to say "corrupt"
        raise OidFormatError(f"{name}: cannot read the image header: {e}") from None
    if width <= 0 or height <= 0:
        raise OidFormatError(f"{name}: image header gives an empty size {width}x{height}")
    return int(height), int(width)


class ImageSizeCache:
    """ImageID -> (height, width), filled from image headers and persisted as a CSV.

    Args:
      cache_csv: the cache file (local or gs://), read if it exists and written by :meth:`save`;
        None keeps the cache in memory only.
    """

    def __init__(self, cache_csv: str | None = None):
        self.cache_csv = None if cache_csv is None else str(cache_csv)
        self._sizes: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.cache_csv and path_exists(self.cache_csv):
            self._sizes = _read_cache(self.cache_csv)

    def __len__(self) -> int:
        return len(self._sizes)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._sizes

    def get(self, image_id: str, path: str) -> tuple[int, int]:
        """``(height, width)`` of one image, from the cache or its header (then cached)."""
        size = self._sizes.get(image_id)
        if size is None:
            size = read_image_size(path)
            with self._lock:
                self._sizes[image_id] = size
                self._dirty = True
        return size

    def get_many(
        self, image_ids: Sequence[str], paths: Sequence[str], num_workers: int = 8, show_progress: bool = False
    ) -> dict[str, tuple[int, int]]:
        """Sizes of many images: headers of uncached ones are read by a thread pool (I/O bound).

        Saves the cache afterwards when it has a file and new entries. Returns {ImageID: (h, w)}.
        """
        if len(image_ids) != len(paths):
            raise ValueError(f"get_many: {len(image_ids)} ImageIDs but {len(paths)} paths")
        todo = [(i, p) for i, p in zip(image_ids, paths) if i not in self._sizes]
        if todo:
            bar = None
            if show_progress:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), desc="image sizes", unit="img")

            def one(item: tuple[str, str]) -> None:
                self.get(*item)
                if bar is not None:
                    bar.update(1)

            try:
                if num_workers <= 1:
                    for item in todo:
                        one(item)
                else:
                    with ThreadPoolExecutor(max_workers=num_workers) as pool:
                        for _ in pool.map(one, todo):  # re-raises the first error
                            pass
            finally:
                if bar is not None:
                    bar.close()
            if self.cache_csv:
                self.save()
        return {i: self._sizes[i] for i in image_ids}

    def save(self, path: str | None = None) -> None:
        """Writes the cache CSV atomically (to ``path`` or the cache file), rows sorted by ImageID."""
        path = path or self.cache_csv
        if not path:
            raise ValueError("ImageSizeCache.save: no cache file given")
        with self._lock:
            rows = sorted(self._sizes.items())
            self._dirty = False
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CACHE_HEADER)
        writer.writerows((i, w, h) for i, (h, w) in rows)
        atomic_write.write_text(path, buf.getvalue())


def _read_cache(path: str) -> dict[str, tuple[int, int]]:
    with open_binary(path) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CACHE_HEADER:
            raise OidFormatError(
                f"{path}:1: image size cache must start with header {','.join(CACHE_HEADER)}, got {header!r}"
            )
        sizes: dict[str, tuple[int, int]] = {}
        for row in reader:
            if not row:
                continue
            try:
                image_id, width, height = row
                w, h = int(width), int(height)
                if w <= 0 or h <= 0 or not image_id:
                    raise ValueError("empty ImageID or non-positive size")
            except ValueError as e:
                raise OidFormatError(f"{path}:{reader.line_num}: bad image size row {row!r}: {e}") from None
            sizes[image_id] = (h, w)
    return sizes
