"""Tiny-config quality and training time with and without the mask-head foreground cap (issue 16).

    python bench/mask_head_cap.py [--caps 0,4] [--steps 150]

For each ``model.mask_head.max_rois`` value (0 = every foreground slot, as before the cap existed) the
tiny config is trained XLA-compiled on the 6-image tiny layer of the tests (the overfit recipe of
tests/test_training_loop.py: warmup 30 steps, x0.1 at 80% and 93% of the steps, no scale jitter) and
evaluated with COCO mask and box AP on the same images. Prints one table row per cap.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cap: int, steps: int, layer: Path, work: Path) -> dict:
    from hierseg.config import load, merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.evaluation.evaluator import evaluate
    from hierseg.training.loop import train
    from hierseg.training.strategy import make_strategy
    from hierseg_cli.experiment_args import data_dir_overrides

    cfg = merge(load(ExperimentConfig, str(REPO / "configs" / "tiny_cpu.yaml")), data_dir_overrides(str(layer)))
    decays = [int(steps * 0.8), int(steps * 0.93)]
    cfg = merge(
        cfg,
        {
            "data": {"aug": {"flip_prob": 0.5, "scale_min": 1.0, "scale_max": 1.0}},
            "model": {"mask_head": {"max_rois": cap}},
            "train": {
                "total_steps": steps,
                "steps_per_loop": max(1, steps // 3),
                "checkpoint_every": steps,
                "summary_every": steps,
                "jit_compile": True,
                "learning_rate": {"warmup_steps": max(1, steps // 5), "decay_steps": decays},
            },
        },
    )
    model_dir = str(work / f"model_cap{cap}")
    t0 = time.perf_counter()
    result = train(cfg, model_dir, make_strategy("cpu"), show_progress=False)
    train_s = time.perf_counter() - t0
    metrics = evaluate(cfg, model_dir, show_progress=False)
    return {"cap": cap, "mask_ap": metrics["mask/AP"], "box_ap": metrics["box/AP"], "train_s": train_s,
            "loss": result["metrics"]["loss"]}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caps", default="0,4", help="comma-separated mask_head.max_rois values (tiny: 16 slots)")
    p.add_argument("--steps", type=int, default=150, help="training steps per cap (--steps 6 to check it runs)")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_layer import write_tiny_layer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_tiny_layer(Path(tmp) / "layer", num_images=6)
        for cap in (int(c) for c in args.caps.split(",")):
            rows.append(run(cap, args.steps, layer, Path(tmp)))
    print(f"\n{'mask_head.max_rois':>18}{'mask AP':>9}{'box AP':>8}{'final loss':>11}{'train+compile s':>16}")
    for r in rows:
        print(f"{r['cap']:>18}{r['mask_ap']:>9.3f}{r['box_ap']:>8.3f}{r['loss']:>11.4f}{r['train_s']:>16.1f}")
    print(f"\ntiny config, 6 images, {args.steps} steps, batch 4, XLA on CPU (0 = every foreground slot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
