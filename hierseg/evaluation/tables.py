"""Per-class result tables as a terminal user reads them: worst class first, one row per class.

Two sources feed the same text table:

* COCO (``hierseg evaluate``): :func:`coco_per_class` reads a finished ``COCOeval`` (its
  ``eval["precision"]`` array, ``[T iou thresholds, R recalls, K classes, A areas, M max dets]``) into
  per-class AP (mean over IoU 0.50:0.95) and AP50; :func:`coco_table` formats them with the summary.
* The challenge metric (``hierseg oid-eval``): :func:`oid_table` formats its ``per_class`` AP and
  ``num_gt`` (ground-truth counts after the hierarchy expansion).

COCO writes ``-1`` where it has nothing to measure (a class without ground truth, or no object of a
size range for APs/APm/APl); those cells print as ``–`` and a single footnote says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierseg.hierarchy import Hierarchy

MISSING = "–"  # shown instead of COCO's -1 (nothing to measure)
MISSING_NOTE = f"{MISSING} = nothing to measure (COCO's -1): no ground truth of that class or object size"


@dataclass
class ClassRow:
    """One table row: ``values`` maps a column name to a value in [0, 1] (or -1 / NaN = not measured)."""

    mid: str
    name: str
    label_path: str
    num_gt: float
    values: dict[str, float] = field(default_factory=dict)


def label_path(hierarchy: Hierarchy | None, mid: str) -> str:
    """``"Person/Man"``: the shortest path from a root of the hierarchy down to ``mid``, by names; the
    MID alone when the hierarchy does not know it."""
    if hierarchy is None or mid not in hierarchy:
        return mid
    roots = [r for r in hierarchy.roots() if r == mid or r in hierarchy.ancestors(mid)]
    paths = [hierarchy.path_down(r, mid) for r in roots] or [(mid,)]
    return "/".join(hierarchy.name(m) for m in min(paths, key=len))


def coco_per_class(ev: Any) -> dict[int, dict[str, float]]:
    """``{category id: {"AP": ..., "AP50": ...}}`` of an evaluated and accumulated ``COCOeval``
    (area "all", the largest max-detections setting); -1 for a class COCO could not measure."""
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    i50 = int(np.argmin(np.abs(np.asarray(ev.params.iouThrs) - 0.5)))
    out: dict[int, dict[str, float]] = {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p50 = p[i50]
        out[int(cat)] = {
            "AP": float(p[p > -1].mean()) if (p > -1).any() else -1.0,
            "AP50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else -1.0,
        }
    return out


def _cell(v: float | None, percent: bool = True) -> str:
    if v is None or not np.isfinite(v) or v < 0:
        return MISSING
    return f"{100 * v:.1f}" if percent else f"{v:g}"


def _sort_value(row: ClassRow, key: str) -> float:
    v = row.values.get(key)
    return v if v is not None and np.isfinite(v) and v >= 0 else float("inf")  # unmeasured rows last


def format_table(
    rows: Sequence[ClassRow],
    columns: Sequence[str],
    *,
    sort_by: str,
    top: int | None = None,
    title: str = "",
    counts: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> str:
    """The rows sorted by ``sort_by`` ascending (worst first; unmeasured last), ``top`` of them, as an
    aligned text table; values print as percentages with one decimal, ``counts`` columns as numbers;
    ``headers`` renames columns in the header line."""
    ordered = sorted(rows, key=lambda r: (_sort_value(r, sort_by), r.name))
    shown = ordered[:top] if top else ordered
    header = ["class", "label path", "GT", *((headers or {}).get(c, c) for c in columns)]
    body = [
        [r.name, r.label_path, f"{r.num_gt:g}", *(_cell(r.values.get(c), c not in counts) for c in columns)]
        for r in shown
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        left = [f"{c:<{w}}" for c, w in zip(cells[:2], widths[:2])]
        right = [f"{c:>{w}}" for c, w in zip(cells[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    out = [title] if title else []
    out += [line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    if top and len(ordered) > top:
        out.append(f"... {len(ordered) - top} more classes (--top {top}; sorted by {sort_by}, worst first)")
    return "\n".join(out)


def coco_table(metrics: Mapping[str, Any], hierarchy: Hierarchy | None = None, *, top: int | None = None) -> str:
    """``hierseg evaluate``'s printout: the per-class table (from ``metrics["per_class"]``, as
    :func:`hierseg.evaluation.coco_metric.evaluate_coco` returns it) sorted by mask AP, then the COCO
    summary, then the footnote on ``–`` when one was printed."""
    per_class = metrics.get("per_class", {})
    rows = [
        ClassRow(
            mid,
            str(v.get("name", mid)),
            label_path(hierarchy, mid),
            float(v.get("num_gt", 0)),
            {k: float(x) for k, x in v.items() if k not in ("name", "num_gt")},
        )
        for mid, v in per_class.items()
    ]
    columns = [c for c in ("box/AP", "mask/AP", "box/AP50", "mask/AP50") if any(c in r.values for r in rows)]
    sort_by = "mask/AP" if "mask/AP" in columns else (columns[0] if columns else "")
    parts = [format_table(rows, columns, sort_by=sort_by, top=top, title="per class (AP in %):")] if rows else []
    stats = [(k, v) for k, v in metrics.items() if k.startswith(("box/", "mask/")) and isinstance(v, (int, float))]
    if stats:
        width = max(len(k) for k, _ in stats)
        parts.append("summary (in %):\n" + "\n".join(f"  {k:<{width}}  {_cell(v):>5}" for k, v in stats))
    text = "\n\n".join(parts)
    if MISSING in text:
        text += "\n" + MISSING_NOTE
    return text


def oid_table(metrics: Mapping[str, Any], hierarchy: Hierarchy | None = None, *, top: int | None = None) -> str:
    """``hierseg oid-eval``'s per-class table: AP@0.5 mask IoU and the (weighted) ground-truth count
    after expansion, worst first, from :meth:`ensembles.metric.OidChallengeEvaluator.evaluate`'s dict."""
    num_gt = metrics.get("num_gt", {})
    rows = [
        ClassRow(
            mid,
            hierarchy.name(mid) if hierarchy is not None and mid in hierarchy else mid,
            label_path(hierarchy, mid),
            float(num_gt.get(mid, 0)),
            {"AP50": float(ap)},
        )
        for mid, ap in metrics.get("per_class", {}).items()
    ]
    return format_table(rows, ["AP50"], sort_by="AP50", top=top, title="per class (AP@0.5 mask IoU, in %):")


