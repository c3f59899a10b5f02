"""Bad rows of the annotation CSV readers (:mod:`hierseg.oid.tables`): the reasons a row is skipped,
the per-reason :class:`SkipCounts` a reader returns, and the file line a parsed row came from.

The readers parse a file with pyarrow, which does not report line numbers; the line of a row is
found here by a second, sequential :mod:`csv` scan, run only when a row is reported (raise mode) or
skipped (skip mode), so that clean files are read once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from hierseg.oid.layout import open_binary

# Reasons a row is skipped, in the order they are checked.
SKIP_REASONS = (
    "field_count",
    "empty_field",
    "non_numeric",
    "box_out_of_range",
    "box_min_gt_max",
    "bad_is_group_of",
    "bad_confidence",
    "unknown_mid",
    "duplicate_row",
)
MAX_EXAMPLES = 3  # example rows kept per reason: enough to find the pattern, bounded on a bad file


@dataclass
class SkipCounts:
    """Rows dropped by a reader in skip mode: a count and a few example rows per reason."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, reason: str, n: int = 1, examples: Iterable[str] = ()) -> None:
        if n <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + int(n)
        kept = self.examples.setdefault(reason, [])
        for ex in examples:
            if len(kept) >= MAX_EXAMPLES:
                break
            kept.append(ex)

    def merge(self, other: SkipCounts) -> SkipCounts:
        """Adds ``other``'s counts into this one (e.g. over several files); returns self."""
        for reason, n in other.counts.items():
            self.add(reason, n, other.examples.get(reason, ()))
        return self

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
        }

    def __str__(self) -> str:
        if not self.total:
            return "no rows skipped"
        return f"{self.total} rows skipped (" + ", ".join(f"{k}: {v}" for k, v in self.counts.items()) + ")"


def _numbered_rows(path: str, ncols: int) -> Iterator[tuple[int | None, int, int]]:
    """Sequential scan of the rows after the header (blank lines skipped, as pyarrow does): per row,
    (its 0-based index among the well-formed data rows, None for a wrong field count; its file line;
    its field count)."""
    index = -1
    with open_binary(path) as f:
        reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8-sig", newline=""))
        next(reader, None)  # header
        for row in reader:
            if not row:
                continue
            if len(row) != ncols:
                yield None, reader.line_num, len(row)
                continue
            index += 1
            yield index, reader.line_num, ncols


def locate_row(path: str, ncols: int, data_index: int | None) -> tuple[tuple[int, int] | None, int | None]:
    """The (line, field count) of the first row with a wrong field count, and the line of the
    ``data_index``-th well-formed data row (0-based)."""
    first_bad: tuple[int, int] | None = None
    for index, line, nfields in _numbered_rows(path, ncols):
        if index is None:
            if first_bad is None:
                first_bad = (line, nfields)
        elif index == data_index:
            return first_bad, line
        elif data_index is None and first_bad is not None:
            break
    return first_bad, None


def locate_rows(path: str, ncols: int, data_indices: Iterable[int]) -> tuple[dict[int, int], list[int]]:
    """The file line of each of ``data_indices`` (0-based well-formed data rows) and the lines of the
    first MAX_EXAMPLES rows with a wrong field count, in one scan. Only run when something was
    skipped, to name examples by ``file:line``."""
    wanted, found, bad = set(data_indices), {}, []
    for index, line, _ in _numbered_rows(path, ncols):
        if index is None:
            if len(bad) < MAX_EXAMPLES:
                bad.append(line)
        elif index in wanted:
            found[index] = line
            if len(found) == len(wanted) and len(bad) >= MAX_EXAMPLES:
                break
    return found, bad


def row_text(table: pa.Table, i: int) -> str:
    """Row ``i`` of a parsed table as comma-joined text, for skip examples."""
    return ",".join(str(table[c][int(i)].as_py()) for c in table.column_names)
