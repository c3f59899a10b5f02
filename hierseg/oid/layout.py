"""The Open Images challenge 2019 dataset folder layout (``--oid_dir DIR``).

The layout is the one a user gets by downloading the published challenge files::

  DIR/challenge-2019-label300-segmentable-hierarchy.json
  DIR/challenge-2019-classes-description-segmentable.csv
  DIR/challenge-2019-{train,validation}-segmentation-masks.csv
  DIR/challenge-2019-{train,validation}-segmentation-bbox.csv
  DIR/challenge-2019-{train,validation}-segmentation-labels.csv
  DIR/challenge-2019-{train,validation}-masks/challenge-2019-{train,validation}-masks-[0-9a-f].zip
  DIR/{train,validation,test}/<ImageID>.jpg

:class:`OidPaths` holds one path per file or folder. Every one of them can be overridden on its own
(``OidPaths.from_dir(root, train_masks_csv="/elsewhere/x.csv")``) for users whose copy differs; an
override is used as given (not joined to ``root``). Paths may be local or ``gs://`` URLs; they are
joined with ``/`` so both work.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass

SPLITS: tuple[str, ...] = ("train", "validation", "test")
ANNOTATED_SPLITS: tuple[str, ...] = ("train", "validation")  # the test split has images only
SHARDS: str = "0123456789abcdef"  # mask zip shards, named by the first hex character of MaskPath

# Published file names (``{split}`` is train or validation, ``{shard}`` one of SHARDS).
HIERARCHY_JSON_NAME = "challenge-2019-label300-segmentable-hierarchy.json"
CLASSES_CSV_NAME = "challenge-2019-classes-description-segmentable.csv"
MASKS_CSV_NAME = "challenge-2019-{split}-segmentation-masks.csv"
BBOX_CSV_NAME = "challenge-2019-{split}-segmentation-bbox.csv"
LABELS_CSV_NAME = "challenge-2019-{split}-segmentation-labels.csv"
MASK_ZIP_DIR_NAME = "challenge-2019-{split}-masks"
MASK_ZIP_NAME = "challenge-2019-{split}-masks-{shard}.zip"
IMAGE_DIR_NAME = "{split}"
IMAGE_EXT = ".jpg"


def join(root: str, *names: str) -> str:
    """Joins path parts with '/', for local paths and gs:// URLs alike (no doubled slashes)."""
    out = root
    for name in names:
        out = name if not out else f"{out.rstrip('/')}/{name.lstrip('/')}"
    return out


class _GFileRaw(io.RawIOBase):
    """A ``tf.io.gfile.GFile`` as a standard raw binary stream.

    GFile lacks parts of the io protocol (``closed``, ``readinto``) that pyarrow, zipfile and
    TextIOWrapper rely on; this adapter supplies them.
    """

    def __init__(self, path: str):
        import tensorflow as tf

        self._f = tf.io.gfile.GFile(path, "rb")
        self._f.size()  # fail here, naming the path, if it does not exist

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset, whence = self._f.size() + offset, io.SEEK_SET
        elif whence == io.SEEK_CUR:
            offset, whence = self._f.tell() + offset, io.SEEK_SET
        self._f.seek(offset)
        return self._f.tell()

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def open_binary(path: str, buffer_size: int = 1 << 20) -> io.BufferedIOBase:
    """Opens a local path or a URL (gs://, file://, via tf.io.gfile) for buffered binary reading.

    Raises:
      FileNotFoundError: if the file does not exist (local or URL).
    """
    if "://" not in path:
        return open(path, "rb")
    try:
        return io.BufferedReader(_GFileRaw(path), buffer_size=buffer_size)
    except Exception as e:
        if type(e).__name__ == "NotFoundError":  # tf.errors.NotFoundError
            raise FileNotFoundError(f"{path}: not found") from None
        raise


def read_text(path: str) -> str:
    """A whole UTF-8 text file (local or URL), a leading byte-order mark removed: every text input of
    the project (CSV, JSON, pbtxt) is read this way, so a file saved by Excel or Notepad reads the same.

    Raises:
      FileNotFoundError: naming the path.
      UnicodeDecodeError: for bytes that are not UTF-8.
    """
    with open_binary(path) as f:
        return f.read().decode("utf-8-sig")


def path_exists(path: str) -> bool:
    """Whether a local path or a gs:// URL exists (TensorFlow is imported only for URLs)."""
    if "://" in path:
        import tensorflow as tf

        return bool(tf.io.gfile.exists(path))
    return os.path.exists(path)


