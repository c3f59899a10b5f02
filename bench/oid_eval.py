"""Speed of the challenge metric (`hierseg oid-eval`'s evaluator): images/s over a synthetic set.

Ground truth is built in memory: ``--images`` images (default 10k) of 256-512 px per side, each with
about ``--gt`` masks (random polygons, made RLE by pycocotools without dense arrays) of classes of the
real 300-class hierarchy, some group-of, some box-only, positive and negative image labels.
Predictions: about ``--preds`` per image, jittered copies of the ground-truth masks (some of another
class) plus random false detections, not expanded (as in a submission, parents copied for half).

Timed: adding the ground truth (hierarchy expansion), evaluating every image (mask IoU through RLE,
matching), and the final AP; for 1 and for ``--workers`` processes. Also the submission path:
encoding all predictions as a challenge CSV and parsing it back.

    python bench/oid_eval.py [--images 10000] [--gt 10] [--preds 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from pycocotools import mask as coco_mask

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ensembles.metric import ImageGroundTruth, OidChallengeEvaluator  # noqa: E402
from hierseg.detections import Detections  # noqa: E402
from hierseg.hierarchy import Hierarchy  # noqa: E402
from hierseg.rle import rle_boxes  # noqa: E402


def polygon(rng, cy, cx, ry, rx, k=10):
    a = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = rng.uniform(0.6, 1.0, k)
    return np.stack([cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)], 1).reshape(-1).tolist()


def poly_rle(poly, h, w):
    return coco_mask.merge(coco_mask.frPyObjects([poly], h, w))


def make_image(rng, idx, hierarchy, classes, n_gt, n_pred):
    h, w = (int(v) for v in rng.integers(256, 513, size=2))
    image_id = f"{idx:016x}"
    gt_classes, gt_rles, gt_boxes, group = [], [], [], []
    polys = []
    for _ in range(max(1, int(rng.poisson(n_gt)))):
        c = classes[int(rng.integers(len(classes)))]
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ry, rx = rng.uniform(0.05, 0.2) * h, rng.uniform(0.05, 0.2) * w
        poly = polygon(rng, cy, cx, ry, rx)
        kind = rng.random()
        rle = None if kind < 0.05 else poly_rle(poly, h, w)  # 5% box-only
        box = [max(cy - ry, 0) / h, max(cx - rx, 0) / w, min(cy + ry, h) / h, min(cx + rx, w) / w]
        gt_classes.append(c)
        gt_rles.append(rle)
        gt_boxes.append(box)
        group.append(bool(0.05 <= kind < 0.08))  # 3% group-of
        polys.append((c, cy, cx, ry, rx))
    negatives = [classes[int(rng.integers(len(classes)))] for _ in range(2)]
    negatives = [n for n in negatives if n not in gt_classes]
    gt = ImageGroundTruth.from_annotations(
        image_id, h, w, gt_classes, np.asarray(gt_boxes), gt_rles, group, sorted(set(gt_classes)), negatives
    )
    p_classes, p_scores, p_rles = [], [], []
    for c, cy, cx, ry, rx in polys:
        if len(p_classes) >= n_pred:
            break
        jitter = rng.normal(0, 0.1, 2)
        pc = c if rng.random() < 0.8 else classes[int(rng.integers(len(classes)))]
        rle = poly_rle(polygon(rng, cy + jitter[0] * ry, cx + jitter[1] * rx, ry, rx), h, w)
        targets = hierarchy.expand_positive(pc) if rng.random() < 0.5 else (pc,)
        for t in targets:
            p_classes.append(t)
            p_scores.append(float(rng.uniform(0.05, 1.0)))
            p_rles.append(rle)
    while len(p_classes) < n_pred:  # false detections
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        p_classes.append(classes[int(rng.integers(len(classes)))] if rng.random() < 0.5 else gt_classes[0])
        p_scores.append(float(rng.uniform(0.05, 0.6)))
        p_rles.append(poly_rle(polygon(rng, cy, cx, 0.1 * h, 0.1 * w), h, w))
    det = Detections(image_id, h, w, p_classes, p_scores, rle_boxes(p_rles).astype(np.float32), p_rles)
    return gt, det


def timed_eval(hierarchy, gts, dets, workers):
    c0 = time.process_time()
    t0 = time.perf_counter()
    ev = OidChallengeEvaluator(hierarchy, num_workers=workers)
    for g in gts:
        ev.add_ground_truth(g)
    t1 = time.perf_counter()
    ev.add_predictions(dets)
    t2 = time.perf_counter()
    m = ev.evaluate()
    t3 = time.perf_counter()
    return m, (t1 - t0, t2 - t1, t3 - t2), time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10000, help="synthetic images")
    ap.add_argument("--gt", type=int, default=10, help="mean ground-truth masks per image")
    ap.add_argument("--preds", type=int, default=20, help="predictions per image")
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel run")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args()

    hierarchy = Hierarchy.builtin()
    classes = hierarchy.classes
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    pairs = [make_image(rng, i, hierarchy, classes, args.gt, args.preds) for i in range(args.images)]
    gts, dets = [p[0] for p in pairs], [p[1] for p in pairs]
    n_gt = sum(len(g) for g in gts)
    n_det = sum(len(d) for d in dets)
    print(
        f"built {args.images} images, {n_gt} ground-truth instances, {n_det} predictions "
        f"in {time.perf_counter() - t:.1f} s"
    )

    rows = []
    maps = []
    for workers in sorted({1, args.workers}):
        m, (t_gt, t_eval, t_ap), cpu = timed_eval(hierarchy, gts, dets, workers)
        maps.append(m["mAP"])
        total = t_gt + t_eval + t_ap
        name = f"evaluate, {workers} process{'es' if workers > 1 else ''}"
        rows.append((name, f"{t_gt:.2f}", f"{t_eval:.2f}", f"{t_ap:.2f}", total, args.images / total))
        if workers == 1:  # all work in this process: CPU time, which other load on the machine does not inflate
            rows.append(("  same, per CPU second", "", "", "", cpu, args.images / cpu))
    assert all(abs(x - maps[0]) < 1e-12 for x in maps), maps

    from ensembles.prediction_io import read_predictions
    from ensembles.submission import write_submission

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sub.csv")
        t0 = time.perf_counter()
        write_submission(dets, path, hierarchy)
        t1 = time.perf_counter()
        parsed = sum(len(d) for d in read_predictions(path))
        t2 = time.perf_counter()
        size_mb = os.path.getsize(path) / 1e6
    assert parsed >= n_det
    print(f"\nmAP of the synthetic predictions: {maps[0]:.4f} over {len(m['per_class'])} classes\n")
    print(f"{'stage':<28}{'gt (s)':>9}{'images (s)':>12}{'AP (s)':>9}{'total (s)':>11}{'images/s':>10}")
    for name, a, b, c, tot, ips in rows:
        print(f"{name:<28}{a:>9}{b:>12}{c:>9}{tot:>11.2f}{ips:>10.0f}")
    print(
        f"{'write submission CSV':<28}{'':>9}{t1 - t0:>12.2f}{'':>9}{t1 - t0:>11.2f}{args.images / (t1 - t0):>10.0f}"
        f"   ({size_mb:.0f} MB)"
    )
    print(f"{'parse submission CSV':<28}{'':>9}{t2 - t1:>12.2f}{'':>9}{t2 - t1:>11.2f}{args.images / (t2 - t1):>10.0f}")


if __name__ == "__main__":
    main()
