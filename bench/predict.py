"""Prediction speed: images/s of `hierseg predict` and how its time divides between decode, Layer0,
Layer1, ensembling and encoding, for the tiny CPU config and for Mask R-CNN ResNet-50-FPN at 1024.

Models have random weights (speed does not depend on them, except through the number of detections,
which is capped by ``model.detection.max_detections`` and by the per-layer ``ensemble.min_layer{0,1}_score``);
they are exported with the exporter's DetectionModule and run through the real workflow
(:func:`hierseg_cli.workflows.predict_folder.predict_folder`), over JPEGs of Open Images size
(1024 px on the longer side). Label maps are the real Layer0/Layer1 class sets of the 300-class
hierarchy.

A second table measures memory on one 10000 x 8000 JPEG with 100 detections (a fresh process per
run, so its peak RSS is that image's): decoding it and turning 100 box masks into full-resolution
RLEs (:func:`hierseg.evaluation.model_outputs.image_detections`, pasted one detection at a time inside
its box). Target: peak < 1.5 GB (it was 6.3 GB when every detection was pasted full-size at once).

    python bench/predict.py [--images 8] [--r50_images 4] [--batch_size 2] [--skip_r50] [--skip_big_image]
    python bench/predict.py --big_image_only [--big_size 10000x8000] [--big_detections 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_images(folder: str, n: int, seed: int = 0) -> None:
    """n JPEGs, 1024 on the longer side, smooth colours with some texture (JPEG size like a photo)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for k in range(n):
        h, w = (768, 1024) if k % 2 == 0 else (1024, 683)
        low = rng.uniform(0, 255, size=[h // 64 + 1, w // 64 + 1, 3])
        img = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        img = np.clip(img + rng.normal(0, 12, size=img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f"{k:016x}.jpg"), quality=90)


def random_export(config_file: str, layer: int, work: str, overrides: list[str]) -> str:
    """Exports a random-weight model of ``config_file`` for Layer ``layer`` of the 300-class hierarchy."""
    import tensorflow as tf

    from hierseg.config.experiment import ExperimentConfig
    from hierseg.config.params import load, merge
    from hierseg.config.params import save as save_config
    from hierseg.hierarchy import Hierarchy
    from hierseg.label_map import LabelMap
    from hierseg.models.factory import build_model
    from hierseg.serving.export import CONFIG_FILE, LABEL_MAP_FILE, DetectionModule

    os.makedirs(work, exist_ok=True)
    h = Hierarchy.builtin()
    mids = h.layers()[layer]
    label_map = os.path.join(work, f"label_map_{layer}.pbtxt")
    LabelMap.from_classes(mids, h.names).save(label_map)
    cfg = load(ExperimentConfig, config_file, overrides)
    cfg = merge(cfg, {"data": {"label_map": label_map}, "model": {"num_classes": len(mids)}})
    # Random weights: the export's DetectionModule wraps a freshly built model (no checkpoint needed).
    module = DetectionModule(
        build_model(cfg.model, cfg.data.output_size), cfg.data.output_size, cfg.eval.mask_threshold
    )
    export_dir = os.path.join(work, f"export{layer}")
    tf.saved_model.save(
        module, export_dir, signatures={"serving_default": module.serve_bytes, "serve_images": module.serve_images}
    )
    LabelMap.load(label_map).save(os.path.join(export_dir, LABEL_MAP_FILE))
    save_config(cfg, os.path.join(export_dir, CONFIG_FILE))
    return export_dir


def bench(
    name: str, config_file: str, images_dir: str, n: int, batch_size: int, work: str, overrides: list[str]
) -> dict:
    from ensembles.config import PredictConfig
    from hierseg.hierarchy import Hierarchy
    from hierseg.serving.predictor import LayerPredictor
    from hierseg_cli.workflows.predict_folder import predict_folder

    t = time.perf_counter()
    exports = [random_export(config_file, layer, os.path.join(work, name), overrides) for layer in (0, 1)]
    predictors = tuple(LayerPredictor(e) for e in exports)
    setup = time.perf_counter() - t
    paths = sorted(os.path.join(images_dir, f) for f in os.listdir(images_dir))[:n]
    # Warm-up on one image (graph tracing and first-call costs are not what a 100k-image run sees).
    predict_folder(
        *exports,
        paths[:1],
        os.path.join(work, name, "warmup"),
        PredictConfig(batch_size=1),
        hierarchy=Hierarchy.builtin(),
        show_progress=False,
        predictors=predictors,
    )
    res = predict_folder(
        *exports,
        paths,
        os.path.join(work, name, "out"),
        PredictConfig(batch_size=batch_size),
        hierarchy=Hierarchy.builtin(),
        show_progress=False,
        predictors=predictors,
    )
    res["setup_seconds"] = setup
    res["name"] = name
    return res


def print_table(rows: list[dict]) -> None:
    keys = ("decode", "layer0", "layer1", "ensembling", "encoding")
    head = f"{'model':<28}{'images':>7}{'img/s':>8}" + "".join(f"{k:>12}" for k in keys) + f"{'inst/img':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        t = r["timing"]
        total = sum(t[k] for k in keys) or 1.0
        cells = "".join(f"{t[k]:6.2f}s{100 * t[k] / total:4.0f}%" for k in keys)
        print(
            f"{r['name']:<28}{r['num_ok']:>7}{r['images_per_second']:>8.3f}{cells}"
            f"{r['num_instances'] / max(1, r['num_ok']):>10.1f}"
        )
    print(
        "\ntimes are wall seconds per stage over the run (decode = waiting for the parallel decoder; layerK = "
        "model call + mask pasting + RLE; encoding = part files + final JSONL/CSV)."
    )


BIG_IMAGE_CHILD = """
import resource, sys, time
import numpy as np
sys.path.insert(0, {repo!r})
from PIL import Image
from hierseg import features as F
from hierseg.label_map import LabelMap
from hierseg.serving.image_io import decode_bytes
from hierseg.evaluation.model_outputs import image_detections

width, height, num = {width}, {height}, {num}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
image = decode_bytes(open({path!r}, "rb").read())
rng = np.random.default_rng(0)
side = rng.uniform(0.05, 0.9, num)  # small to nearly whole-image boxes
y0, x0 = rng.random(num) * (1 - side), rng.random(num) * (1 - side)
boxes = np.stack([y0, x0, y0 + side, x0 + side], axis=1).astype(np.float32)
outputs = {{
    F.NUM_DETECTIONS: np.array([num]),
    F.DET_SCORES: np.linspace(0.99, 0.5, num, dtype=np.float32)[None],
    F.DET_CLASSES: np.ones((1, num), np.int32),
    F.DET_BOXES: boxes[None],
    F.DET_MASKS: (rng.random((1, num, 28, 28)) > 0.3).astype(np.float32),
}}
label_map = LabelMap.from_classes(["/m/01g317"], {{"/m/01g317": "Person"}})
dets = image_detections(outputs, 0, "big", image.shape[0], image.shape[1], label_map)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(dets), seconds, base * 1024, peak * 1024)
"""


def big_image_row(work: str, width: int, height: int, num: int) -> dict:
    """Peak RSS of decoding one width x height JPEG and converting ``num`` detections, in a fresh process."""
    import subprocess

    path = os.path.join(work, "big.jpg")
    rng = np.random.default_rng(0)
    low = rng.uniform(0, 255, size=[height // 256 + 1, width // 256 + 1, 3]).astype(np.uint8)
    Image.fromarray(low).resize((width, height), Image.Resampling.BILINEAR).save(path, quality=90)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = BIG_IMAGE_CHILD.format(repo=repo, width=width, height=height, num=num, path=path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    n, seconds, base, peak = int(out[0]), float(out[1]), int(out[2]), int(out[3])
    return {"size": f"{width}x{height}", "detections": n, "seconds": seconds, "start": base, "peak": peak}


def print_big_image_table(rows: list[dict]) -> None:
    print(f"\n{'image':<14}{'detections':>11}{'seconds':>9}{'RSS at start':>14}{'peak RSS':>10}{'vs 1.5 GB':>11}")
    for r in rows:
        print(
            f"{r['size']:<14}{r['detections']:>11}{r['seconds']:>9.2f}{r['start'] / 1e9:>12.2f}GB"
            f"{r['peak'] / 1e9:>8.2f}GB{r['peak'] / 1.5e9:>10.2f}x"
        )
    print("peak RSS = the whole process: Python, numpy, the decoded image and the pasted, RLE-encoded masks.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8, help="images for the tiny config")
    ap.add_argument("--r50_images", type=int, default=4, help="images for ResNet-50-FPN at 1024")
    ap.add_argument("--batch_size", type=int, default=2, help="images per model call")
    ap.add_argument("--skip_r50", action="store_true", help="only the tiny config")
    ap.add_argument("--skip_big_image", action="store_true", help="no 10000x8000 memory row")
    ap.add_argument("--big_image_only", action="store_true", help="only the 10000x8000 memory row")
    ap.add_argument("--big_size", default="10000x8000", help="WIDTHxHEIGHT of the memory row's JPEG")
    ap.add_argument("--big_detections", type=int, default=100, help="detections of the memory row")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    big_rows = []
    if not args.skip_big_image:
        width, height = (int(v) for v in args.big_size.lower().split("x"))
        with tempfile.TemporaryDirectory() as work:
            big_rows.append(big_image_row(work, width, height, args.big_detections))
        if args.big_image_only:
            print_big_image_table(big_rows)
            return
    from hierseg_cli.workflows.demo import find_config

    rows = []
    with tempfile.TemporaryDirectory() as work:
        images = os.path.join(work, "images")
        write_images(images, max(args.images, args.r50_images))
        rows.append(bench("tiny_cpu", find_config("tiny_cpu.yaml"), images, args.images, args.batch_size, work, []))
        if not args.skip_r50:
            rows.append(
                bench(
                    "maskrcnn_r50_fpn@1024",
                    find_config("layer0_maskrcnn_r50_fpn.yaml"),
                    images,
                    args.r50_images,
                    args.batch_size,
                    work,
                    ["train.init.path=,train.precision=float32"],
                )
            )
    print_table(rows)
    if big_rows:
        print_big_image_table(big_rows)


if __name__ == "__main__":
    main()
