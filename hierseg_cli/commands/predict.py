"""Run both layers' exports over an image folder, ensemble each image's predictions into parent-child
labeled masks, and write the challenge submission (submission.csv), per-image results with label paths
(predictions.jsonl, layer0.jsonl, layer1.jsonl), a report of unreadable images (report.json), the time
split (timing.json) and, with --visualize, one PNG per image. Re-running with the same --out resumes."""

from __future__ import annotations

import argparse

from hierseg.hierarchy import Hierarchy


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer0", required=True, help="export directory of the Layer0 model (hierseg export)")
    p.add_argument("--layer1", required=True, help="export directory of the Layer1 model (hierseg export)")
    p.add_argument("--images", required=True,
                   help="images: a directory, a glob ('dir/*.jpg') or a file; local or gs://")
    p.add_argument("--out", required=True, help="output directory; running again with the same one resumes")
    p.add_argument("--visualize", action="store_true", help="also write OUT/visualize/<ImageID>.png")
    p.add_argument("--batch_size", type=int, default=4, help="images per model call")
    p.add_argument("--config_file", help="ensembling config YAML (ensembles.config.EnsembleConfig fields)")
    p.add_argument("--params_override", action="append", default=[],
                   help="ensembling overrides, 'a.b=1,c=x' or YAML/JSON (repeatable)")
    p.add_argument("--score_threshold", type=float, default=0.0,
                   help="instances scoring below this are left out of the submission")
    p.add_argument("--max_per_image", type=int, default=None,
                   help="at most this many instances per image in the submission (highest scores)")
    p.add_argument("--layer_min_score", type=float, default=0.05,
                   help="each layer's detections below this score are dropped before ensembling")
    p.add_argument("--hierarchy", help="hierarchy JSON (local or gs://); default: the shipped 300-class one")
    p.add_argument("--classes", help="class-description CSV (MID,Name) for --hierarchy")
    p.add_argument("--no_exif", action="store_true",
                   help="ignore EXIF orientation (use the stored pixels, as Open Images annotations do)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def load_ensemble_config(config_file: str | None, params_override: list[str] | None):
    """The ensembling config from defaults <- file <- overrides (an unknown key is an error)."""
    from ensembles.config import EnsembleConfig

    from hierseg.config.params import load

    return load(EnsembleConfig, config_file, params_override)


def print_result(result: dict) -> None:
    timing = result["timing"]
    total = sum(timing.values()) or 1.0
    print(f"{result['num_images']} images: {result['num_ok']} predicted "
          f"({result['num_resumed']} done by an earlier run), {result['num_unreadable']} unreadable, "
          f"{result['num_instances']} instances")
    print(f"{result['images_per_second']:.2f} images/s this run; time split:")
    for key, sec in timing.items():
        print(f"  {key:<11}{sec:9.2f} s {100 * sec / total:6.1f} %")
    for u in result["unreadable"]:
        print(f"  unreadable: {u['path']}: {u['error']}")
    for name, path in result["files"].items():
        print(f"wrote {name}: {path}")


def run(args: argparse.Namespace) -> int:
    from hierseg_cli.workflows.predict_folder import predict_folder

    hierarchy = Hierarchy.from_files(args.hierarchy, args.classes) if args.hierarchy else Hierarchy.builtin()
    result = predict_folder(
        args.layer0, args.layer1, args.images, args.out, batch_size=args.batch_size,
        ensemble_config=load_ensemble_config(args.config_file, args.params_override), hierarchy=hierarchy,
        visualize=args.visualize, show_progress=not args.no_progress, score_threshold=args.score_threshold,
        max_per_image=args.max_per_image, layer_min_score=args.layer_min_score, apply_exif=not args.no_exif)
    print_result(result)
    return 0
