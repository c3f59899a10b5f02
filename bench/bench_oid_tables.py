"""Speed of the Open Images CSV readers at full challenge scale; prints a table.

Writes a segmentation CSV of ``--rows`` rows (default 2,125,530, the real train file's size) with
random but well-formed values, then times ``read_segmentation_csv`` in raise mode, in skip mode with
a class list, and with one bad row near the end (the raise path that looks up the line number).

  python bench/bench_oid_tables.py [--rows N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd

from hierseg.oid.tables import SEGMENTATION_COLUMNS, OidFormatError, read_segmentation_csv


def write_csv(path: str, rows: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    mids = [f"/m/0{i:04x}" for i in range(300)]
    image_ids = np.array([f"{v:016x}" for v in rng.integers(0, 2**62, size=rows // 2 + 1)])[
        rng.integers(0, rows // 2 + 1, rows)
    ]
    labels = np.array(mids)[rng.integers(0, len(mids), rows)]
    box_ids = np.array([f"{v:08x}" for v in rng.integers(0, 2**32, rows)])
    x0, y0 = rng.random(rows).round(6), rng.random(rows).round(6)
    x1 = np.minimum(1, x0 + rng.random(rows)).round(6)
    y1 = np.minimum(1, y0 + rng.random(rows)).round(6)
    df = pd.DataFrame(
        {
            "MaskPath": pd.Series(image_ids) + "_" + pd.Series(labels).str[3:] + "_" + box_ids + ".png",
            "ImageID": image_ids,
            "LabelName": labels,
            "BoxID": box_ids,
            "BoxXMin": x0,
            "BoxXMax": x1,
            "BoxYMin": y0,
            "BoxYMax": y1,
            "PredictedIoU": rng.random(rows).round(5),
            "Clicks": "0.1 0.2 1;0.3 0.4 0;0.5 0.6 1",
        }
    )[list(SEGMENTATION_COLUMNS)]
    df.to_csv(path, index=False)
    return mids


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_125_530, help="rows in the generated segmentation CSV")
    ap.add_argument("--dir", default=None, help="folder for the generated CSV (default: a temp folder)")
    args = ap.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="bench_oid_tables_")
    path = os.path.join(folder, "segmentation.csv")
    t_write, mids = timed(lambda: write_csv(path, args.rows))
    size_mb = os.path.getsize(path) / 1e6
    results = []
    t, (df, _) = timed(lambda: read_segmentation_csv(path))
    results.append(("read, raise mode", t, len(df)))
    t, (df, skips) = timed(lambda: read_segmentation_csv(path, valid_mids=mids[:150], on_error="skip"))
    results.append((f"read, skip mode, half the classes ({skips.total} skipped)", t, len(df)))
    with open(path, "a") as f:
        f.write("bad_m0_1.png,bad,/m/00000,1,0.5,0.1,0,1,0.5,\n")
    t, err = timed(lambda: _raises(path))
    results.append((f"bad last row -> error ({err[:40]}...)", t, 0))
    print(f"segmentation CSV: {args.rows:,} rows, {size_mb:.0f} MB (written in {t_write:.1f} s), {os.cpu_count()} CPUs")
    print(f"{'case':<62}{'seconds':>9}{'rows/s':>12}")
    for name, sec, n in results:
        print(f"{name:<62}{sec:>9.2f}{(n / sec if n else 0):>12,.0f}")


def _raises(path: str) -> str:
    try:
        read_segmentation_csv(path)
    except OidFormatError as e:
        return str(e).rsplit("/", 1)[-1]
    return "no error"


if __name__ == "__main__":
    main()
