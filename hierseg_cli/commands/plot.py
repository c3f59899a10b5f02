"""Training curves of a model directory (losses, learning rate, eval metrics) from its TensorBoard event
files, as one PNG."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model_dir", required=True, help="training directory (its train/ and eval/ event files)")
    p.add_argument("--out", help="PNG to write (default: MODEL_DIR/curves.png)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hierseg.training.curves import plot_curves

    out = args.out or os.path.join(args.model_dir, "curves.png")
    groups = plot_curves(args.model_dir, out)
    for panel, labels in groups.items():
        print(f"{panel}: {', '.join(labels)}")
    print(f"wrote {out}")
    return 0
