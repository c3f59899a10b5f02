"""Mask PNGs read straight from the challenge's 16 zip shards, without unpacking them.

A mask's zip shard is named by the first character of its ``MaskPath`` (which is the first hex
character of the ImageID): ``{zip_dir}/{prefix}-{MaskPath[0]}.zip``, e.g.
``challenge-2019-train-masks/challenge-2019-train-masks-a.zip``. Entries are looked up by file name,
so shards whose PNGs sit in a sub-folder of the zip read too.

Masks are binary PNGs, usually at a lower resolution than their image: 1-bit (mode "1"), or 8-bit
with values 0/255 or 0/1. Foreground is ``> 0`` for 0/1 masks and ``> 127`` otherwise (the threshold
Open Images tools use). :meth:`MaskZipReader.read_resized` brings a mask to the image size with
nearest-neighbour sampling exactly as PIL's ``NEAREST`` (:mod:`hierseg.mask_resize`).

Zips are opened lazily, at most once per process: a reader copied into a worker process (fork, or
pickled for spawn) reopens its own handles there, so no file handle is ever shared between processes.
Concurrent reads from several threads of one process are safe.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile

import numpy as np
from PIL import Image

from hierseg import atomic_write
from hierseg.mask_resize import nearest_indices, resize_nearest
from hierseg.oid.errors import OidFormatError
from hierseg.oid.layout import ANNOTATED_SPLITS, MASK_ZIP_DIR_NAME, SHARDS, OidPaths, join, open_binary
from hierseg.rle import encode_resampled

__all__ = ["MaskZipReader", "decode_mask_png", "nearest_indices", "resize_nearest", "safe_extract"]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_mask_png(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """PNG bytes -> [h, w] bool at the PNG's own resolution (see the module docstring for the threshold).

    Raises:
      OidFormatError: naming ``source`` if the bytes are not a readable PNG.
    """
    try:
        # Open Images masks are PNGs: naming the format skips PIL's probing of every other plugin.
        with Image.open(io.BytesIO(data), formats=["PNG"] if data[:8] == _PNG_SIGNATURE else None) as im:
            im.load()
            if im.mode == "1":
                return np.array(im, dtype=bool)
            if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError, zipfile.BadZipFile) as e:  # PIL reports corrupt data as these
        raise OidFormatError(f"{source}: corrupt mask PNG: {e}") from None
    if arr.ndim != 2:
        raise OidFormatError(f"{source}: mask PNG has shape {arr.shape}, expected a single channel")
    if arr.size == 0 or arr.max() <= 1:
        return arr > 0
    return arr > (127 if arr.dtype == np.uint8 else np.iinfo(arr.dtype).max // 2)


class MaskZipReader:
    """Reads mask PNGs by ``MaskPath`` from ``{zip_dir}/{split_prefix}-{shard}.zip``.

    Build it with :meth:`for_split` from an :class:`~hierseg.oid.layout.OidPaths`, or directly:
    ``MaskZipReader("DIR/challenge-2019-train-masks", "challenge-2019-train-masks")``.

    Args:
      zip_dir: the folder holding the shards (local or gs://).
      split_prefix: the shard file name before ``-{shard}.zip``; a bare split name ("train",
        "validation") stands for its published prefix ``challenge-2019-{split}-masks``.
    """

    def __init__(self, zip_dir: str, split_prefix: str):
        self.zip_dir = str(zip_dir)
        if split_prefix in ANNOTATED_SPLITS:
            split_prefix = MASK_ZIP_DIR_NAME.format(split=split_prefix)
        self.split_prefix = split_prefix
        self._lock = threading.Lock()
        self._reset()

    @classmethod
    def for_split(cls, paths: OidPaths, split: str) -> MaskZipReader:
        """The reader of a split's shards in the dataset layout (``paths.mask_zip(split, shard)``)."""
        return cls(paths.mask_zip_dir(split), paths.mask_zip_prefix(split))

    def zip_path(self, shard: str) -> str:
        return join(self.zip_dir, f"{self.split_prefix}-{shard}.zip")

    # ---------------------------------------------------------------------- per-process handles
    def _reset(self) -> None:
        self._pid = os.getpid()
        self._zips: dict[str, tuple[zipfile.ZipFile, dict[str, str]]] = {}

    def __getstate__(self) -> dict:
        return {"zip_dir": self.zip_dir, "split_prefix": self.split_prefix}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["zip_dir"], state["split_prefix"])

    def _shard(self, shard: str) -> tuple[zipfile.ZipFile, dict[str, str]]:
        if os.getpid() != self._pid:  # forked: the parent's handles are not ours to use
            self._lock = threading.Lock()
            self._reset()
        entry = self._zips.get(shard)
        if entry is not None:
            return entry
        with self._lock:
            if shard not in self._zips:
                path = self.zip_path(shard)
                try:
                    # Local zips are opened by path so ZipFile owns (and closes) the file.
                    zf = zipfile.ZipFile(open_binary(path) if "://" in path else path)
                except FileNotFoundError:
                    raise OidFormatError(f"{path}: mask zip shard not found") from None
                except OSError as e:
                    raise OidFormatError(f"{path}: cannot open mask zip shard: {e}") from None
                except zipfile.BadZipFile as e:
                    raise OidFormatError(f"{path}: not a zip file: {e}") from None
                names: dict[str, str] = {}
                for n in zf.namelist():
                    if n.endswith("/"):
                        continue
                    base = n.rsplit("/", 1)[-1]
                    if base in names:  # which one is the mask? refuse rather than pick one silently
                        zf.close()
                        raise OidFormatError(
                            f"{path}:{n}: a second entry named {base} (first: {names[base]}); a MaskPath must "
                            "name one entry"
                        )
                    names[base] = n
                self._zips[shard] = (zf, names)
            return self._zips[shard]

    def close(self) -> None:
        with self._lock:
            if os.getpid() == self._pid:
                for zf, _ in self._zips.values():
                    fp = zf.fp if "://" in self.zip_dir else None  # a file object ZipFile does not own
                    zf.close()
                    if fp is not None:
                        fp.close()
            self._reset()

    def __enter__(self) -> MaskZipReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ reads
    def read_bytes(self, mask_path: str) -> bytes:
        """The PNG bytes of one mask."""
        shard = mask_path[:1]
        if not shard or shard not in SHARDS:
            raise OidFormatError(f"{self.zip_dir}:{mask_path}: MaskPath must start with a hex digit (its zip shard)")
        zf, names = self._shard(shard)
        name = names.get(mask_path)
        if name is None:
            raise OidFormatError(f"{self.zip_path(shard)}:{mask_path}: no such mask in the zip")
        try:
            return zf.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # CRC errors, truncated zips
            raise OidFormatError(f"{self.zip_path(shard)}:{mask_path}: cannot read the zip entry: {e}") from None

    def read(self, mask_path: str) -> np.ndarray:
        """One mask at the PNG's own resolution: [h, w] bool."""
        data = self.read_bytes(mask_path)
        return decode_mask_png(data, f"{self.zip_path(mask_path[0])}:{mask_path}")

    def read_resized(self, mask_path: str, height: int, width: int) -> np.ndarray:
        """One mask resized to the image size with nearest neighbour: [height, width] bool."""
        return resize_nearest(self.read(mask_path), height, width)

    def read_resized_rle(self, mask_path: str, height: int, width: int) -> dict:
        """The COCO RLE of :meth:`read_resized`, built from the small mask without the dense image-size array."""
        mask = self.read(mask_path)
        return encode_resampled(mask, nearest_indices(mask.shape[0], height), nearest_indices(mask.shape[1], width))

    def names(self, shard: str) -> list[str]:
        """The MaskPaths stored in one shard."""
        return sorted(self._shard(shard)[1])

    def __contains__(self, mask_path: str) -> bool:
        try:
            return mask_path in self._shard(mask_path[:1])[1]
        except OidFormatError:
            return False


