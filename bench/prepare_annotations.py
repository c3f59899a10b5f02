"""Benchmark of the annotation stage of `hierseg prepare` at full challenge scale.

Generates (once, cached) the annotations-only synthetic dataset: 2,125,530 masks on 848,512 images
with the real per-class distribution (`hierseg.synth.generate_annotations_only`), then runs in a fresh
child process, timed stage by stage: reading the CSVs (masks + bbox, IsGroupOf join, held-out
validation), layer assignment for every layer and split, balancing, shard assignment and the
manifest. Prints a table with seconds and the child's peak resident memory (ru_maxrss).
Targets: <= 60 s and <= 4 GB.

    python bench/prepare_annotations.py [--data DIR] [--balance cap|repeat_factor|none]
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout


def child(data: str, balance: str) -> None:
    t0 = time.perf_counter()
    from data_prep.config import PrepareConfig
    from data_prep.plan import load_tables, manifest, plan_layers
    from hierseg.config.params import merge
    from hierseg.oid.layout import OidPaths

    cfg = merge(PrepareConfig(), {"balance": {"mode": balance}})
    paths = OidPaths.from_dir(data)
    hierarchy = paths.load_hierarchy()
    t_import = time.perf_counter()
    tables = load_tables(paths, hierarchy, cfg)
    t_read = time.perf_counter()
    plans = plan_layers(tables, hierarchy, cfg)
    t_plan = time.perf_counter()
    man = manifest(plans)
    t_man = time.perf_counter()
    counts = {
        f"layer{lp.layer}/{s}": [len(sp.images), int(sp.balanced.copies.sum()), len(sp.instances)]
        for lp in plans
        for s, sp in lp.splits.items()
    }
    print(
        json.dumps(
            {
                "imports_hierarchy_s": t_import - t0,
                "read_csvs_s": t_read - t_import,
                "plan_layers_s": t_plan - t_read,
                "manifest_s": t_man - t_plan,
                "total_s": t_man - t_import,
                "masks": int(sum(len(t.masks) for t in tables.values())),
                "manifest_rows": len(man),
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "counts": counts,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data",
        default=os.path.join(tempfile.gettempdir(), "hierseg-bench-annotations"),
        help="dataset folder (generated there if missing)",
    )
    ap.add_argument("--balance", default="cap", choices=["cap", "repeat_factor", "none"], help="balance mode")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.data, args.balance)
        return
    marker = os.path.join(args.data, ".complete")
    if not os.path.exists(marker):
        from hierseg.synth import generate_annotations_only

        t = time.perf_counter()
        info = generate_annotations_only(args.data, show_progress=True)
        open(marker, "w").write("ok")
        print(f"generated {info['masks']} masks on {info['images']} images in {time.perf_counter() - t:.1f} s")
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--data", args.data, "--balance", args.balance],
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"annotation stage, {r['masks']:,} masks (balance={args.balance}); manifest rows {r['manifest_rows']:,}")
    print(f"{'stage':<28}{'seconds':>10}")
    for k in ("read_csvs_s", "plan_layers_s", "manifest_s", "total_s"):
        print(f"{k[:-2]:<28}{r[k]:>10.2f}")
    print(f"{'peak memory (maxrss, MB)':<28}{r['maxrss_mb']:>10.0f}")
    print(f"{'layer/split':<22}{'images':>10}{'examples':>10}{'instances':>11}")
    for k, (n_img, n_ex, n_inst) in r["counts"].items():
        print(f"{k:<22}{n_img:>10,}{n_ex:>10,}{n_inst:>11,}")
    ok = r["total_s"] <= 60 and r["maxrss_mb"] <= 4096
    print(f"targets (<= 60 s, <= 4096 MB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
