"""Text tables of the summaries returned by the synthetic dataset generators."""

from __future__ import annotations

SPLIT_FIELDS = ("images", "masks", "box_only_boxes", "group_of_boxes", "positive_labels", "negative_labels")


def dataset_table(summary: dict) -> str:
    """The summary of :func:`hierseg.synth.generate_dataset` as text: per split counts, then masks per
    class per annotated split, with class names."""
    splits = summary["splits"]
    lines = [
        f"synthetic Open Images dataset in {summary['out_dir']} (seed {summary['seed']}, "
        f"{summary['num_images']} images, {len(summary['classes'])} classes, {summary['seconds']:.2f} s)",
        "",
    ]
    lines.append(f"{'split':<12}" + "".join(f"{f:>17}" for f in SPLIT_FIELDS))
    for split, s in splits.items():
        lines.append(f"{split:<12}" + "".join(f"{s.get(f, '-'):>17}" for f in SPLIT_FIELDS))
    annotated = [s for s in splits if "masks_per_class" in splits[s]]
    lines += ["", f"{'MID':<12}{'class':<16}" + "".join(f"{s:>12}" for s in annotated)]
    for mid, name in summary["classes"].items():
        lines.append(f"{mid:<12}{name:<16}" + "".join(f"{splits[s]['masks_per_class'][mid]:>12}" for s in annotated))
    return "\n".join(lines)


def annotations_table(summary: dict, top: int = 15) -> str:
    """The summary of :func:`hierseg.synth.generate_annotations_only` as text (the ``top`` most and
    least frequent classes)."""
    lines = [
        f"annotations-only train CSVs in {summary['out_dir']} (seed {summary['seed']}, {summary['seconds']:.1f} s)",
        "",
    ]
    for field in (
        "images",
        "masks",
        "bbox_rows",
        "box_only_boxes",
        "group_of_boxes",
        "positive_labels",
        "negative_labels",
    ):
        lines.append(f"{field:<18}{summary[field]:>12,}")
    ranked = sorted(summary["masks_per_class"].items(), key=lambda kv: -kv[1])
    shown = ranked if len(ranked) <= 2 * top else ranked[:top] + [("...", None)] + ranked[-top:]
    lines += ["", f"{'MID':<12}{'class':<28}{'masks':>10}"]
    for mid, n in shown:
        if n is None:
            lines.append("...")
        else:
            lines.append(f"{mid:<12}{summary['classes'][mid]:<28}{n:>10,}")
    return "\n".join(lines)
