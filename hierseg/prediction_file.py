"""Prediction files: the engine's JSON lines and the Open Images challenge CSVs, read, written and checked here only.

**JSON lines** (``.jsonl``; ``hierseg predict``, ``hierseg ensemble``, evaluation): one image per line,
``{"image_id": str, "height": int, "width": int, "instances": [{"class": MID, "score": float in
[0, 1], "box": [ymin, xmin, ymax, xmax] normalized, "mask": COCO compressed RLE counts at height x
width, "label_path": [MID, ...]}, ...]}``.

**Submission CSV** (Kaggle format): header ``ImageID,ImageWidth,ImageHeight,PredictionString``, one row
per image; the string holds space-separated ``MID score EncodedMask`` triples
(:mod:`hierseg.oid.mask_codec`). ImageWidth comes *before* ImageHeight; sizes are ``(height, width)``
everywhere else.

**Per-instance CSV** (the official metric's input): ``ImageID,ImageWidth,ImageHeight,LabelName,Score,Mask``.

Every score goes through :func:`check_score` / :func:`check_scores`: a number in [0, 1], else an
error naming the file, the line and the instance. Errors of a file are :class:`PredictionFileError`
with messages ``"{path}:{line}: {what}"``. Writers are atomic (a temporary file renamed into place,
removed when the write fails). Readers stream one image at a time (except the per-instance CSV).

API: :func:`check_score`, :func:`check_scores`, :func:`detections_to_json`, :func:`detections_from_json`,
:func:`write_jsonl`, :func:`read_jsonl`, :func:`csv_rows`, :func:`split_prediction_string`,
:func:`parse_prediction_string`, :func:`format_prediction_string`, :func:`parse_image_size`,
:func:`read_submission_csv` (or :func:`submission_rows` and :meth:`SubmissionRow.detections` to
parse elsewhere, :func:`parse_submission_rows` for a batch), :func:`read_instance_csv`,
:class:`SubmissionCsvWriter`.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.errors import UsageError
from hierseg.rle import RleError, rle_boxes

SUBMISSION_HEADER = ("ImageID", "ImageWidth", "ImageHeight", "PredictionString")
INSTANCE_CSV_HEADER = ("ImageID", "ImageWidth", "ImageHeight", "LabelName", "Score", "Mask")


class PredictionFileError(UsageError):
    """A prediction file that cannot be read, with the file and line named (a ValueError; the `hierseg`
    command prints it as one line, see :mod:`hierseg.errors`)."""


# ---------------------------------------------------------------------------------------- scores
def check_score(value: object, where: str = "score") -> float:
    """One score (a number or its text) -> float64 in [0, 1].

    Raises:
      ValueError: ``"{where}: score {value!r} is not a number in [0, 1]"`` for text that is not a
        number, NaN, +-inf, a negative score or one above 1.
    """
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        s = math.nan
    if not (0.0 <= s <= 1.0):  # also False for NaN
        raise ValueError(f"{where}: score {value!r} is not a number in [0, 1]")
    return s


def check_scores(scores: Sequence[float] | np.ndarray, where: str = "scores") -> np.ndarray:
    """[N] scores -> float64 [N], all in [0, 1].

    Raises:
      ValueError: naming ``where`` and the first bad instance: ``"{where}: instance {k}: score nan is
        not a number in [0, 1]"``.
    """
    arr = np.asarray(scores, np.float64).reshape([-1])
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if len(bad):
        k = int(bad[0])
        raise ValueError(f"{where}: instance {k}: score {float(arr[k])!r} is not a number in [0, 1]")
    return arr


# ------------------------------------------------------------------------------------ JSON lines
def detections_to_json(det: Detections) -> str:
    """One image's detections -> one JSON line (without the newline); scores rounded to 6 decimals."""
    return json.dumps(
        {
            "image_id": det.image_id,
            "height": det.height,
            "width": det.width,
            "instances": [
                {
                    "class": c,
                    "score": round(float(s), 6),
                    "box": [round(float(v), 6) for v in b],
                    "mask": r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"],
                    "label_path": list(p),
                }
                for c, s, b, r, p in zip(det.classes, det.scores, det.boxes, det.rles, det.label_paths)
            ],
        }
    )


def detections_from_json(line: str) -> Detections:
    """One JSON line -> Detections.

    Raises:
      ValueError: for bad JSON, missing keys, a score outside [0, 1] (NaN and inf included) or
        mismatched counts; the message names the instance.
    """
    try:
        d = json.loads(line)
        h, w = int(d["height"]), int(d["width"])
        inst = d["instances"]
        scores = [check_score(i["score"], f"instance {k}") for k, i in enumerate(inst)]
        return Detections(
            str(d["image_id"]),
            h,
            w,
            [str(i["class"]) for i in inst],
            np.asarray(scores, np.float64),
            np.array([i["box"] for i in inst], np.float32).reshape([-1, 4]),
            [{"size": [h, w], "counts": i["mask"].encode("ascii")} for i in inst],
            [tuple(i.get("label_path", ())) for i in inst],
        )
    except (KeyError, TypeError, AttributeError, UnicodeEncodeError) as e:
        raise ValueError(f"bad detections line: {type(e).__name__}: {e}") from None


