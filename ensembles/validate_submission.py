"""Checking a challenge submission CSV and reporting every problem with its line.

Checks (each problem names its 1-based line in the file, the header being line 1):

* ``header``: the first line is ``ImageID,ImageWidth,ImageHeight,PredictionString``;
* ``encoding``: a byte that is not UTF-8 (the row is not checked further);
* ``fields``: every row has 4 fields;
* ``image_id``: an empty ImageID, or one not in the expected image set;
* ``duplicate``: an ImageID on a second row (the first row's line is named);
* ``missing``: an expected image without a row (reported with line None, for the whole file);
* ``size``: ImageWidth/ImageHeight not positive integers, or not the image's size;
* ``tokens``: a PredictionString whose token count is not a multiple of 3;
* ``mid``: a LabelName not in the class set;
* ``score``: a score that is not a number in [0, 1];
* ``mask``: an EncodedMask that is not base64 of a zlib stream of COCO RLE counts;
* ``mask_size``: a mask that decodes but covers a different number of pixels than ImageWidth x ImageHeight.

Rows, triples, scores and masks are read by the functions of :mod:`hierseg.prediction_file` and
:mod:`hierseg.oid.mask_codec` that the readers use, so what passes here reads there.

Streaming: rows are read one at a time and masks are checked on their run lengths (no dense decode),
so a 100k-image submission needs memory for one row plus the set of ImageIDs seen.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hierseg.oid.mask_codec import MaskCodecError, decode_counts, rle_from_oid_mask
from hierseg.prediction_file import (
    SUBMISSION_HEADER,
    check_score,
    csv_rows,
    non_utf8_problem,
    parse_image_size,
    split_prediction_string,
)

MAX_LISTED = 5  # triples listed by number in one problem; the count covers them all


@dataclass(frozen=True)
class SubmissionProblem:
    """One problem of a submission file. ``line`` is 1-based (header = 1); None for the whole file."""

    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}: [{self.kind}] {self.message}"


@dataclass
class ValidationStats:
    rows: int = 0
    triples: int = 0
    problems_by_kind: dict[str, int] = field(default_factory=dict)


def _mask_problem(encoded: str, height: int, width: int) -> tuple[str, str] | None:
    """None if the mask is valid at [height, width], else (kind, detail)."""
    try:
        rle_from_oid_mask(encoded, height, width)
        return None
    except MaskCodecError as e:
        detail = str(e)
    # Undecodable or of another size? Decode the runs alone to tell.
    try:
        pixels = int(decode_counts(zlib.decompress(base64.b64decode(encoded, validate=True))).sum())
    except (ValueError, zlib.error, MaskCodecError):
        return "mask", detail
    if pixels != height * width:
        return "mask_size", (
            f"mask covers {pixels} pixels, ImageWidth x ImageHeight = {width} x {height} = {height * width}"
        )
    return "mask", detail


def _row_problems(
    triples: list[tuple[str, str, str]], height: int, width: int, valid_mids: frozenset[str] | None
) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for t, (mid, score, encoded) in enumerate(triples, start=1):
        if valid_mids is not None and mid not in valid_mids:
            found.setdefault("mid", []).append((t, f"{mid!r} is not a class of the challenge"))
        try:
            check_score(score)
        except ValueError:
            found.setdefault("score", []).append((t, f"score {score!r} is not a number in [0, 1]"))
        problem = _mask_problem(encoded, height, width)
        if problem:
            found.setdefault(problem[0], []).append((t, problem[1]))
    return found


def _check_row(line, row, add, seen, expected, sizes, mids, stats) -> None:
    """The checks of one 4-field row (see the module docstring), reported through ``add``."""
    image_id, width_text, height_text, text = row
    if not image_id:
        add(line, "image_id", "empty ImageID")
    elif image_id in seen:
        add(line, "duplicate", f"ImageID {image_id} already has a row on line {seen[image_id]}")
    else:
        seen[image_id] = line
        if expected is not None and image_id not in expected:
            add(line, "image_id", f"ImageID {image_id} is not an image of the set")
    try:
        height, width = parse_image_size(width_text, height_text)
    except ValueError:
        add(line, "size", f"ImageWidth/ImageHeight {width_text!r}/{height_text!r} are not positive integers")
        return
    if sizes is not None and image_id in sizes and tuple(sizes[image_id]) != (height, width):
        h, w = sizes[image_id]
        add(line, "size", f"image {image_id} is {w}x{h} (width x height), the row says {width}x{height}")
    try:
        triples = split_prediction_string(text)
    except ValueError:
        tokens = text.split()
        add(
            line,
            "tokens",
            f"{len(tokens)} tokens in PredictionString, not a multiple of 3 "
            "(MID score EncodedMask); the last incomplete triple is not checked",
        )
        triples = split_prediction_string(" ".join(tokens[: len(tokens) - len(tokens) % 3]))
    stats.triples += len(triples)
    for kind, items in _row_problems(triples, height, width, mids).items():
        listed = ", ".join(str(t) for t, _ in items[:MAX_LISTED]) + (", ..." if len(items) > MAX_LISTED else "")
        add(line, kind, f"image {image_id}: {len(items)} triple(s) ({listed}): {items[0][1]}")


def validate_submission_report(
    path: str,
    *,
    expected_images: Mapping[str, tuple[int, int]] | Iterable[str] | None = None,
    valid_mids: Iterable[str] | None = None,
) -> tuple[list[SubmissionProblem], ValidationStats]:
    """Like :func:`validate_submission`, also returning row and triple counts."""
    problems: list[SubmissionProblem] = []
    stats = ValidationStats()
    mids = frozenset(valid_mids) if valid_mids is not None else None
    sizes = expected_images if isinstance(expected_images, Mapping) else None
    expected = set(expected_images) if expected_images is not None else None
    seen: dict[str, int] = {}

    def add(line: int | None, kind: str, message: str) -> None:
        problems.append(SubmissionProblem(line, kind, message))
        stats.problems_by_kind[kind] = stats.problems_by_kind.get(kind, 0) + 1

    rows = csv_rows(path)
    first = next(rows, None)
    if first is None:
        add(1, "header", f"the file is empty; expected the header {','.join(SUBMISSION_HEADER)}")
    elif non_utf8_problem(first[1]) or tuple(h.strip() for h in first[1]) != SUBMISSION_HEADER:
        add(first[0], "header", f"header is {','.join(first[1])!r}, expected {','.join(SUBMISSION_HEADER)!r}")
    for line, row in rows:
        stats.rows += 1
        encoding = non_utf8_problem(row)
        if encoding:
            add(line, "encoding", f"{encoding}; the row is not checked further")
            continue
        if len(row) != 4:
            add(line, "fields", f"{len(row)} fields, expected 4 (ImageID,ImageWidth,ImageHeight,PredictionString)")
            continue
        _check_row(line, row, add, seen, expected, sizes, mids, stats)
    if expected is not None:
        for image_id in sorted(expected - set(seen)):
            add(None, "missing", f"image {image_id} has no row")
    return problems, stats


def validate_submission(
    path: str,
    *,
    expected_images: Mapping[str, tuple[int, int]] | Iterable[str] | None = None,
    valid_mids: Iterable[str] | None = None,
    images: str | None = None,
) -> list[SubmissionProblem]:
    """Every problem of a submission CSV, in file order (missing images last); empty when it is valid.

    Args:
      path: the submission CSV.
      expected_images: the image set: ImageID -> (height, width) to also check sizes, or just the
        ImageIDs; None skips the set checks (unknown, missing) and the size comparison.
      valid_mids: the class set; None skips the class check.
      images: an image folder whose images (and header sizes) are the image set, instead of
        ``expected_images``.
    """
    if images is not None:
        if expected_images is not None:
            raise ValueError("give expected_images or images, not both")
        from ensembles.image_set import image_sizes_from_dir

        expected_images = image_sizes_from_dir(images)
    return validate_submission_report(path, expected_images=expected_images, valid_mids=valid_mids)[0]
