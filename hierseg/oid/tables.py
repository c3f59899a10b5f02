"""Readers of the Open Images annotation CSVs: segmentation masks, boxes and image-level labels.

All three return a pandas DataFrame with the published column names and a :class:`SkipCounts`:

* segmentation CSV: ``MaskPath, ImageID, LabelName, BoxID`` (str), ``BoxXMin, BoxXMax, BoxYMin,
  BoxYMax`` (float64, normalized to [0, 1]), ``PredictedIoU`` (float64, NaN when empty), ``Clicks``
  (str, ``;``-separated ``x y label`` triples, may be empty);
* bbox CSV: ``ImageID, LabelName`` (str), ``XMin, XMax, YMin, YMax`` (float64), ``IsGroupOf`` (bool);
* image-level labels: ``ImageID, LabelName`` (str), ``Confidence`` (int8, 1 = verified present,
  0 = verified absent).

IDs are read as strings, never as numbers: all-digit hex ImageIDs and BoxIDs keep their leading zeros.
Columns are located by the header, so the longer V5/V6 files (extra ``Source``, ``IsOccluded``, ...
columns) read too; extra columns are dropped. In the V6 bbox files ``IsGroupOf`` may be ``-1``
(unknown), read as False.

Bad input: with ``on_error="raise"`` the first bad row (in file order) raises :class:`OidFormatError`
``"{path}:{line}: {what}"`` (1-based line, header = line 1). With ``on_error="skip"`` bad rows are
dropped and counted per reason (:data:`SKIP_REASONS`), with up to :data:`MAX_EXAMPLES` examples per
reason as ``"{path}:{line}: {row}"``; a bad header always raises. A row with several problems is
counted once, under the first reason in :data:`SKIP_REASONS` order. Exact repeats of an earlier row
(every column equal) are dropped in both modes and counted as ``duplicate_row``: three identical
lines would otherwise be three instances.

Speed: the file is parsed once by pyarrow (multi-threaded, every column as a string), numbers are
converted and rows checked with vectorized operations; the line number of a bad row is only looked
up (by a second, sequential scan) when raising.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from hierseg.oid.bad_rows import MAX_EXAMPLES, SKIP_REASONS, SkipCounts, locate_row, locate_rows, row_text
from hierseg.oid.errors import OidFormatError
from hierseg.oid.layout import open_binary

SEGMENTATION_COLUMNS = (
    "MaskPath",
    "ImageID",
    "LabelName",
    "BoxID",
    "BoxXMin",
    "BoxXMax",
    "BoxYMin",
    "BoxYMax",
    "PredictedIoU",
    "Clicks",
)
BBOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf")
IMAGE_LABELS_COLUMNS = ("ImageID", "LabelName", "Confidence")

__all__ = [
    "BBOX_COLUMNS",
    "IMAGE_LABELS_COLUMNS",
    "SEGMENTATION_COLUMNS",
    "SKIP_REASONS",
    "OidFormatError",
    "SkipCounts",
    "read_bbox_csv",
    "read_image_labels_csv",
    "read_segmentation_csv",
]


@dataclass(frozen=True)
class _Schema:
    name: str
    columns: tuple[str, ...]  # required columns, published order
    floats: tuple[str, ...]  # numeric, must be present
    optional_floats: tuple[str, ...] = ()  # numeric, empty allowed (-> NaN)
    boxes: tuple[tuple[str, str], ...] = ()  # (min, max) column pairs, in [0, 1]
    not_empty: tuple[str, ...] = ("ImageID", "LabelName")


_SEGMENTATION = _Schema(
    "segmentation CSV",
    SEGMENTATION_COLUMNS,
    floats=("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"),
    optional_floats=("PredictedIoU",),
    boxes=(("BoxXMin", "BoxXMax"), ("BoxYMin", "BoxYMax")),
    not_empty=("MaskPath", "ImageID", "LabelName", "BoxID"),
)
_BBOX = _Schema(
    "bbox CSV",
    BBOX_COLUMNS,
    floats=("XMin", "XMax", "YMin", "YMax", "IsGroupOf"),
    boxes=(("XMin", "XMax"), ("YMin", "YMax")),
)
_LABELS = _Schema("image-labels CSV", IMAGE_LABELS_COLUMNS, floats=("Confidence",))


# ----------------------------------------------------------------------------------------- file access


def _read_header(path: str, schema: _Schema) -> list[str]:
    """The file's column names (stripped, BOM dropped); raises OidFormatError ``path:1`` when the file
    is unreadable, empty, lacks a required column or repeats one."""
    try:
        with open_binary(path) as f:
            first = f.readline()
    except OSError as e:  # FileNotFoundError and gfile's NotFoundError (an OSError subclass)
        raise OidFormatError(f"{path}: cannot read {schema.name}: {e}") from None
    expected = ",".join(schema.columns)
    text = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        raise OidFormatError(f"{path}:1: empty file or header; expected header '{expected}'")
    header = [h.strip() for h in next(csv.reader([text]))]
    missing = [c for c in schema.columns if c not in header]
    if missing:
        raise OidFormatError(
            f"{path}:1: wrong header for a {schema.name}: missing column(s) {missing}; "
            f"expected '{expected}', got '{text[:200]}'"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise OidFormatError(f"{path}:1: header repeats column(s) {dupes}")
    return header


# --------------------------------------------------------------------------------------- the reader
def _to_float(col: pa.ChunkedArray, optional: bool) -> tuple[np.ndarray, np.ndarray]:
    """A string column -> (float64 values, bool ``bad`` = not a number). Empty -> NaN if optional."""
    if optional:
        col = pc.if_else(pc.equal(pc.utf8_trim_whitespace(col), ""), pa.scalar(None, pa.string()), col)
    try:
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        return values.astype(np.float64), np.zeros(len(values), bool)
    except pa.ArrowInvalid:  # slow path, only for files with a bad value
        s = col.to_pandas()
        values = pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        bad = np.isnan(values) & s.notna().to_numpy()
        # "nan" spelled out parses as a number; keep it (it fails the box check instead).
        bad &= ~s.fillna("").str.strip().str.lower().isin(["nan"]).to_numpy()
        return values, bad


def _parse(path: str, header: list[str], schema: _Schema) -> tuple[pa.Table, list[str]]:
    """Parses the rows after the header, every schema column as a string. Returns the table and the
    text of the rows dropped for a wrong field count (pyarrow reports them without a line)."""
    bad_field_count: list[str] = []

    def on_invalid_row(row) -> str:
        bad_field_count.append(row.text)
        return "skip"

    # Local files are handed to pyarrow by name (native, parallel reads); URLs through tf.io.gfile.
    with contextlib.nullcontext(path) if "://" not in path else open_binary(path) as source:
        try:
            table = pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(skip_rows=1, column_names=header, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row),
                convert_options=pacsv.ConvertOptions(
                    include_columns=list(schema.columns),
                    column_types={c: pa.string() for c in schema.columns},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as e:
            if "Could not skip initial" not in str(e):
                raise OidFormatError(f"{path}: cannot parse {schema.name}: {e}") from None
            # A header without a newline and no rows.
            table = pa.table({c: pa.array([], pa.string()) for c in schema.columns})
    return table, bad_field_count


def _check_rows(table: pa.Table, schema: _Schema, valid_mids) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Checks every row: returns the int16 ``[N]`` reason code per row (index into SKIP_REASONS, -1 =
    ok; the first failing check wins) and the schema's numeric columns as float64 ``[N]``."""
    n = table.num_rows
    reason = np.full(n, -1, np.int16)

    def mark(bad: np.ndarray, name: str) -> None:
        reason[(reason < 0) & bad] = SKIP_REASONS.index(name)

    for c in schema.not_empty:
        mark(
            pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table[c])), 0).to_numpy(zero_copy_only=False), "empty_field"
        )
    numbers: dict[str, np.ndarray] = {}
    for c in (*schema.floats, *schema.optional_floats):
        numbers[c], bad = _to_float(table[c], optional=c in schema.optional_floats)
        mark(bad, "non_numeric")
    for lo, hi in schema.boxes:
        a, b = numbers[lo], numbers[hi]
        with np.errstate(invalid="ignore"):
            mark(~((a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)), "box_out_of_range")
            mark(a > b, "box_min_gt_max")
    if "IsGroupOf" in numbers:
        mark(~np.isin(numbers["IsGroupOf"], (0.0, 1.0, -1.0)), "bad_is_group_of")
    if "Confidence" in numbers:
        mark(~np.isin(numbers["Confidence"], (0.0, 1.0)), "bad_confidence")
    if valid_mids is not None:
        known = pc.is_in(table["LabelName"], value_set=pa.array(sorted(set(valid_mids)), pa.string()))
        mark(~known.to_numpy(zero_copy_only=False), "unknown_mid")
    _mark_duplicates(table, schema, reason)
    return reason, numbers


