"""Balance report of one layer and split: per-class instance and image counts before and after
balancing, as a CSV and a log-scale bar chart (PNG)."""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pandas as pd

from data_prep import storage
from hierseg.label_map import LabelMap

REPORT_COLUMNS = (
    "class_id",
    "mid",
    "name",
    "instances_before",
    "images_before",
    "instances_after",
    "images_after",
    "weighted_images_after",
)


def balance_report(
    img_idx: np.ndarray, class_ids: np.ndarray, copies: np.ndarray, weights: np.ndarray, label_map: LabelMap
) -> pd.DataFrame:
    """Per class of the label map (every class, zeros included), counts before and after balancing.

    "after" counts what the shards hold (an image written twice counts twice);
    ``weighted_images_after`` sums copies x image/weight (the effective sampling mass).

    Args:
      img_idx: int [N] image index (into the split's images) of each target instance.
      class_ids: int [N] class id 1..K of each instance.
      copies: int [I] and weights: float [I], per image.
    """
    k = label_map.num_classes
    img_idx = np.asarray(img_idx, np.int64)
    cls = np.asarray(class_ids, np.int64)
    c = np.asarray(copies, np.int64)
    inst_before = np.bincount(cls, minlength=k + 1)
    inst_after = np.bincount(cls, weights=c[img_idx], minlength=k + 1)
    key = np.unique(img_idx.astype(np.int64) * (k + 1) + cls)
    p_img, p_cls = key // (k + 1), key % (k + 1)
    img_before = np.bincount(p_cls, minlength=k + 1)
    img_after = np.bincount(p_cls, weights=c[p_img], minlength=k + 1)
    weighted = np.bincount(p_cls, weights=c[p_img] * np.asarray(weights, np.float64)[p_img], minlength=k + 1)
    return pd.DataFrame(
        {
            "class_id": np.arange(1, k + 1),
            "mid": list(label_map.mids),
            "name": list(label_map.names),
            "instances_before": inst_before[1:].astype(np.int64),
            "images_before": img_before[1:].astype(np.int64),
            "instances_after": inst_after[1:].astype(np.int64),
            "images_after": img_after[1:].astype(np.int64),
            "weighted_images_after": np.round(weighted[1:], 3),
        }
    )


ROWS_PER_PANEL = 110  # class rows in one panel: names stay at a readable 7 pt
PANELS_PER_FILE = 3  # panels side by side in one PNG; more classes go to further files


def panel_layout(num_classes: int) -> list[list[range]]:
    """Rows (classes in sorted order) of each panel of each file: ``[[range, ...] per file]``; panels
    are balanced (213 classes -> two panels of 107 and 106)."""
    if num_classes <= 0:
        return [[range(0)]]
    num_panels = -(-num_classes // ROWS_PER_PANEL)
    per_panel = -(-num_classes // num_panels)
    panels = [range(i, min(i + per_panel, num_classes)) for i in range(0, num_classes, per_panel)]
    return [panels[i : i + PANELS_PER_FILE] for i in range(0, len(panels), PANELS_PER_FILE)]


def report_png_paths(png_path: str, num_classes: int) -> list[str]:
    """``png_path`` for the first file, then ``<stem>-2.png``, ``<stem>-3.png``, ..."""
    stem = png_path[:-4] if png_path.endswith(".png") else png_path
    return [png_path] + [f"{stem}-{i}.png" for i in range(2, len(panel_layout(num_classes)) + 1)]


def draw_report(report: pd.DataFrame, panels: list[range], title: str):
    """One figure: a horizontal-bar panel per row range of ``report`` (already sorted): per class, images
    before (gray) and after balancing (blue) on a shared log axis, class names on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(p) for p in panels)
    top = max(float(report["images_before"].max()), float(report["images_after"].max()), 1.0) * 1.6
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 0.17 * rows + 1.6), dpi=100, squeeze=False)
    for ax, part in zip(axes[0], panels):
        r = report.iloc[list(part)]
        y = np.arange(len(r))
        before = np.maximum(r["images_before"].to_numpy(), 0.8)
        after = np.maximum(r["images_after"].to_numpy(), 0.8)
        ax.barh(y - 0.2, before, height=0.4, color="#999999", label="images before")
        ax.barh(y + 0.2, after, height=0.4, color="#1f77b4", label="images after")
        ax.set_xscale("log")
        ax.set_xlim(0.8, top)
        ax.set_ylim(rows - 0.5, -0.5)  # the same row height in every panel, first class on top
        ax.set_yticks(y, r["name"].tolist(), fontsize=7)
        ax.tick_params(axis="y", length=0, pad=2)
        ax.grid(axis="x", which="major", alpha=0.3)
        ax.set_xlabel("images (log)")
        ax.tick_params(axis="x", labelsize=7)
    axes[0, 0].legend(loc="lower right", fontsize=7)
    lines = textwrap.wrap(title, 60 * len(panels))  # ~60 characters of 10 pt fit a 5.2 inch panel
    fig.suptitle("\n".join(lines), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.1 + 0.2 * len(lines)) / fig.get_figheight()))  # room for the title
    return fig


def write_report(report: pd.DataFrame, csv_path: str, png_path: str, title: str) -> list[str]:
    """Writes the CSV and the bar charts of images per class before/after balancing (classes sorted by
    images before, most first; log scale; :func:`panel_layout` splits them over panels and files, named
    by :func:`report_png_paths`); all atomically, local or gs://. Returns the PNG paths."""
    storage.write_text(csv_path, report.to_csv(index=False))
    import matplotlib.pyplot as plt

    r = report.sort_values(["images_before", "name"], ascending=[False, True], kind="stable")
    layout = panel_layout(len(r))
    paths = report_png_paths(png_path, len(r))
    for k, (panels, path) in enumerate(zip(layout, paths)):
        part = f" ({k + 1}/{len(layout)})" if len(layout) > 1 else ""
        fig = draw_report(r, panels, f"{title}: {len(r)} classes, most images first{part}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        plt.close(fig)
        storage.write_bytes(path, buf.getvalue())
    return paths
