"""Speed of the synthetic dataset generators; prints a table.

Times ``generate_dataset`` at the test fixture's size (60 images, target well under 5 s) and at the
demo's default size (200 images), and ``generate_annotations_only`` at full challenge scale
(2,125,530 masks on 848,512 images, target well under 60 s), reporting the CSV sizes written.

  python bench/bench_synth.py [--images 60,200] [--num_masks N] [--num_images N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from hierseg.synth import generate_annotations_only, generate_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="60,200", help="comma-separated generate_dataset sizes to time")
    ap.add_argument("--num_masks", type=int, default=2_125_530, help="annotations-only masks CSV rows")
    ap.add_argument("--num_images", type=int, default=848_512, help="annotations-only distinct images")
    ap.add_argument("--dir", help="scratch folder (default: a temporary one, removed afterwards)")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="bench_synth_")
    rows = []
    try:
        for n in [int(x) for x in args.images.split(",") if x]:
            out = os.path.join(root, f"dataset{n}")
            t = time.perf_counter()
            s = generate_dataset(out, num_images=n, seed=0)
            dt = time.perf_counter() - t
            masks = sum(v.get("masks", 0) for v in s["splits"].values())
            rows.append((f"generate_dataset({n} images)", f"{masks} masks", dt))
        out = os.path.join(root, "annotations")
        t = time.perf_counter()
        s = generate_annotations_only(out, num_masks=args.num_masks, num_images=args.num_images, seed=0)
        dt = time.perf_counter() - t
        mb = sum(os.path.getsize(p) for p in s["files"]) / 1e6
        rows.append((f"generate_annotations_only({s['masks']:,} masks)", f"{s['images']:,} images, {mb:,.0f} MB", dt))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'what':<46}{'size':<30}{'seconds':>9}")
    for what, size, dt in rows:
        print(f"{what:<46}{size:<30}{dt:>9.2f}")


if __name__ == "__main__":
    main()
