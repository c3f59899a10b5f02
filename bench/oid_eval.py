"""Speed of `hierseg oid-eval` end to end: cold-cache seconds, warm-cache seconds, peak memory.

A synthetic validation split is written once (reused from --workdir): ``--images`` images (default
10,000) of 400-1024 px per side with about 2.3 ground-truth masks each, stored as PNGs in the 16 zip
shards at 25-60% of the image resolution (Open Images stores masks below image resolution), the
masks/bbox/labels CSVs of the challenge layout (3% group-of, 5% box-only rows, positive and negative
image labels), an ``ImageID,Width,Height`` size table, and a submission CSV with about 4.5
predictions per image (jittered ground-truth masks, some with another class or copied to their
parents, plus false detections), masks at image size.

Then `hierseg oid-eval --num_workers 2` runs twice in a subprocess: with an empty ground-truth cache
(cold: ground truth decoded from the PNGs, then cached) and again (warm: ground truth from the cache).
Peak memory is the largest sum of the proportional set sizes (PSS: shared pages split between the
processes sharing them) of the command's process tree, sampled every 100 ms.

    python bench/oid_eval.py [--images 10000] [--workers 2] [--workdir DIR]
    python bench/oid_eval.py --quick        # 500 images, to check that it runs

Targets (issue 10, 10,000 images on the 2-core machine): cold <= 20 s, warm <= 5 s, peak <= 1 GB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
from PIL import Image, ImageDraw

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hierseg.hierarchy import Hierarchy  # noqa: E402
from hierseg.mask_resize import nearest_indices  # noqa: E402
from hierseg.oid.layout import SHARDS, OidPaths  # noqa: E402
from hierseg.oid.mask_codec import oid_mask_from_rle  # noqa: E402
from hierseg.prediction_file import SubmissionCsvWriter  # noqa: E402
from hierseg.rle import encode_resampled  # noqa: E402

SPLIT = "validation"
TARGETS = {"cold": 20.0, "warm": 5.0, "peak_gb": 1.0}


# ----------------------------------------------------------------------------- synthetic split
def _polygon(rng, cy, cx, ry, rx, k=12):
    a = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(0.6, 1.0, k)
    return list(zip((cx + rx * r * np.cos(a)).tolist(), (cy + ry * r * np.sin(a)).tolist()))


def _render(poly, h, w, scale):
    """The polygon (in image pixels) drawn on a [round(h * scale), round(w * scale)] bool grid."""
    mh, mw = max(1, round(h * scale)), max(1, round(w * scale))
    im = Image.new("L", (mw, mh), 0)
    ImageDraw.Draw(im).polygon([(x * mw / w, y * mh / h) for x, y in poly], fill=255)
    return np.asarray(im) > 127


def _upscaled_rle(small, h, w):
    return encode_resampled(small, nearest_indices(small.shape[0], h), nearest_indices(small.shape[1], w))


def _image(rng, idx, hierarchy, classes):
    """One image: its CSV rows, mask PNGs and submission triples."""
    image_id = f"{idx:016x}"
    h, w = (int(v) for v in rng.integers(400, 1025, size=2))
    masks, bboxes, labels, pngs, triples = [], [], [], [], []
    objects = []
    for j in range(1 + int(rng.poisson(1.3))):
        c = classes[int(rng.integers(len(classes)))]
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        poly = _polygon(rng, cy, cx, ry, rx)
        small = _render(poly, h, w, rng.uniform(0.25, 0.6))
        ys, xs = np.nonzero(small)
        if not len(ys):
            continue
        sh, sw = small.shape
        box = (xs.min() / sw, (xs.max() + 1) / sw, ys.min() / sh, (ys.max() + 1) / sh)  # XMin, XMax, YMin, YMax
        coords = [f"{v:.6f}" for v in box]
        name = f"{image_id}_{c.replace('/', '')}_{j:08x}.png"
        buf = io.BytesIO()
        Image.fromarray(small.astype(np.uint8) * 255).save(buf, format="PNG")
        pngs.append((name, buf.getvalue()))
        masks.append([name, image_id, c, f"{j:08x}", *coords, "0.9", ""])
        bboxes.append([image_id, c, *coords, str(int(rng.random() < 0.03))])
        objects.append((c, cy, cx, ry, rx))
    if rng.random() < 0.05 * len(objects) or not objects:  # box-only rows
        c = classes[int(rng.integers(len(classes)))]
        bboxes.append([image_id, c, "0.100000", "0.400000", "0.100000", "0.400000", "0"])
    positives = sorted({row[2] for row in masks})
    labels += [[image_id, c, "1"] for c in positives]
    labels.append([image_id, classes[int(rng.integers(len(classes)))], "0"])
    for c, cy, cx, ry, rx in objects:  # ~1.6 predictions per object, +2 false detections per image
        jitter = rng.normal(0, 0.08, 2)
        pc = c if rng.random() < 0.8 else classes[int(rng.integers(len(classes)))]
        poly = _polygon(rng, cy + jitter[0] * ry, cx + jitter[1] * rx, ry, rx)
        encoded = oid_mask_from_rle(_upscaled_rle(_render(poly, h, w, rng.uniform(0.3, 0.7)), h, w))
        targets = hierarchy.expand_positive(pc)[:2] if rng.random() < 0.6 else (pc,)
        triples += [(t, float(rng.uniform(0.05, 1.0)), encoded) for t in targets]
    for _ in range(2):  # false detections
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        poly = _polygon(rng, cy, cx, 0.1 * h, 0.1 * w)
        encoded = oid_mask_from_rle(_upscaled_rle(_render(poly, h, w, 0.5), h, w))
        triples.append((classes[int(rng.integers(len(classes)))], float(rng.uniform(0.05, 0.6)), encoded))
    return image_id, (h, w), masks, bboxes, labels, pngs, triples


def _chunk(args):
    start, stop, seed = args
    hierarchy = Hierarchy.builtin()
    rng = np.random.default_rng([seed, start])
    return [_image(rng, i, hierarchy, hierarchy.classes) for i in range(start, stop)]


def write_split(workdir: str, images: int, seed: int, workers: int) -> dict:
    """Writes the synthetic split under ``workdir`` (skipped when it is already complete)."""
    done = os.path.join(workdir, "split.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    from ensembles.process_pool import process_pool

    paths = OidPaths.from_dir(workdir)
    os.makedirs(paths.mask_zip_dir(SPLIT), exist_ok=True)
    step = 250
    tasks = [(s, min(s + step, images), seed) for s in range(0, images, step)]
    with process_pool(workers) as pool:
        results = [r for chunk in pool.imap(_chunk, tasks) for r in chunk]
    zips = {s: zipfile.ZipFile(paths.mask_zip(SPLIT, s), "w", zipfile.ZIP_STORED) for s in SHARDS}
    tables = {
        paths.masks_csv(SPLIT): "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks",
        paths.bbox_csv(SPLIT): "ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf",
        paths.labels_csv(SPLIT): "ImageID,LabelName,Confidence",
        os.path.join(workdir, "image_sizes.csv"): "ImageID,Width,Height",
    }
    files = {p: open(p, "w", newline="") for p in tables}
    writers = {p: csv.writer(f, lineterminator="\n") for p, f in files.items()}
    for p, header in tables.items():
        writers[p].writerow(header.split(","))
    counts = {"images": images, "masks": 0, "predictions": 0}
    with SubmissionCsvWriter(os.path.join(workdir, "submission.csv")) as sub:
        for image_id, (h, w), masks, bboxes, labels, pngs, triples in results:
            for name, data in pngs:
                zips[name[0]].writestr(name, data)
            writers[paths.masks_csv(SPLIT)].writerows(masks)
            writers[paths.bbox_csv(SPLIT)].writerows(bboxes)
            writers[paths.labels_csv(SPLIT)].writerows(labels)
            writers[os.path.join(workdir, "image_sizes.csv")].writerow([image_id, w, h])
            sub.write_row(image_id, h, w, triples)
            counts["masks"] += len(masks)
            counts["predictions"] += len(triples)
    for f in files.values():
        f.close()
    for z in zips.values():
        z.close()
    with open(done, "w") as f:
        json.dump(counts, f)
    return counts


# ------------------------------------------------------------------------------------ measuring
def _tree_pss(root: int) -> int:
    """Summed PSS (bytes) of ``root`` and its descendants, from /proc."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration):
            pass
    return total


