"""Prediction speed: images/s of `hierseg predict` and how its time divides between decode, Layer0,
Layer1, ensembling and encoding, for the tiny CPU config and for Mask R-CNN ResNet-50-FPN at 1024.

Models have random weights (speed does not depend on them, except through the number of detections,
which is capped by ``model.detection.max_detections`` and by the per-layer ``--layer_min_score``);
they are exported with the exporter's DetectionModule and run through the real workflow
(:func:`hierseg_cli.workflows.predict_folder.predict_folder`), over JPEGs of Open Images size
(1024 px on the longer side). Label maps are the real Layer0/Layer1 class sets of the 300-class
hierarchy.

    python bench/predict.py [--images 8] [--r50_images 4] [--batch_size 2] [--skip_r50]
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
        batch_size=1,
        hierarchy=Hierarchy.builtin(),
        show_progress=False,
        predictors=predictors,
    )
    res = predict_folder(
        *exports,
        paths,
        os.path.join(work, name, "out"),
        batch_size=batch_size,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8, help="images for the tiny config")
    ap.add_argument("--r50_images", type=int, default=4, help="images for ResNet-50-FPN at 1024")
    ap.add_argument("--batch_size", type=int, default=2, help="images per model call")
    ap.add_argument("--skip_r50", action="store_true", help="only the tiny config")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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


if __name__ == "__main__":
    main()