def semantic_table(metrics: Mapping[str, Any], hierarchy: Hierarchy | None = None, *, top: int | None = None) -> str:
    """``hierseg evaluate``'s printout for a semantic model: per-class IoU worst first (GT = ground-truth
    pixels; a class without pixels in either map prints ``–``), then mIoU and pixel accuracy, from
    :func:`hierseg.evaluation.semantic_eval.evaluate_semantic`'s ``per_class`` list."""
    rows = []
    for entry in metrics.get("per_class", []):
        name = str(entry["class"])
        mid = hierarchy.mid_of(name) if hierarchy is not None and name in hierarchy.names.values() else name
        iou = entry.get("iou")
        values = {"IoU": float("nan") if iou is None else float(iou)}
        rows.append(ClassRow(mid, name, label_path(hierarchy, mid), float(entry.get("gt_pixels", 0)), values))
    text = format_table(rows, ["IoU"], sort_by="IoU", top=top, title="per class (IoU in %, GT in pixels):")
    summary = [(k, v) for k, v in metrics.items() if k in ("semantic/mIoU", "semantic/pixel_accuracy")]
    text += "\n\nsummary (in %):\n" + "\n".join(f"  {k:<24}{_cell(v):>6}" for k, v in summary)
    if MISSING in text:
        text += "\n" + f"{MISSING} = no pixel of that class in the ground truth or the prediction"
    return text