def run_eval(workdir: str, cache_dir: str, workers: int) -> tuple[float, int, dict]:
    """Runs `hierseg oid-eval`; returns (seconds, peak PSS bytes, metrics)."""
    from hierseg.resources import CLASSES_CSV, HIERARCHY_JSON

    out = os.path.join(workdir, "metrics.json")
    cmd = [sys.executable, "-m", "hierseg_cli.main", "oid-eval", "--oid_dir", workdir, "--split", SPLIT]
    cmd += ["--submission", os.path.join(workdir, "submission.csv"), "--output_metrics", out]
    cmd += ["--image_sizes", os.path.join(workdir, "image_sizes.csv"), "--cache_dir", cache_dir]
    cmd += ["--hierarchy", str(HIERARCHY_JSON), "--classes", str(CLASSES_CSV)]
    cmd += ["--num_workers", str(workers), "--no_progress"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_pss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"oid-eval failed ({proc.returncode}):\n{stdout}\n{stderr}")
    with open(out) as f:
        return seconds, peak[0], json.load(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10000, help="synthetic images")
    ap.add_argument("--quick", action="store_true", help="500 images: check that the bench runs")
    ap.add_argument("--workers", type=int, default=2, help="--num_workers of oid-eval (and of writing the split)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the split")
    ap.add_argument("--workdir", help="folder of the synthetic split (default: a folder in the temp dir, reused)")
    args = ap.parse_args()
    images = 500 if args.quick else args.images
    import tempfile

    workdir = args.workdir or os.path.join(tempfile.gettempdir(), f"hierseg-bench-oid-eval-{images}-{args.seed}")
    t = time.perf_counter()
    counts = write_split(workdir, images, args.seed, args.workers)
    print(
        f"split: {counts['images']} images, {counts['masks']} ground-truth masks, {counts['predictions']} "
        f"predictions in {workdir} (ready in {time.perf_counter() - t:.1f} s)"
    )
    cache_dir = os.path.join(workdir, "gt_cache")
    for name in os.listdir(cache_dir) if os.path.isdir(cache_dir) else []:
        os.remove(os.path.join(cache_dir, name))  # cold: no cached ground truth
    cold, cold_peak, m_cold = run_eval(workdir, cache_dir, args.workers)
    warm, warm_peak, m_warm = run_eval(workdir, cache_dir, args.workers)
    assert m_cold["ground_truth"]["cache"] == "written" and m_warm["ground_truth"]["cache"] == "hit"
    assert m_cold["mAP"] == m_warm["mAP"], (m_cold["mAP"], m_warm["mAP"])
    peak = max(cold_peak, warm_peak) / 1e9
    scale = f" (targets are for 10,000 images; this run has {images})" if images != 10000 else ""
    print(f"\nmAP {m_cold['mAP']:.4f} over {len(m_cold['per_class'])} classes, {args.workers} workers{scale}\n")
    print(f"{'measure':<22}{'value':>10}{'target':>10}")
    print(f"{'cold cache (s)':<22}{cold:>10.2f}{TARGETS['cold']:>10.1f}")
    print(f"{'warm cache (s)':<22}{warm:>10.2f}{TARGETS['warm']:>10.1f}")
    print(f"{'peak memory (GB)':<22}{peak:>10.3f}{TARGETS['peak_gb']:>10.1f}")


if __name__ == "__main__":
    main()
