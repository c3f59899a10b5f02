"""Reading and writing per-image predictions in every format the ensembling and metric stages take.

Formats, chosen by the file name:

* ``.jsonl`` / ``.json``: the engine's prediction files, one :class:`~hierseg.detections.Detections`
  JSON object per line (:meth:`Detections.to_json`).
* ``.parquet``: one row per image; columns ``image_id`` (string), ``height``, ``width`` (int32),
  ``classes`` (list<string> MIDs), ``scores`` (list<float32>), ``boxes`` (list<list<float32>>, each
  normalized ymin, xmin, ymax, xmax), ``masks`` (list<string>: COCO compressed RLE counts at
  height x width), ``label_paths`` (list<list<string>>).
* ``.csv``: a challenge CSV, recognized by its header: the Kaggle submission
  (``ImageID,ImageWidth,ImageHeight,PredictionString`` with ``MID score EncodedMask`` triples) or the
  official metric's per-instance predictions (``ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask``).
  Instances read from a CSV have empty label paths and the masks' tight boxes.

Every reader streams (one image in memory at a time), except the per-instance CSV whose rows of one
image need not be adjacent; every writer writes a temporary file and renames it into place.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Iterator

import numpy as np

from ensembles.mask_iou import rle_boxes
from hierseg.detections import Detections, read_jsonl, write_jsonl
from hierseg.oid.mask_codec import MaskCodecError, rle_from_oid_mask

SUBMISSION_HEADER = ("ImageID", "ImageWidth", "ImageHeight", "PredictionString")
INSTANCE_CSV_HEADER = ("ImageID", "ImageWidth", "ImageHeight", "LabelName", "Score", "Mask")
_PARQUET_BATCH = 256  # images per parquet row group


class PredictionFormatError(ValueError):
    """A prediction file that cannot be read, with the file and line named."""


def allow_long_csv_fields() -> None:
    """Lifts the csv module's 128 KiB field limit: a busy image's PredictionString is megabytes long."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _kind(path: str) -> str:
    lower = path.lower()
    for ext, kind in ((".jsonl", "jsonl"), (".json", "jsonl"), (".parquet", "parquet"), (".csv", "csv")):
        if lower.endswith(ext):
            return kind
    raise PredictionFormatError(f"{path}: unknown prediction file type (expected .jsonl, .parquet or .csv)")


# ------------------------------------------------------------------------------------------ read
def read_predictions(path: str) -> Iterator[Detections]:
    """Streams per-image :class:`Detections` from a prediction file of any supported format."""
    kind = _kind(path)
    if kind == "jsonl":
        return read_jsonl(path)
    if kind == "parquet":
        return read_parquet(path)
    allow_long_csv_fields()
    with open(path, newline="", encoding="utf-8") as f:
        header = tuple(next(csv.reader(f), ()))
    if header == SUBMISSION_HEADER:
        return read_submission_csv(path)
    if header == INSTANCE_CSV_HEADER:
        return read_instance_csv(path)
    raise PredictionFormatError(
        f"{path}:1: header {','.join(header)!r} is neither {','.join(SUBMISSION_HEADER)!r} "
        f"nor {','.join(INSTANCE_CSV_HEADER)!r}"
    )


def _size(path: str, lineno: int, width: str, height: str) -> tuple[int, int]:
    try:
        w, h = int(width), int(height)
    except ValueError:
        raise PredictionFormatError(
            f"{path}:{lineno}: ImageWidth/ImageHeight {width!r}/{height!r} are not integers"
        ) from None
    if w <= 0 or h <= 0:
        raise PredictionFormatError(f"{path}:{lineno}: image size {w}x{h} (width x height) is not positive")
    return h, w


def _detections(image_id: str, h: int, w: int, classes: list[str], scores: list[float], rles: list[dict]) -> Detections:
    return Detections(image_id, h, w, classes, np.asarray(scores, np.float32), rle_boxes(rles).astype(np.float32), rles)


def parse_prediction_string(text: str, height: int, width: int) -> tuple[list[str], list[float], list[dict]]:
    """``MID score EncodedMask ...`` -> (classes, scores, RLEs at [height, width]).

    Raises:
      ValueError: for a token count that is not a multiple of 3, a score that is not a number, or an
        undecodable mask (the triple is named).
    """
    tokens = text.split()
    if len(tokens) % 3:
        raise ValueError(f"PredictionString has {len(tokens)} tokens, not a multiple of 3 (MID score EncodedMask)")
    classes, scores, rles = [], [], []
    for k in range(0, len(tokens), 3):
        mid, score, encoded = tokens[k : k + 3]
        try:
            scores.append(float(score))
        except ValueError:
            raise ValueError(f"triple {k // 3 + 1}: score {score!r} is not a number") from None
        try:
            rles.append(rle_from_oid_mask(encoded, height, width))
        except MaskCodecError as e:
            raise ValueError(f"triple {k // 3 + 1} ({mid}): {e}") from None
        classes.append(mid)
    return classes, scores, rles