def _mark_duplicates(table: pa.Table, schema: _Schema, reason: np.ndarray) -> None:
    """Sets ``reason`` to duplicate_row on exact repeats of an earlier valid row (the first is kept)."""
    valid = np.flatnonzero(reason < 0)
    if not len(valid):
        return
    # Native group-by (no Python strings): the first row of each distinct content is kept.
    rows = table.select(list(schema.columns)).take(pa.array(valid)).append_column("_row", pa.array(valid))
    first = rows.group_by(list(schema.columns), use_threads=False).aggregate([("_row", "min")])["_row_min"]
    repeat = np.ones(table.num_rows, bool)
    repeat[first.to_numpy()] = False
    reason[valid[repeat[valid]]] = SKIP_REASONS.index("duplicate_row")


def _count_skips(path: str, table: pa.Table, ncols: int, reason: np.ndarray, bad_field_count: list[str]) -> SkipCounts:
    """The skip report: rows per reason, in SKIP_REASONS order, with examples named ``file:line``."""
    skips = SkipCounts()
    examples = {code: np.flatnonzero(reason == code)[:MAX_EXAMPLES] for code in np.unique(reason[reason >= 0])}
    if examples or bad_field_count:  # name the examples by file:line (one scan, only when rows were skipped)
        lines, bad_lines = locate_rows(path, ncols, (int(i) for rows in examples.values() for i in rows))
        bad_field_count = [f"{path}:{ln}: {t}" for ln, t in zip(bad_lines, bad_field_count)] + bad_field_count[
            len(bad_lines) :
        ]
    if bad_field_count:
        skips.add("field_count", len(bad_field_count), bad_field_count)
    for code, rows in examples.items():
        total = int(np.count_nonzero(reason == code))
        skips.add(SKIP_REASONS[code], total, (f"{path}:{lines[int(i)]}: {row_text(table, i)}" for i in rows))
    # Keep the published order of reasons in the report.
    skips.counts = {r: skips.counts[r] for r in SKIP_REASONS if r in skips.counts}
    return skips


