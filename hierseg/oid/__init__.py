"""Open Images challenge 2019 file formats: folder layout, annotation CSVs, mask zips, mask codecs
and image sizes. Local paths and gs:// URLs are accepted everywhere.

The names below are imported on first use (PEP 562): ``hierseg.oid.tables`` needs pandas and pyarrow
(0.3-0.5 s), which a warm ``hierseg oid-eval`` or a submission writer never touches; importing one
submodule (``hierseg.oid.layout``) therefore costs only that submodule.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the submodule of hierseg.oid that defines it.
_SUBMODULE_OF = {
    # hierseg.oid.errors
    "OidFormatError": "errors",
    # hierseg.oid.image_size
    "ImageSizeCache": "image_size",
    "read_image_size": "image_size",
    # hierseg.oid.layout
    "ANNOTATED_SPLITS": "layout",
    "BBOX_CSV_NAME": "layout",
    "CLASSES_CSV_NAME": "layout",
    "HIERARCHY_JSON_NAME": "layout",
    "IMAGE_DIR_NAME": "layout",
    "IMAGE_EXT": "layout",
    "LABELS_CSV_NAME": "layout",
    "MASK_ZIP_DIR_NAME": "layout",
    "MASK_ZIP_NAME": "layout",
    "MASKS_CSV_NAME": "layout",
    "SHARDS": "layout",
    "SPLITS": "layout",
    "OidPaths": "layout",
    "join": "layout",
    "open_binary": "layout",
    "path_exists": "layout",
    # hierseg.oid.mask_codec
    "MaskCodecError": "mask_codec",
    "decode_counts": "mask_codec",
    "decode_oid_mask": "mask_codec",
    "decode_rle": "mask_codec",
    "encode_oid_mask": "mask_codec",
    "encode_rle": "mask_codec",
    "oid_mask_from_rle": "mask_codec",
    "rle_from_oid_mask": "mask_codec",
    # hierseg.oid.mask_zip
    "MaskZipReader": "mask_zip",
    "decode_mask_png": "mask_zip",
    "resize_nearest": "mask_zip",
    "safe_extract": "mask_zip",
    # hierseg.oid.tables
    "BBOX_COLUMNS": "tables",
    "IMAGE_LABELS_COLUMNS": "tables",
    "SEGMENTATION_COLUMNS": "tables",
    "SKIP_REASONS": "tables",
    "SkipCounts": "tables",
    "read_bbox_csv": "tables",
    "read_image_labels_csv": "tables",
    "read_segmentation_csv": "tables",
}

__all__ = sorted(_SUBMODULE_OF)


def __getattr__(name: str) -> Any:
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