def write_jsonl(path: str, detections: Iterable[Detections]) -> int:
    """Writes detections as JSON lines, atomically (:mod:`hierseg.atomic_write`); returns the number of images."""
    count = 0
    with atomic_write.atomic_open(path, "w", newline="") as f:
        for d in detections:
            f.write(detections_to_json(d) + "\n")
            count += 1
    return count


def read_jsonl(path: str) -> Iterator[Detections]:
    """Streams detections from a JSON-lines file.

    Raises:
      PredictionFileError: ``"{path}:{line}: ..."`` for a bad line (bad JSON, bad score, non-UTF-8 byte).
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PredictionFileError(
                    f"{path}:{lineno}: non-UTF-8 byte 0x{raw[e.start]:02x} at column {e.start + 1}"
                ) from None
            if line.strip():
                try:
                    yield detections_from_json(line)
                except ValueError as e:
                    raise PredictionFileError(f"{path}:{lineno}: {e}") from None


# ------------------------------------------------------------------------------------------ CSVs
def allow_long_csv_fields() -> None:
    """Lifts the csv module's 128 KiB field limit: a busy image's PredictionString is megabytes long."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def non_utf8_problem(fields: Sequence[str]) -> str | None:
    """For fields read by :func:`csv_rows`: None if they were valid UTF-8, else where the first bad byte is."""
    for k, text in enumerate(fields):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # surrogateescape turned each bad byte into U+DC80..U+DCFF
            byte = ord(text[e.start]) - 0xDC00
            return f"non-UTF-8 byte 0x{byte:02x} in field {k + 1} at character {e.start + 1}"
    return None


def csv_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """Every non-empty row of a CSV file as ``(line, fields)``, the header included (line 1).

    Bytes that are not UTF-8 do not stop the reading: they come through as lone surrogates, which
    :func:`non_utf8_problem` reports (the validator lists them; the readers raise).
    """
    allow_long_csv_fields()
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        for row in reader:
            if row:
                yield reader.line_num, row


def parse_image_size(width_text: str, height_text: str) -> tuple[int, int]:
    """ImageWidth, ImageHeight texts -> ``(height, width)``, both positive ints (else ValueError)."""
    try:
        w, h = int(width_text), int(height_text)
    except ValueError:
        raise ValueError(f"ImageWidth/ImageHeight {width_text!r}/{height_text!r} are not integers") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"image size {w}x{h} (width x height) is not positive")
    return h, w


def split_prediction_string(text: str) -> list[tuple[str, str, str]]:
    """A PredictionString -> its ``(MID, score text, EncodedMask)`` triples (not checked).

    Raises:
      ValueError: when the token count is not a multiple of 3.
    """
    tokens = text.split()
    if len(tokens) % 3:
        raise ValueError(f"PredictionString has {len(tokens)} tokens, not a multiple of 3 (MID score EncodedMask)")
    return [(tokens[k], tokens[k + 1], tokens[k + 2]) for k in range(0, len(tokens), 3)]


def parse_prediction_string(text: str, height: int, width: int) -> tuple[list[str], np.ndarray, list[dict]]:
    """``MID score EncodedMask ...`` -> (classes, scores float64 [N], RLEs at [height, width]).

    Raises:
      ValueError: for a token count that is not a multiple of 3, a score that is not a number in
        [0, 1], or an undecodable mask (the triple is named, 1-based).
    """
    from hierseg.oid.mask_codec import rles_from_oid_masks

    triples = split_prediction_string(text)
    scores = [check_score(score, f"triple {t} ({mid})") for t, (mid, score, _) in enumerate(triples, start=1)]
    try:
        rles = rles_from_oid_masks([encoded for _, _, encoded in triples], height, width)
    except RleError as e:
        raise ValueError(f"triple {e.index + 1} ({triples[e.index][0]}): {e}") from None
    return [mid for mid, _, _ in triples], np.asarray(scores, np.float64), rles


def format_prediction_string(triples: Iterable[tuple[str, float, str]]) -> str:
    """``(MID, score, EncodedMask)`` triples -> a PredictionString (scores with 6 significant digits)."""
    return " ".join(f"{mid} {score:.6g} {encoded}" for mid, score, encoded in triples)


def _detections(image_id: str, h: int, w: int, classes: list[str], scores, rles: list[dict]) -> Detections:
    return Detections(image_id, h, w, classes, scores, rle_boxes(rles).astype(np.float32), rles)


