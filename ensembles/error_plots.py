"""Pictures and tables of :func:`ensembles.error_analysis.analyze`'s result: the summary bar chart, the
per-class text table and CSV."""

from __future__ import annotations

import csv

from ensembles.error_analysis import FIXABLE_MISSES, FP_KINDS, MISS_KINDS
from hierseg import atomic_write
from hierseg.evaluation.tables import ClassRow, format_table, label_path
from hierseg.hierarchy import Hierarchy

TABLE_COLUMNS = ("AP50", "tp", *FP_KINDS, *MISS_KINDS)
SHORT = {  # header of each kind in the text table (the CSV and JSON use the full names)
    "duplicate": "dup",
    "too_fine": "fine",
    "sibling": "sib",
    "other_class": "other",
    "localization": "loc",
    "class_and_loc": "cls+loc",
    "background": "bg",
    "missed_too_coarse": "m:coarse",
    "missed_too_fine": "m:fine",
    "missed_sibling": "m:sib",
    "missed_other_class": "m:other",
    "missed_localization": "m:loc",
    "missed_no_detection": "m:none",
}


def class_rows(result: dict, hierarchy: Hierarchy) -> list[ClassRow]:
    """One row per class with ground truth or detections: AP and the count of every kind."""
    rows = []
    for mid in sorted(set(result["per_class"]) | set(result["per_class_ap"])):
        counts = result["per_class"].get(mid, {})
        values = {k: float(counts.get(k, 0)) for k in TABLE_COLUMNS[1:]}
        values["AP50"] = float(result["per_class_ap"].get(mid, float("nan")))
        name = hierarchy.name(mid) if mid in hierarchy else mid
        rows.append(ClassRow(mid, name, label_path(hierarchy, mid), float(result["num_gt"].get(mid, 0)), values))
    return rows


def summary_text(result: dict) -> str:
    """Counts per kind and the mAP each kind costs, as aligned text."""
    c, g = result["counts"], result["map_gain"]
    lines = [
        f"mAP {100 * result['mAP']:.2f}; {c['tp']} true positives, {c['fp']} false positives, "
        f"{c['ignored']} detections ignored by the metric"
    ]
    lines.append(f"  {'kind':<22}{'count':>7}  {'mAP gain if fixed':>17}")
    for kind in (*FP_KINDS, *MISS_KINDS):
        gain = f"{100 * g[kind]:+.2f}" if kind in g else "–"
        lines.append(f"  {kind:<22}{c[kind]:>7}  {gain:>17}")
    return "\n".join(lines)


def write_class_csv(result: dict, hierarchy: Hierarchy, path: str) -> None:
    """The per-class table as CSV (class, label path, GT count, AP50, every kind's count), atomically."""
    with atomic_write.atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mid", "name", "label_path", "num_gt", *TABLE_COLUMNS])
        for r in class_rows(result, hierarchy):
            w.writerow([r.mid, r.name, r.label_path, f"{r.num_gt:g}", *(f"{r.values[k]:g}" for k in TABLE_COLUMNS)])


def class_table(result: dict, hierarchy: Hierarchy, top: int | None = None) -> str:
    return (
        format_table(
            class_rows(result, hierarchy),
            TABLE_COLUMNS,
            sort_by="AP50",
            top=top,
            title="per class (AP50 in %, then counts; FP kinds by detected class, misses by missed class):",
            counts=TABLE_COLUMNS[1:],
            headers=SHORT,
        )
        + "\n"
        + "; ".join(f"{v} = {k}" for k, v in SHORT.items())
    )


def plot_summary(result: dict, path: str) -> None:
    """Two horizontal bar panels: how many errors of each kind, and the mAP gained by fixing each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [*FP_KINDS, *MISS_KINDS]
    colors = ["#d62728" if k in FP_KINDS else "#1f77b4" for k in kinds]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    y = range(len(kinds))
    counts = [result["counts"][k] for k in kinds]
    ax0.barh(y, counts, color=colors)
    ax0.set_yticks(list(y), kinds)
    ax0.invert_yaxis()
    ax0.set_xlabel("count (red: false positives, blue: misses)")
    ax0.set_title("errors by kind")
    for i, n in enumerate(counts):
        ax0.text(n, i, f" {n}", va="center", fontsize=8)
    fixable = [k for k in kinds if k in (*FP_KINDS, *FIXABLE_MISSES)]
    gains = [100 * result["map_gain"].get(k, 0.0) if k in fixable else 0.0 for k in kinds]
    ax1.barh(y, gains, color=colors)
    ax1.set_xlabel("mAP points gained if fixed")
    ax1.set_title(f"mAP {100 * result['mAP']:.2f}: what each kind costs")
    for i, (k, gv) in enumerate(zip(kinds, gains)):
        ax1.text(gv, i, f" {gv:+.2f}" if k in fixable else " –", va="center", fontsize=8)
    fig.tight_layout()
    try:
        atomic_write.write_figure(path, fig, dpi=100)
    finally:
        plt.close(fig)
