"""Writing the synthetic dataset's files: atomic, byte-for-byte deterministic.

Every file is written to a temporary name in its folder and renamed into place, so a reader never
sees half a file. Bytes depend only on the content: CSV rows in a fixed order with ``\\n`` line ends,
zip entries sorted by name with a fixed timestamp and permissions (stored, not deflated: PNGs are
already compressed), PNGs and JPEGs from PIL with fixed settings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from PIL import Image

from hierseg import atomic_write
from hierseg.hierarchy import Hierarchy
from hierseg.oid import layout
from hierseg.oid.tables import BBOX_COLUMNS, IMAGE_LABELS_COLUMNS, SEGMENTATION_COLUMNS

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
JPEG_QUALITY = 92

# The published headers, as the readers check them.
MASKS_CSV_HEADER = SEGMENTATION_COLUMNS
BBOX_CSV_HEADER = BBOX_COLUMNS
LABELS_CSV_HEADER = IMAGE_LABELS_COLUMNS


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (:mod:`hierseg.atomic_write`)."""
    atomic_write.write_bytes(path, data)


def csv_bytes(header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> bytes:
    """CSV text (``\\n`` line ends, minimal quoting) of ``header`` (None = no header line) and rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


class ChunkedCsv:
    """A CSV written chunk by chunk, atomically: ``with ChunkedCsv(path, header) as out: out.write(...)``.

    For row counts too large to hold as text at once; values are written unquoted, so columns must not
    contain commas or quotes (true of every OID column the generators write)."""

    def __init__(self, path: str, header: tuple[str, ...]):
        self.path, self.header = path, header
        self.options = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def __enter__(self) -> ChunkedCsv:
        self._open = atomic_write.atomic_open(self.path, "wb")
        self.file = self._open.__enter__()
        self.file.write((",".join(self.header) + "\n").encode("ascii"))
        return self

    def __exit__(self, *exc) -> None:
        self._open.__exit__(*exc)  # renames into place, or removes the temporary file on an error

    def write(self, columns: dict[str, pa.Array]) -> None:
        pacsv.write_csv(pa.table(columns), self.file, self.options)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip archive of ``{name: data}``, entries sorted by name, fixed timestamps, stored."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            zf.writestr(info, entries[name])
    return buf.getvalue()


def png_bytes(mask: np.ndarray, one_bit: bool = False) -> bytes:
    """bool ``[H, W]`` -> PNG bytes: mode ``L`` with values 0/255, or mode ``1`` (1 bit per pixel)."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, "L")
    if one_bit:  # threshold, not dither: the values are 0/255 already
        img = img.convert("1", dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 ``[H, W, 3]`` -> baseline JPEG bytes (fixed quality, 4:2:0 chroma, no EXIF)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality, subsampling=2, optimize=False)
    return buf.getvalue()


def write_metadata(out_dir: str, hierarchy: Hierarchy) -> None:
    """The hierarchy JSON (``hierarchy.to_tree()``) and the class-description CSV (no header)."""
    tree = json.dumps(hierarchy.to_tree(), indent=2).encode("utf-8") + b"\n"
    atomic_write_bytes(os.path.join(out_dir, layout.HIERARCHY_JSON_NAME), tree)
    rows = [(mid, hierarchy.name(mid)) for mid in hierarchy.classes]
    atomic_write_bytes(os.path.join(out_dir, layout.CLASSES_CSV_NAME), csv_bytes(None, rows))


def write_mask_zips(out_dir: str, split: str, pngs: dict[str, bytes]) -> list[str]:
    """The 16 mask zip shards of ``split`` (all of them, empty ones too); ``pngs`` maps MaskPath to
    PNG bytes and each goes to the shard named by its first character. Returns the zip paths."""
    shards: dict[str, dict[str, bytes]] = {s: {} for s in layout.SHARDS}
    for name, data in pngs.items():
        if name[0] not in shards:
            raise ValueError(f"MaskPath {name!r} does not start with a hex digit")
        shards[name[0]][name] = data
    folder = os.path.join(out_dir, layout.MASK_ZIP_DIR_NAME.format(split=split))
    paths = []
    for shard, entries in shards.items():
        path = os.path.join(folder, layout.MASK_ZIP_NAME.format(split=split, shard=shard))
        atomic_write_bytes(path, zip_bytes(entries))
        paths.append(path)
    return paths


def remove_stale_images(folder: str, keep: set[str]) -> int:
    """Deletes ``<ImageID>.jpg`` files in ``folder`` that are not in ``keep`` (a previous, bigger run
    into the same folder); other files are left alone. Returns how many were removed."""
    if not os.path.isdir(folder):
        return 0
    removed = 0
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext == layout.IMAGE_EXT and len(stem) == 16 and set(stem) <= set(layout.SHARDS) and name not in keep:
            os.remove(os.path.join(folder, name))
            removed += 1
    return removed