def safe_extract(zip_path: str, dest_dir: str) -> list[str]:
    """Extracts a zip into ``dest_dir``, never writing outside it.

    Every entry is checked before anything is written: absolute paths, drive letters, ``..``
    components, and symlink entries are rejected.

    Returns:
      The extracted file paths.
    Raises:
      OidFormatError: ``"{zip_path}:{entry}: ..."`` for the first unsafe entry.
    """
    dest_real = os.path.realpath(dest_dir)
    with open_binary(zip_path) as f, zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        targets: list[tuple[zipfile.ZipInfo, str]] = []
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                raise OidFormatError(f"{zip_path}:{name}: unsafe zip entry: absolute path")
            if ".." in parts:
                raise OidFormatError(f"{zip_path}:{name}: unsafe zip entry: '..' in path")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise OidFormatError(f"{zip_path}:{name}: unsafe zip entry: symbolic link")
            target = os.path.realpath(os.path.join(dest_real, *[p for p in parts if p]))
            if os.path.commonpath([dest_real, target]) != dest_real:
                raise OidFormatError(f"{zip_path}:{name}: unsafe zip entry: resolves outside {dest_dir}")
            targets.append((info, target))
        out = []
        for info, target in targets:
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            with zf.open(info) as src, atomic_write.atomic_open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            out.append(target)
    return out
