"""The pixel stage of one image: JPEG + mask PNGs -> one serialized tf.train.Example (or a counted skip).

Per image: read the JPEG bytes, decode them (so corrupt or truncated files are caught, and for the
gray fill), read each mask PNG from its zip shard and resize it to the image size (nearest), drop
empty masks, paint the gray boxes (never over target mask pixels), re-encode the image only if the
fill changed it, encode the masks as PNG and build the Example.

The same :func:`process_image` runs in the local multiprocessing runner and in the Beam pipeline, so
both write the same bytes. Nothing here depends on wall-clock time or process identity.

Skip reasons (counted, the run goes on):
  image level: ``missing_image`` (no JPEG for an annotated image), ``corrupt_image`` (undecodable or
  truncated), ``no_instance_left`` (every instance of the image was skipped);
  instance level: ``missing_mask``, ``corrupt_mask`` (PNG absent from its zip / undecodable),
  ``empty_mask`` (no foreground pixel at image size). An image whose masked instances were all
  skipped is skipped even if it has box-only instances (images are chosen for their masks).

Box-only instances (``ImageTask.has_mask`` False) get an all-zero mask PNG and ``mask_valid = 0``;
the gray fill never paints over their boxes (the object is a target, not an unlabeled thing).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from data_prep import storage
from hierseg.oid.errors import OidFormatError
from hierseg.oid.layout import OidPaths
from hierseg.oid.mask_zip import MaskZipReader

_FORMATS = {"JPEG": "jpeg", "PNG": "png"}


@dataclass(frozen=True)
class ImageTask:
    """Everything the pixel stage needs for one image of one layer (picklable, small).

    Attributes:
      image_id: the Open Images ImageID; source_split: folder of its JPEG and mask zips.
      mask_paths: [N] MaskPath of each target instance; mids: [N] layer class MIDs;
      class_ids: int32 [N] 1..K; boxes: float32 [N, 4] normalized (ymin, xmin, ymax, xmax);
      is_crowd: bool [N]; has_mask: bool [N] (False: a box-only instance, mask_path "", written with an
      empty mask and image/object/mask_valid 0; None = all True); gray_boxes: float32 [G, 4] normalized (ymin, xmin, ymax, xmax);
      weight: image/weight.
      coco_image_id: the image's id in the split's COCO JSON (1.. in ImageID order), written as
        image/source_id.
    """

    image_id: str
    source_split: str
    mask_paths: tuple[str, ...]
    mids: tuple[str, ...]
    class_ids: np.ndarray
    boxes: np.ndarray
    is_crowd: np.ndarray
    gray_boxes: np.ndarray
    weight: float = 1.0
    coco_image_id: int = 0
    has_mask: np.ndarray | None = None


@dataclass
class ImageResult:
    """Output of one image: the serialized Example (None when skipped), skips per reason, the
    MaskPaths of instances that were dropped (to keep the manifest exact) and the instances written."""

    image_id: str
    example: bytes | None
    skips: Counter
    dropped_masks: tuple[str, ...] = ()
    num_instances: int = 0


class PixelProcessor:
    """Holds the per-process state (mask zip readers) of the pixel stage; picklable.

    Args:
      paths: the dataset layout; gs:// mask zips are downloaded once into ``cache_dir``.
      gray_value: 0..255 level of the gray fill; jpeg_quality: quality of re-encoded images.
      verify_images: decode every image fully (corrupt/truncated JPEGs are skipped, not written).
      drop_empty_masks: drop instances whose resized mask is empty.
    """

    def __init__(
        self,
        paths: OidPaths,
        *,
        gray_value: int = 128,
        jpeg_quality: int = 95,
        verify_images: bool = True,
        drop_empty_masks: bool = True,
        cache_dir: str | None = None,
    ):
        self.paths = paths
        self.gray_value = int(gray_value)
        self.jpeg_quality = int(jpeg_quality)
        self.verify_images = verify_images
        self.drop_empty_masks = drop_empty_masks
        self.cache_dir = cache_dir
        self._readers: dict[str, MaskZipReader] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = {}
        return state

    def _reader(self, split: str) -> MaskZipReader:
        if split not in self._readers:
            zip_dir = self.paths.mask_zip_dir(split)
            if storage.is_gcs(zip_dir):
                # Zip reading needs random access: bring each shard local once (per process).
                import os
                import tempfile

                cache = self.cache_dir or os.path.join(tempfile.gettempdir(), "hierseg-prepare-cache")
                local_dir = os.path.join(cache, f"{split}-masks")
                os.makedirs(local_dir, exist_ok=True)
                for shard_path in self.paths.mask_zips(split):
                    target = os.path.join(local_dir, os.path.basename(shard_path))
                    try:
                        version = storage.object_version(shard_path)
                        # Reused only when it is the same object version (generation and size).
                        if os.path.exists(target) and _read_local(target + ".version") == version:
                            continue
                        os.replace(storage.localize(shard_path, local_dir), target)
                        _write_local(target + ".version", version)
                    except FileNotFoundError:  # a missing shard: its masks count as missing_mask
                        continue
                reader = MaskZipReader(local_dir, self.paths.mask_zip_prefix(split))
            else:
                reader = MaskZipReader.for_split(self.paths, split)
            self._readers[split] = reader
        return self._readers[split]

    def process(self, task: ImageTask) -> ImageResult:
        return process_image(task, self)


def _read_local(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_local(path: str, text: str) -> None:
    import os

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _decode_image(data: bytes, verify: bool) -> tuple[Image.Image, str]:
    im = Image.open(io.BytesIO(data))
    fmt = _FORMATS.get(im.format or "", "")
    if verify or not fmt:
        im.load()  # raises on truncated or corrupt data (LOAD_TRUNCATED_IMAGES is off)
    return im, fmt


def _box_pixels(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Normalized (ymin, xmin, ymax, xmax) -> pixel rows/cols [y0, y1) x [x0, x1) covering the box."""
    y0 = int(np.clip(np.floor(box[0] * height), 0, height))
    x0 = int(np.clip(np.floor(box[1] * width), 0, width))
    y1 = int(np.clip(np.ceil(box[2] * height), 0, height))
    x1 = int(np.clip(np.ceil(box[3] * width), 0, width))
    return y0, x0, y1, x1


