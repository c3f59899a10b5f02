"""Benchmark of the pixel stage of `hierseg prepare`: images/s per core on the synthetic dataset.

Generates (once, cached) a synthetic dataset, plans it (annotation stage, not timed), then times the
pixel stage in one process (= one core): read JPEG, decode, read + resize masks from the zips, gray
fill, encode mask PNGs, build and write the tf.train.Examples to shards. Prints a table per layer.

    python bench/prepare_pixels.py [--images 400] [--min_size 128 --max_size 256] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400, help="synthetic images to generate")
    ap.add_argument("--min_size", type=int, default=128, help="synthetic image side, min (Open Images: ~700-1024)")
    ap.add_argument("--max_size", type=int, default=256, help="synthetic image side, max")
    ap.add_argument("--data", default=None, help="dataset folder (default: a cached temp folder per --images)")
    args = ap.parse_args()
    data = args.data or os.path.join(
        tempfile.gettempdir(), f"hierseg-bench-pixels-{args.images}-{args.min_size}-{args.max_size}"
    )
    if not os.path.exists(os.path.join(data, ".complete")):
        from hierseg.synth import generate_dataset

        generate_dataset(data, num_images=args.images, seed=0, min_size=args.min_size, max_size=args.max_size)
        open(os.path.join(data, ".complete"), "w").write("ok")

    from data_prep.config import PrepareConfig
    from data_prep.local_runner import run_local
    from data_prep.pixels import PixelProcessor
    from data_prep.plan import load_tables, plan_layers
    from data_prep.prepare import _jobs
    from hierseg.config.params import merge
    from hierseg.layout import PreparedLayer
    from hierseg.oid.layout import OidPaths

    cfg = merge(PrepareConfig(), {"balance": {"mode": "none"}})
    paths = OidPaths.from_dir(data)
    h = paths.load_hierarchy()
    plans = plan_layers(load_tables(paths, h, cfg), h, cfg)
    proc = PixelProcessor(paths, gray_value=cfg.gray_value, jpeg_quality=cfg.jpeg_quality)
    proc.process(plans[0].splits["train"].task(0))  # warm-up: TensorFlow import and zip handles, not timed
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for lp in plans:
            jobs, _ = _jobs(out, lp)
            for j in jobs:
                os.makedirs(PreparedLayer(j.layer_dir).state_dir, exist_ok=True)
            n = sum(j.num_tasks for j in jobs)
            masks = sum(len(sp.instances) for sp in lp.splits.values())
            gray = sum(len(sp.gray_boxes) for sp in lp.splits.values())
            t = time.perf_counter()
            run_local(jobs, proc, num_workers=1, show_progress=False)
            dt = time.perf_counter() - t
            rows.append((f"layer{lp.layer}", n, masks, gray, dt, n / dt))
    from hierseg.oid.image_size import read_image_size

    files = sorted(os.listdir(os.path.join(data, "train")))[:50]
    dims = [read_image_size(os.path.join(data, "train", f)) for f in files]
    mean_h, mean_w = (sum(d[i] for d in dims) // len(dims) for i in (0, 1))
    print(f"pixel stage, one process (one core), synthetic dataset {data} (mean image {mean_h}x{mean_w})")
    print(f"{'layer':<8}{'images':>8}{'masks':>8}{'gray boxes':>12}{'seconds':>10}{'images/s/core':>15}")
    for name, n, m, g, dt, rate in rows:
        print(f"{name:<8}{n:>8}{m:>8}{g:>12}{dt:>10.2f}{rate:>15.1f}")
    tot_n, tot_t = sum(r[1] for r in rows), sum(r[4] for r in rows)
    print(f"{'all':<8}{tot_n:>8}{'':>8}{'':>12}{tot_t:>10.2f}{tot_n / tot_t:>15.1f}")


if __name__ == "__main__":
    main()
