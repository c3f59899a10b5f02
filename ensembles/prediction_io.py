"""Reading and writing per-image predictions in every format the ensembling and metric stages take.

Formats, chosen by the file name (JSON lines and the challenge CSVs are :mod:`hierseg.prediction_file`;
parquet is here):

* ``.jsonl`` / ``.json``: the engine's prediction files, one :class:`~hierseg.detections.Detections`
  JSON object per line.
* ``.parquet``: one row per image; columns ``image_id`` (string), ``height``, ``width`` (int32),
  ``classes`` (list<string> MIDs), ``scores`` (list<float64>), ``boxes`` (list<list<float32>>, each
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

from collections.abc import Iterable, Iterator

import numpy as np

from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.prediction_file import (
    INSTANCE_CSV_HEADER,
    SUBMISSION_HEADER,
    PredictionFileError,
    check_scores,
    csv_rows,
    read_instance_csv,
    read_jsonl,
    read_submission_csv,
    write_jsonl,
)

_PARQUET_BATCH = 256  # images per parquet row group


PredictionFormatError = PredictionFileError  # a prediction file that cannot be read, file and line named


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
    first = next(csv_rows(path), None)
    header = tuple(first[1]) if first else ()
    if header == SUBMISSION_HEADER:
        return read_submission_csv(path)
    if header == INSTANCE_CSV_HEADER:
        return read_instance_csv(path)
    raise PredictionFormatError(
        f"{path}:1: header {','.join(header)!r} is neither {','.join(SUBMISSION_HEADER)!r} "
        f"nor {','.join(INSTANCE_CSV_HEADER)!r}"
    )


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
                check_scores(row["scores"], f"{path}: image {row['image_id']}"),
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
            ("scores", pa.list_(pa.float64())),
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
    rows: list[dict] = []
    with atomic_write.atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:

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
                        r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"] for r in d.rles
                    ],
                    "label_paths": [list(p) for p in d.label_paths],
                }
            )
            if len(rows) >= _PARQUET_BATCH:
                flush()
        if rows:
            flush()