def gray_fill_region(
    gray_boxes: np.ndarray,
    target_masks: list[np.ndarray],
    height: int,
    width: int,
    target_boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels to paint: union of the gray boxes minus the target masks and the boxes of box-only
    targets (``target_boxes`` [T, 4] normalized), bool [height, width]."""
    region = np.zeros((height, width), bool)
    for box in np.asarray(gray_boxes, np.float32).reshape(-1, 4):
        y0, x0, y1, x1 = _box_pixels(box, height, width)
        region[y0:y1, x0:x1] = True
    for m in target_masks:
        region &= ~m
    for box in np.zeros((0, 4)) if target_boxes is None else np.asarray(target_boxes, np.float32).reshape(-1, 4):
        y0, x0, y1, x1 = _box_pixels(box, height, width)
        region[y0:y1, x0:x1] = False
    return region


def encode_mask_png(mask: np.ndarray) -> bytes:
    """bool [H, W] -> 8-bit grayscale PNG with values 0/1 (Model Garden's convention: its decoder uses
    the PNG values as the mask targets, without rescaling)."""
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _mask_paths(task: ImageTask) -> tuple[str, ...]:
    """The task's MaskPaths without the "" of box-only instances (dropped_masks must not name "")."""
    return tuple(p for p in task.mask_paths if p)


def process_image(task: ImageTask, proc: PixelProcessor) -> ImageResult:
    """The pixel stage of one image; see the module docstring. Never raises for bad input data."""
    from data_prep.tf_example import build_example

    skips: Counter = Counter()
    path = proc.paths.image_path(task.source_split, task.image_id)
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        skips["missing_image"] += 1
        return ImageResult(task.image_id, None, skips, _mask_paths(task))
    try:
        im, fmt = _decode_image(data, proc.verify_images)
        width, height = im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        skips["corrupt_image"] += 1
        return ImageResult(task.image_id, None, skips, _mask_paths(task))

    reader = proc._reader(task.source_split)
    has_mask = np.ones(len(task.mask_paths), bool) if task.has_mask is None else np.asarray(task.has_mask, bool)
    keep: list[int] = []
    masks: list[np.ndarray] = []
    dropped: list[str] = []
    for i, mask_path in enumerate(task.mask_paths):
        if not has_mask[i]:  # box-only: an empty mask, never read
            keep.append(i)
            masks.append(np.zeros((height, width), bool))
            continue
        try:
            m = reader.read_resized(mask_path, height, width)
        except OidFormatError as e:
            skips["missing_mask" if "no such mask" in str(e) or "not found" in str(e) else "corrupt_mask"] += 1
            dropped.append(mask_path)
            continue
        if proc.drop_empty_masks and not m.any():
            skips["empty_mask"] += 1
            dropped.append(mask_path)
            continue
        keep.append(i)
        masks.append(m)
    if not keep or not has_mask[keep].any():
        skips["no_instance_left"] += 1
        return ImageResult(task.image_id, None, skips, _mask_paths(task))

    image_bytes = data
    idx = np.asarray(keep)
    if len(task.gray_boxes):
        box_only = np.asarray(task.boxes).reshape(-1, 4)[idx][~has_mask[idx]]
        region = gray_fill_region(task.gray_boxes, masks, height, width, box_only)
        if region.any():
            rgb = np.array(im.convert("RGB"))
            rgb[region] = proc.gray_value
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="JPEG", quality=proc.jpeg_quality)
            image_bytes, fmt = buf.getvalue(), "jpeg"
    if not fmt:  # neither JPEG nor PNG: store as JPEG so every reader can decode it
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=proc.jpeg_quality)
        image_bytes, fmt = buf.getvalue(), "jpeg"

    example = build_example(
        image=image_bytes,
        image_format=fmt,
        height=height,
        width=width,
        source_id=str(task.coco_image_id),
        filename=f"{task.image_id}.jpg",
        boxes=np.asarray(task.boxes)[idx],
        class_ids=np.asarray(task.class_ids)[idx],
        mids=[task.mids[i] for i in keep],
        is_crowd=np.asarray(task.is_crowd)[idx],
        mask_pngs=[encode_mask_png(m) for m in masks],
        weight=task.weight,
        mask_valid=has_mask[idx],
    )
    # deterministic=True sorts the feature map: otherwise its order follows the per-process string hash
    # seed and two runs (or two workers) would write different bytes for the same example.
    return ImageResult(
        task.image_id, example.SerializeToString(deterministic=True), skips, tuple(dropped), num_instances=len(keep)
    )