def read_submission_csv(path: str) -> Iterator[Detections]:
    """Streams a Kaggle submission CSV, one image per row."""
    allow_long_csv_fields()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = tuple(next(reader, ()))
        if header != SUBMISSION_HEADER:
            raise PredictionFormatError(f"{path}:1: expected header {','.join(SUBMISSION_HEADER)!r}")
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != 4:
                raise PredictionFormatError(f"{path}:{lineno}: expected 4 fields, got {len(row)}")
            h, w = _size(path, lineno, row[1], row[2])
            try:
                classes, scores, rles = parse_prediction_string(row[3], h, w)
            except ValueError as e:
                raise PredictionFormatError(f"{path}:{lineno}: image {row[0]}: {e}") from None
            yield _detections(row[0], h, w, classes, scores, rles)


def read_instance_csv(path: str) -> Iterator[Detections]:
    """Reads the official metric's per-instance predictions CSV, grouped by image (first-seen order)."""
    allow_long_csv_fields()
    images: dict[str, tuple[int, int, list[str], list[float], list[dict]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        if tuple(next(reader, ())) != INSTANCE_CSV_HEADER:
            raise PredictionFormatError(f"{path}:1: expected header {','.join(INSTANCE_CSV_HEADER)!r}")
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != 6:
                raise PredictionFormatError(f"{path}:{lineno}: expected 6 fields, got {len(row)}")
            image_id, width, height, mid, score, encoded = row
            h, w = _size(path, lineno, width, height)
            entry = images.setdefault(image_id, (h, w, [], [], []))
            if entry[:2] != (h, w):
                raise PredictionFormatError(
                    f"{path}:{lineno}: image {image_id} has size {w}x{h} here and "
                    f"{entry[1]}x{entry[0]} on an earlier line (width x height)"
                )
            try:
                entry[3].append(float(score))
                entry[4].append(rle_from_oid_mask(encoded, h, w))
            except (ValueError, MaskCodecError) as e:
                raise PredictionFormatError(f"{path}:{lineno}: image {image_id}: {e}") from None
            entry[2].append(mid)
    for image_id, (h, w, classes, scores, rles) in images.items():
        yield _detections(image_id, h, w, classes, scores, rles)


def read_parquet(path: str) -> Iterator[Detections]:
    """Streams a parquet prediction file, one row group at a time."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
        for row in batch.to_pylist():
            h, w = int(row["height"]), int(row["width"])
            yield Detections(
                row["image_id"],
                h,
                w,
                list(row["classes"]),
                np.asarray(row["scores"], np.float32),
                np.asarray(row["boxes"], np.float32).reshape([-1, 4]),
                [{"size": [h, w], "counts": m.encode("ascii")} for m in row["masks"]],
                [tuple(p) for p in row["label_paths"]],
            )


# ----------------------------------------------------------------------------------------- write
def write_predictions(path: str, detections: Iterable[Detections]) -> None:
    """Writes per-image detections as ``.jsonl`` or ``.parquet`` (atomically, streaming)."""
    kind = _kind(path)
    if kind == "jsonl":
        write_jsonl(path, detections)
    elif kind == "parquet":
        write_parquet(path, detections)
    else:
        raise PredictionFormatError(
            f"{path}: predictions are written as .jsonl or .parquet (use `hierseg submit` for a challenge CSV)"
        )


def _parquet_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("image_id", pa.string()),
            ("height", pa.int32()),
            ("width", pa.int32()),
            ("classes", pa.list_(pa.string())),
            ("scores", pa.list_(pa.float32())),
            ("boxes", pa.list_(pa.list_(pa.float32()))),
            ("masks", pa.list_(pa.string())),
            ("label_paths", pa.list_(pa.list_(pa.string()))),
        ]
    )


def write_parquet(path: str, detections: Iterable[Detections]) -> None:
    """Writes detections as parquet, one row per image, in row groups of a few hundred images."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    tmp = f"{path}.tmp-{os.getpid()}"
    rows: list[dict] = []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:

            def flush() -> None:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows.clear()

            for d in detections:
                rows.append(
                    {
                        "image_id": d.image_id,
                        "height": d.height,
                        "width": d.width,
                        "classes": list(d.classes),
                        "scores": d.scores.tolist(),
                        "boxes": d.boxes.tolist(),
                        "masks": [
                            r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"]
                            for r in d.rles
                        ],
                        "label_paths": [list(p) for p in d.label_paths],
                    }
                )
                if len(rows) >= _PARQUET_BATCH:
                    flush()
            if rows:
                flush()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
