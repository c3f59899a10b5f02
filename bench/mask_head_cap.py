"""Tiny-config quality and training time with and without the mask-head foreground cap (issue 16).

    python bench/mask_head_cap.py [--caps 0,4] [--seeds 1,2,3] [--steps 150]

The shipped default caps the mask head at 32 of the 128 foreground slots of a full-size model (a quarter);
the tiny config has 16 slots, so the same quarter is ``--caps 4`` there (its default, 32, changes nothing).
For each ``model.mask_head.max_rois`` value (0 = every foreground slot, as before the cap existed) and each
``train.seed`` (input order, augmentation and ROI sampling) the tiny config is trained XLA-compiled on the 6-image tiny layer of the tests (the overfit recipe of
tests/test_training_loop.py: warmup 30 steps, x0.1 at 80% and 93% of the steps, no scale jitter) and
evaluated with COCO mask and box AP on the same images. Prints one row per run and the mean per cap, so
the cap's effect can be told from the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cap: int, seed: int, steps: int, layer: Path, work: Path) -> dict:
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
                "seed": seed,
                "learning_rate": {"warmup_steps": max(1, steps // 5), "decay_steps": decays},
            },
        },
    )
    model_dir = str(work / f"model_cap{cap}_seed{seed}")
    t0 = time.perf_counter()
    result = train(cfg, model_dir, make_strategy("cpu"), show_progress=False)
    train_s = time.perf_counter() - t0
    metrics = evaluate(cfg, model_dir, show_progress=False)
    return {"cap": cap, "seed": seed, "mask_ap": metrics["mask/AP"], "box_ap": metrics["box/AP"], "train_s": train_s,
            "loss": result["metrics"]["loss"]}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--caps", default="0,4", help="comma-separated mask_head.max_rois values (tiny: 16 slots)")
    p.add_argument("--seeds", default="42", help="comma-separated train.seed values, each run per cap")
    p.add_argument("--steps", type=int, default=150, help="training steps per cap (--steps 6 to check it runs)")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_layer import write_tiny_layer

    caps = [int(c) for c in args.caps.split(",")]
    seeds = [int(c) for c in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_tiny_layer(Path(tmp) / "layer", num_images=6)
        for seed in seeds:  # seed-major, so a cap's runs are spread over the session
            for cap in caps:
                rows.append(run(cap, seed, args.steps, layer, Path(tmp)))
    head = f"{'mask_head.max_rois':>18}{'seed':>6}{'mask AP':>9}{'box AP':>8}{'final loss':>11}{'train+compile s':>16}"
    print("\n" + head)
    for r in sorted(rows, key=lambda r: (r["cap"], r["seed"])):
        print(
            f"{r['cap']:>18}{r['seed']:>6}{r['mask_ap']:>9.3f}{r['box_ap']:>8.3f}{r['loss']:>11.4f}{r['train_s']:>16.1f}"
        )
    for cap in caps:
        mine = [r for r in rows if r["cap"] == cap]
        mean = {k: statistics.mean(r[k] for r in mine) for k in ("mask_ap", "box_ap", "loss", "train_s")}
        print(
            f"{cap:>18}{'mean':>6}{mean['mask_ap']:>9.3f}{mean['box_ap']:>8.3f}{mean['loss']:>11.4f}{mean['train_s']:>16.1f}"
        )
    print(f"\ntiny config, 6 images, {args.steps} steps, batch 4, XLA on CPU (0 = every foreground slot, 16 here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
