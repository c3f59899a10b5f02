"""Training curves from a model directory's TensorBoard event files, as one PNG (``hierseg plot``).

Every folder of ``MODEL_DIR`` holding ``events.out.tfevents.*`` files is a run (``train``, ``eval``, ...);
its scalars are read with TensorBoard's own event reader (scalars written as tensors by
:mod:`hierseg.training.summaries` and classic ``simple_value`` scalars alike). Panels:

* losses (every tag containing ``loss``), log scale;
* the learning rate;
* evaluation metrics (tags of an ``eval`` run, or named ``box/...`` / ``mask/...``), in %;
* the rest (gradient norm, throughput, ...), each normalised by its maximum.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from hierseg import atomic_write

Series = dict[str, list[tuple[int, float]]]  # tag -> [(step, value)] sorted by step


def run_dirs(model_dir: str) -> list[str]:
    """Folders under ``model_dir`` (itself included) that hold event files, sorted."""
    found = []
    for root, _, files in os.walk(model_dir):
        if any(f.startswith("events.out.tfevents.") for f in files):
            found.append(root)
    return sorted(found)


def read_run(logdir: str) -> Series:
    """All scalars of one run folder."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(logdir, size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    out: Series = {}
    for tag in acc.Tags()["scalars"]:
        out[tag] = [(e.step, float(e.value)) for e in acc.Scalars(tag)]
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        values = [np.asarray(_tensor_value(e.tensor_proto)) for e in events]
        if all(v.size == 1 for v in values):
            out[tag] = [(e.step, float(v.reshape(-1)[0])) for e, v in zip(events, values)]
    return {t: sorted(v) for t, v in out.items()}


def _tensor_value(proto) -> np.ndarray:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(proto)


def read_model_dir(model_dir: str) -> dict[str, Series]:
    """{run name (folder relative to model_dir, "." for itself): scalars}.

    Raises:
      FileNotFoundError: when no folder holds event files.
    """
    runs = run_dirs(model_dir)
    if not runs:
        raise FileNotFoundError(f"{model_dir}: no TensorBoard event files (events.out.tfevents.*) found")
    return {os.path.relpath(r, model_dir): read_run(r) for r in runs}


def panels(runs: Mapping[str, Series]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Sorts every (run, tag) series into the panels "losses", "learning rate", "eval", "other"; series
    are labeled ``run/tag`` when several runs exist."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {"losses": {}, "learning rate": {}, "eval": {}, "other": {}}
    for run, series in runs.items():
        for tag, points in series.items():
            label = tag if len(runs) == 1 else f"{run}/{tag}"
            if "loss" in tag:
                out["losses"][label] = points
            elif "learning_rate" in tag:
                out["learning rate"][label] = points
            elif os.path.basename(run).startswith("eval") or tag.startswith(("box/", "mask/", "mAP")):
                out["eval"][label] = points
            else:
                out["other"][label] = points
    return {k: v for k, v in out.items() if v}


def plot_curves(model_dir: str, out_png: str) -> dict[str, list[str]]:
    """Writes the curves PNG (atomically); returns {panel: [series labels]}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = panels(read_model_dir(model_dir))
    if not groups:
        raise ValueError(f"{model_dir}: the event files hold no scalars")
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3.2 * len(groups)), squeeze=False)
    for ax, (title, series) in zip(axes[:, 0], groups.items()):
        for label, points in sorted(series.items()):
            steps = [s for s, _ in points]
            values = np.asarray([v for _, v in points])
            if title == "eval":
                values = 100 * values if np.nanmax(np.abs(values)) <= 1 else values
            elif title == "other":
                peak = np.nanmax(np.abs(values))
                values = values / peak if peak > 0 else values
                label = f"{label} (/ {peak:.3g})"
            ax.plot(steps, values, marker="." if len(points) < 30 else None, label=label)
        if title == "losses" and all(v > 0 for pts in series.values() for _, v in pts):
            ax.set_yscale("log")
        ax.set_title({"eval": "eval metrics (%)", "other": "other scalars (each / its maximum)"}.get(title, title))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2 if len(series) > 6 else 1, loc="best")
    fig.suptitle(os.path.abspath(model_dir), fontsize=9)
    fig.tight_layout()
    try:
        atomic_write.write_figure(out_png, fig, dpi=90)
    finally:
        plt.close(fig)
    return {k: sorted(v) for k, v in groups.items()}