@dataclass(frozen=True)
class OidPaths:
    """Every file and folder of one Open Images challenge dataset copy.

    Per-split fields are named ``{split}_{kind}``; :meth:`from_dir` fills them from the published
    names. Use the methods (``masks_csv("train")``) rather than the fields in code that takes a split.

    Attributes:
      root: the dataset folder (``--oid_dir``), local or gs://.
      hierarchy_json, classes_csv: the class hierarchy JSON and the class-description CSV.
      {train,validation}_{masks,bbox,labels}_csv: the annotation CSVs.
      {train,validation}_mask_zip_dir: folders holding the 16 mask zip shards.
      {train,validation}_mask_zip_prefix: the shards' file names before ``-{shard}.zip``
        (``challenge-2019-train-masks``), for copies whose zips are named otherwise.
      {train,validation,test}_image_dir: folders of ``<ImageID>.jpg``.
      image_ext: the image file extension, ``.jpg``.
    """

    root: str
    hierarchy_json: str
    classes_csv: str
    train_masks_csv: str
    validation_masks_csv: str
    train_bbox_csv: str
    validation_bbox_csv: str
    train_labels_csv: str
    validation_labels_csv: str
    train_mask_zip_dir: str
    validation_mask_zip_dir: str
    train_image_dir: str
    validation_image_dir: str
    test_image_dir: str
    train_mask_zip_prefix: str = MASK_ZIP_DIR_NAME.format(split="train")
    validation_mask_zip_prefix: str = MASK_ZIP_DIR_NAME.format(split="validation")
    image_ext: str = IMAGE_EXT

    @classmethod
    def from_dir(cls, root: str, **overrides: str | None) -> OidPaths:
        """The published layout under ``root``; any field can be overridden (None = not overridden).

        Raises:
          ValueError: for an override key that is not a field, naming the valid keys.
        """
        root = str(root)
        fields = {f.name for f in dataclasses.fields(cls)} - {"root"}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"OidPaths: unknown path override(s) {unknown}; valid: {sorted(fields)}")
        values: dict[str, str] = {
            "hierarchy_json": join(root, HIERARCHY_JSON_NAME),
            "classes_csv": join(root, CLASSES_CSV_NAME),
        }
        for split in ANNOTATED_SPLITS:
            values[f"{split}_masks_csv"] = join(root, MASKS_CSV_NAME.format(split=split))
            values[f"{split}_bbox_csv"] = join(root, BBOX_CSV_NAME.format(split=split))
            values[f"{split}_labels_csv"] = join(root, LABELS_CSV_NAME.format(split=split))
            values[f"{split}_mask_zip_dir"] = join(root, MASK_ZIP_DIR_NAME.format(split=split))
        for split in SPLITS:
            values[f"{split}_image_dir"] = join(root, IMAGE_DIR_NAME.format(split=split))
        values.update({k: str(v) for k, v in overrides.items() if v is not None})
        return cls(root=root, **values)

    # --------------------------------------------------------------------------------- per split
    @staticmethod
    def _check_split(split: str, annotated: bool) -> None:
        allowed = ANNOTATED_SPLITS if annotated else SPLITS
        if split not in allowed:
            what = "annotated split" if annotated else "split"
            raise ValueError(f"unknown {what} {split!r}; expected one of {list(allowed)}")

    def _of_annotated_split(self, split: str, field: str) -> str:
        """The ``{split}_{field}`` path of an annotated split (checked)."""
        self._check_split(split, annotated=True)
        return getattr(self, f"{split}_{field}")

    def masks_csv(self, split: str) -> str:
        """The segmentation CSV (MaskPath, ImageID, LabelName, BoxID, boxes, PredictedIoU, Clicks)."""
        return self._of_annotated_split(split, "masks_csv")

    def bbox_csv(self, split: str) -> str:
        """The bbox CSV (ImageID, LabelName, XMin, XMax, YMin, YMax, IsGroupOf)."""
        return self._of_annotated_split(split, "bbox_csv")

    def labels_csv(self, split: str) -> str:
        """The image-level labels CSV (ImageID, LabelName, Confidence)."""
        return self._of_annotated_split(split, "labels_csv")

    def mask_zip_dir(self, split: str) -> str:
        """The folder of the split's 16 mask zip shards."""
        return self._of_annotated_split(split, "mask_zip_dir")

    def mask_zip_prefix(self, split: str) -> str:
        """The shards' file name before ``-{shard}.zip``."""
        return self._of_annotated_split(split, "mask_zip_prefix")

    def mask_zip(self, split: str, shard: str) -> str:
        """The zip shard holding masks whose MaskPath starts with ``shard`` (one hex character)."""
        if len(shard) != 1 or shard not in SHARDS:
            raise ValueError(f"mask zip shard must be one of {SHARDS!r}, got {shard!r}")
        return join(self.mask_zip_dir(split), f"{self.mask_zip_prefix(split)}-{shard}.zip")

    def mask_zips(self, split: str) -> list[str]:
        """All 16 zip shards of a split, in shard order."""
        return [self.mask_zip(split, s) for s in SHARDS]

    def image_dir(self, split: str) -> str:
        self._check_split(split, annotated=False)
        return getattr(self, f"{split}_image_dir")

    def image_path(self, split: str, image_id: str) -> str:
        """``{image_dir}/{ImageID}.jpg``."""
        return join(self.image_dir(split), f"{image_id}{self.image_ext}")

    # ------------------------------------------------------------------------------- whole copy
    def annotation_files(self, splits: Iterable[str] = ANNOTATED_SPLITS) -> list[str]:
        """The metadata and annotation CSVs of ``splits`` (no zips or images)."""
        out = [self.hierarchy_json, self.classes_csv]
        for split in splits:
            out += [self.masks_csv(split), self.bbox_csv(split), self.labels_csv(split)]
        return out

    def missing(self, splits: Iterable[str] = ANNOTATED_SPLITS, *, masks: bool = True) -> list[str]:
        """Paths of ``splits`` that do not exist (annotation CSVs, and the mask zips if ``masks``)."""
        splits = list(splits)
        wanted = self.annotation_files(splits)
        if masks:
            for split in splits:
                wanted += self.mask_zips(split)
        return [p for p in wanted if not path_exists(p)]

    def load_hierarchy(self):
        """The :class:`~hierseg.hierarchy.Hierarchy` of this copy (its JSON and class CSV)."""
        from hierseg.hierarchy import Hierarchy

        return Hierarchy.from_files(self.hierarchy_json, self.classes_csv)