def _to_dataframe(table: pa.Table, schema: _Schema, numbers: dict[str, np.ndarray], keep: np.ndarray) -> pd.DataFrame:
    """The kept rows (bool ``keep [N]``) with the published dtypes (module docstring)."""
    columns: dict[str, object] = {}
    for c in schema.columns:
        if c in numbers:
            columns[c] = numbers[c][keep]
        else:
            col = table[c] if keep.all() else table[c].filter(pa.array(keep))
            columns[c] = col.to_pandas()
    df = pd.DataFrame(columns)
    if "IsGroupOf" in df:
        df["IsGroupOf"] = df["IsGroupOf"] == 1.0
    if "Confidence" in df:
        df["Confidence"] = df["Confidence"].astype(np.int8)
    return df.reset_index(drop=True)


def _read(path: str, schema: _Schema, valid_mids, on_error: str) -> tuple[pd.DataFrame, SkipCounts]:
    """The shared reader behind the three public ones (arguments and result as theirs)."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = str(path)
    header = _read_header(path, schema)
    table, bad_field_count = _parse(path, header, schema)
    reason, numbers = _check_rows(table, schema, valid_mids)
    duplicates = reason == SKIP_REASONS.index("duplicate_row")
    bad_rows = np.flatnonzero((reason >= 0) & ~duplicates)
    if on_error == "raise" and (len(bad_rows) or bad_field_count):
        _raise_first(path, schema, table, header, reason, bad_rows, numbers)
    skips = _count_skips(path, table, len(header), reason, bad_field_count)
    return _to_dataframe(table, schema, numbers, reason < 0), skips


def _raise_first(
    path: str,
    schema: _Schema,
    table: pa.Table,
    header: list[str],
    reason: np.ndarray,
    bad_rows: np.ndarray,
    numbers: dict[str, np.ndarray],
) -> None:
    """Raises OidFormatError ``path:line: what`` for the first bad row in file order: the earlier of
    the first wrong-field-count row and the first row that failed a check (``bad_rows[0]``)."""
    first = int(bad_rows[0]) if len(bad_rows) else None
    field_bad, line = locate_row(path, len(header), first)
    if field_bad is not None and (line is None or field_bad[0] < line):
        raise OidFormatError(
            f"{path}:{field_bad[0]}: malformed row: expected {len(header)} fields "
            f"({','.join(header)}), got {field_bad[1]}"
        )
    if first is None or line is None:  # cannot happen unless the file changed under us
        raise OidFormatError(f"{path}: malformed {schema.name}")
    code = SKIP_REASONS[reason[first]]
    row = {c: table[c][first].as_py() for c in schema.columns}
    if code == "empty_field":
        what = "malformed row: empty " + ", ".join(c for c in schema.not_empty if not row[c].strip())
    elif code == "non_numeric":
        cols = [
            c
            for c in (*schema.floats, *schema.optional_floats)
            if np.isnan(numbers[c][first])
            and row[c].strip().lower() != "nan"
            and not (c in schema.optional_floats and not row[c].strip())
        ]
        what = "malformed row: " + ", ".join(f"{c} is not a number: {row[c]!r}" for c in cols)
    elif code == "box_out_of_range":
        what = "box outside [0, 1]: " + ", ".join(f"{c}={row[c]}" for pair in schema.boxes for c in pair)
    elif code == "box_min_gt_max":
        what = "box min > max: " + ", ".join(
            f"{lo}={row[lo]} > {hi}={row[hi]}" for lo, hi in schema.boxes if numbers[lo][first] > numbers[hi][first]
        )
    elif code == "bad_is_group_of":
        what = f"IsGroupOf must be 0 or 1 (or -1 = unknown), got {row['IsGroupOf']!r}"
    elif code == "bad_confidence":
        what = f"Confidence must be 0 or 1, got {row['Confidence']!r}"
    else:
        what = f"LabelName {row['LabelName']} is not in the class list"
    raise OidFormatError(f"{path}:{line}: {what}")


# ------------------------------------------------------------------------------------ public readers
def read_segmentation_csv(
    path: str, *, valid_mids: Iterable[str] | None = None, on_error: str = "raise"
) -> tuple[pd.DataFrame, SkipCounts]:
    """Reads a segmentation CSV (``challenge-2019-{split}-segmentation-masks.csv``); local or gs://.

    Args:
      path: the CSV file.
      valid_mids: if given, rows whose LabelName is not among them are bad (``unknown_mid``).
      on_error: "raise" (the first bad row raises :class:`OidFormatError` naming file and line) or
        "skip" (bad rows are dropped and counted in the returned :class:`SkipCounts`).

    Returns:
      (DataFrame with :data:`SEGMENTATION_COLUMNS`, see the module docstring for dtypes; SkipCounts).
    """
    return _read(path, _SEGMENTATION, valid_mids, on_error)


def read_bbox_csv(
    path: str, *, valid_mids: Iterable[str] | None = None, on_error: str = "raise"
) -> tuple[pd.DataFrame, SkipCounts]:
    """Reads a bbox CSV (``ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf``); see
    :func:`read_segmentation_csv` for the arguments. ``IsGroupOf`` is returned as bool."""
    return _read(path, _BBOX, valid_mids, on_error)


def read_image_labels_csv(
    path: str, *, valid_mids: Iterable[str] | None = None, on_error: str = "raise"
) -> tuple[pd.DataFrame, SkipCounts]:
    """Reads an image-level labels CSV (``ImageID,LabelName,Confidence``); see
    :func:`read_segmentation_csv` for the arguments. ``Confidence`` is int8, 1 present / 0 absent."""
    return _read(path, _LABELS, valid_mids, on_error)
