"""Training-step throughput and peak memory on this machine's CPU: the tiny configs, ResNet-50-FPN and DeepLab v3+ R101.

    python bench/train_step.py [--steps 5] [--cases tiny,r50_512,deeplab_tiny,deeplab_r101_513]

Each case runs in its own subprocess (so its peak resident memory, ``ru_maxrss``, is its own): the
real model, optimizer and train loop (``hierseg.training.loop.make_train_loop``) on synthetic images
that went through the real input pipeline once and are then replayed from memory (so the numbers are
the model step, not JPEG decoding). The first loop call (tracing/compilation) is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {
    # name: (config file, overrides, description)
    "tiny": (
        "configs/tiny_cpu.yaml",
        {"data": {"output_size": 128}, "train": {"global_batch_size": 4}},
        "tiny (R18 x0.25, FPN 32), 128x128, batch 4",
    ),
    "r50_512": (
        "configs/layer0_maskrcnn_r50_fpn.yaml",
        {
            "data": {"output_size": 512},
            "model": {"num_classes": 213},
            "train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}},
        },
        "ResNet-50-FPN, 512x512, batch 2 (mask head on <= 32 fg ROIs)",
    ),
    # Issue 16's before/after: the mask head on all 128 foreground slots per image (max_rois 0, the
    # default before), and the speed setting of 1 sample per ROIAlign bin (box and mask heads).
    "r50_512_all_slots": (
        "configs/layer0_maskrcnn_r50_fpn.yaml",
        {
            "data": {"output_size": 512},
            "model": {"num_classes": 213, "mask_head": {"max_rois": 0}},
            "train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}},
        },
        "ResNet-50-FPN, mask head on all 128 fg slots, 512x512",
    ),
    "r50_512_fast": (
        "configs/layer0_maskrcnn_r50_fpn.yaml",
        {
            "data": {"output_size": 512},
            "model": {"num_classes": 213, "box_head": {"sampling_ratio": 1}, "mask_head": {"sampling_ratio": 1}},
            "train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}},
        },
        "ResNet-50-FPN, 1 sample/bin, <=32 mask ROIs, 512x512",
    ),
    # One-stage models (hierseg.models.retinanet / shapemask): the tiny CPU configs and ResNet-50 at 512 px.
    "retinanet_tiny": ("configs/tiny_cpu_retinanet.yaml", {}, "RetinaNet tiny (R18 x0.25, P3-P7), 128x128, batch 4"),
    "shapemask_tiny": ("configs/tiny_cpu_shapemask.yaml", {}, "ShapeMask tiny (R18 x0.25, P3-P7), 128x128, batch 4"),
    "retinanet_r50_512": (
        "configs/layer0_retinanet_r50_fpn.yaml",
        {
            "data": {"output_size": 512},
            "model": {"num_classes": 213},
            "train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}},
        },
        "RetinaNet ResNet-50-FPN, 512x512, batch 2",
    ),
    "shapemask_r50_512": (
        "configs/layer0_shapemask_r101_fpn.yaml",
        {
            "data": {"output_size": 512},
            "model": {"num_classes": 213, "backbone": {"depth": 50}, "shapemask": {"shape_prior_path": ""}},
            "train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}},
        },
        "ShapeMask ResNet-50-FPN, 512x512, batch 2",
    ),
    "deeplab_tiny": (
        "configs/tiny_cpu_deeplab.yaml",
        {"data": {"output_size": 128}, "train": {"global_batch_size": 4}},
        "DeepLab v3+ tiny (R18 x0.25), 128x128, batch 4",
    ),
    "deeplab_r101_513": (
        "configs/voc_deeplab_v3plus_r101.yaml",
        {"train": {"global_batch_size": 2, "precision": "float32", "init": {"path": ""}}},
        "DeepLab v3+ R101 (VOC, OS 16), 513x513, batch 2",
    ),
}


def run_case(name: str, steps: int) -> dict:
    """In a fresh process: build everything, time ``steps`` training steps, return the figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO / "tests"))
    import tensorflow as tf
    from tiny_layer import write_tiny_layer  # the tests' prepared-layout writer (a few shapes per image)

    from hierseg.config import load, merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.input.pipeline import build_dataset
    from hierseg.layout import PreparedLayer
    from hierseg.models.factory import build_model, build_train_targets
    from hierseg.training.loop import make_train_loop
    from hierseg.training.optimizer import MomentumSGD, trainable_variables
    from hierseg.training.schedule import WarmupStepDecay

    config_file, overrides, _ = CASES[name]
    cfg = merge(load(ExperimentConfig, str(REPO / config_file)), overrides)
    batch = cfg.train.global_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_tiny_layer(
            Path(tmp) / "layer", num_images=batch, height=cfg.data.output_size * 3 // 4, width=cfg.data.output_size
        )
        cfg = merge(cfg, {"data": {"max_instances": 8}, "model": {"num_classes": cfg.model.num_classes or 3}})
        ds = build_dataset(
            PreparedLayer(layer).shard_pattern("train"),
            cfg.data,
            is_training=True,
            batch_size=batch,
            seed=0,
            train_targets=build_train_targets(cfg.model, cfg.data.output_size),
        )
        element = next(iter(ds))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(element).repeat())
    with strategy.scope():
        model = build_model(cfg.model, cfg.data.output_size)
        variables = trainable_variables(model, "")
        optimizer = MomentumSGD(variables, cfg.train.momentum)
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
    loop = make_train_loop(
        strategy,
        model,
        optimizer,
        variables,
        WarmupStepDecay.from_config_section(cfg.train.learning_rate),
        step,
        cfg.train,
    )
    iterator = iter(data)
    t0 = time.perf_counter()
    loop(iterator, tf.constant(1))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = loop(iterator, tf.constant(steps))
    elapsed = time.perf_counter() - t0
    return {
        "case": name,
        "images_per_second": steps * batch / elapsed,
        "step_seconds": elapsed / steps,
        "first_call_seconds": compile_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": float(out["loss"]),
        "params_m": sum(int(tf.size(v)) for v in model.trainable_variables) / 1e6,
        "num_classes": cfg.model.num_classes,  # what ran, printed in the table (never a label's guess)
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per case")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        print("RESULT " + json.dumps(run_case(args._child, args.steps)))
        return 0
    rows = []
    for name in args.cases.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--_child", name, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            print(f"{name}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(line[0][7:]))
    print(
        f"\n{'case':<55}{'classes':>8}{'params':>8}{'images/s':>10}{'s/step':>9}{'1st call s':>11}{'peak RSS MB':>13}"
    )
    for r in rows:
        print(
            f"{CASES[r['case']][2]:<55}{r['num_classes']:>8}{r['params_m']:>7.1f}M{r['images_per_second']:>10.2f}"
            f"{r['step_seconds']:>9.2f}{r['first_call_seconds']:>11.1f}{r['peak_rss_mb']:>13.0f}"
        )
    print(f"\n{os.cpu_count()} CPU core(s), float32, {args.steps} timed steps per case, jit_compile off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