def _data_rows(path: str, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    rows = csv_rows(path)
    first = next(rows, None)
    if first is None or tuple(first[1]) != header:
        raise PredictionFileError(f"{path}:1: expected the header {','.join(header)!r}")
    for line, row in rows:
        problem = non_utf8_problem(row)
        if problem:
            raise PredictionFileError(f"{path}:{line}: {problem}")
        if len(row) != len(header):
            raise PredictionFileError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
        yield line, row


@dataclass(frozen=True)
class SubmissionRow:
    """One unparsed row of a submission CSV: cheap to read and to send to another process, parsed by
    :meth:`detections` (where the masks are decoded, e.g. in a worker)."""

    path: str
    line: int
    image_id: str
    width: str
    height: str
    prediction_string: str

    def detections(self) -> Detections:
        """The row's instances (empty label paths, tight boxes).

        Raises:
          PredictionFileError: ``"{path}:{line}: image {ImageID}: ..."`` for a bad size, score or mask.
        """
        try:
            h, w = parse_image_size(self.width, self.height)
            classes, scores, rles = parse_prediction_string(self.prediction_string, h, w)
        except ValueError as e:
            raise PredictionFileError(f"{self.path}:{self.line}: image {self.image_id}: {e}") from None
        return _detections(self.image_id, h, w, classes, scores, rles)


def parse_submission_rows(rows: Sequence[SubmissionRow]) -> list[Detections]:
    """:meth:`SubmissionRow.detections` of many rows, their masks checked in one vectorized pass
    (much faster for a batch of small rows); a bad row raises exactly as alone.

    Raises:
      PredictionFileError: as :meth:`SubmissionRow.detections`, for the first bad row.
    """
    from hierseg.oid.mask_codec import counts_from_oid_masks_unchecked
    from hierseg.rle import count_pixels_many

    try:
        sizes = [parse_image_size(r.width, r.height) for r in rows]
        triples = [split_prediction_string(r.prediction_string) for r in rows]
        scores = [
            [check_score(score, f"triple {t} ({mid})") for t, (mid, score, _) in enumerate(tr, start=1)]
            for tr in triples
        ]
        counts = counts_from_oid_masks_unchecked([e for tr in triples for _, _, e in tr])
        ok = (
            counts is not None
            and (count_pixels_many(counts) == np.repeat([h * w for h, w in sizes], [len(tr) for tr in triples])).all()
        )
    except ValueError:  # a bad row: parse them one by one for its exact message
        ok = False
    if not ok:
        return [r.detections() for r in rows]
    out, k = [], 0
    for r, (h, w), tr, sc in zip(rows, sizes, triples, scores):
        rles = [{"size": [h, w], "counts": c} for c in counts[k : k + len(tr)]]
        out.append(_detections(r.image_id, h, w, [mid for mid, _, _ in tr], np.asarray(sc, np.float64), rles))
        k += len(tr)
    return out


def submission_rows(path: str) -> Iterator[SubmissionRow]:
    """Streams the rows of a submission CSV, unparsed; the header, the field count and the encoding
    (UTF-8) are checked here (:class:`PredictionFileError` naming the line)."""
    for line, (image_id, width, height, text) in _data_rows(path, SUBMISSION_HEADER):
        yield SubmissionRow(path, line, image_id, width, height, text)


def read_submission_csv(path: str) -> Iterator[Detections]:
    """Streams a submission CSV, one image per row (instances with empty label paths, tight boxes).

    Raises:
      PredictionFileError: ``"{path}:{line}: image {ImageID}: ..."`` for a bad row.
    """
    for row in submission_rows(path):
        yield row.detections()


def read_instance_csv(path: str) -> Iterator[Detections]:
    """Reads a per-instance CSV, grouped by image (first-seen order; rows of an image need not be adjacent)."""
    from hierseg.oid.mask_codec import rle_from_oid_mask

    images: dict[str, tuple[int, int, list[str], list[float], list[dict]]] = {}
    for line, (image_id, width, height, mid, score, encoded) in _data_rows(path, INSTANCE_CSV_HEADER):
        try:
            h, w = parse_image_size(width, height)
            entry = images.setdefault(image_id, (h, w, [], [], []))
            if entry[:2] != (h, w):
                raise ValueError(f"size {w}x{h} here and {entry[1]}x{entry[0]} on an earlier line (width x height)")
            s = check_score(score, mid)
            rle = rle_from_oid_mask(encoded, h, w)
        except ValueError as e:
            raise PredictionFileError(f"{path}:{line}: image {image_id}: {e}") from None
        entry[2].append(mid)
        entry[3].append(s)
        entry[4].append(rle)
    for image_id, (h, w, classes, scores, rles) in images.items():
        yield _detections(image_id, h, w, classes, scores, rles)


class SubmissionCsvWriter:
    """Writes a submission CSV atomically: rows go to a temporary file renamed into place on a clean exit.

    Usage::

        with SubmissionCsvWriter(path) as out:
            out.write_row(image_id, height, width, [(mid, score, encoded_mask), ...])
    """

    def __init__(self, path: str):
        self.path = path
        self._opened = atomic_write.atomic_open(path, "w", newline="")
        self._writer = csv.writer(self._opened.__enter__(), lineterminator="\n")
        self._writer.writerow(SUBMISSION_HEADER)

    def write_row(self, image_id: str, height: int, width: int, triples: Iterable[tuple[str, float, str]]) -> None:
        """One image's row (an empty PredictionString when there are no triples)."""
        self._writer.writerow((image_id, int(width), int(height), format_prediction_string(triples)))

    def __enter__(self) -> SubmissionCsvWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._opened.__exit__(exc_type, exc, tb)  # renames into place, or removes the temporary file
