"""Balance report of one layer and split: per-class instance and image counts before and after
balancing, as a CSV and a log-scale bar chart (PNG)."""

from __future__ import annotations

import io

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


def write_report(report: pd.DataFrame, csv_path: str, png_path: str, title: str) -> None:
    """Writes the CSV and a bar chart of images per class before/after (log scale, classes sorted by
    images before); both atomically, local or gs://."""
    storage.write_text(csv_path, report.to_csv(index=False))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = report.sort_values("images_before", ascending=False, kind="stable")
    n = len(r)
    fig, ax = plt.subplots(figsize=(max(6.0, min(40.0, 0.12 * n + 4)), 4.5), dpi=100)
    x = np.arange(n)
    ax.bar(x - 0.2, np.maximum(r["images_before"].to_numpy(), 0.8), width=0.4, label="images before", color="#999999")
    ax.bar(x + 0.2, np.maximum(r["images_after"].to_numpy(), 0.8), width=0.4, label="images after", color="#1f77b4")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.set_xlabel(f"class ({n}, sorted by images before)")
    ax.set_ylabel("images (log)")
    ax.set_title(title)
    if n <= 40:
        ax.set_xticks(x)
        ax.set_xticklabels(r["name"].tolist(), rotation=90, fontsize=7)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    storage.write_bytes(png_path, buf.getvalue())
