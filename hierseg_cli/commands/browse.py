"""Ground truth drawn on images, from a dataset folder (--oid_dir) or from prepared TFRecords (--data,
decoded by the training decoder: exactly what the model sees, the Layer1 gray fill included): masks,
label paths, group-of regions hatched, boxes without a mask dashed, a colour legend. Writes
OUT/<ImageID>.png per image and OUT/grid.png."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--oid_dir", help="dataset folder (challenge 2019 layout)")
    src.add_argument("--data", help="a prepared layer folder (hierseg prepare's OUT/layer1)")
    p.add_argument("--split", default="validation", help="split to browse (train or validation)")
    p.add_argument("--classes", help="only images with one of these classes, by name: 'Man,Teddy bear'")
    p.add_argument("--images", type=int, default=12, help="images to draw")
    p.add_argument("--long_side", type=int, default=512, help="size of each picture's long side, pixels")
    p.add_argument("--columns", type=int, default=3, help="pictures per row of the grid")
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hierseg.hierarchy import Hierarchy
    from hierseg.oid.layout import OidPaths
    from hierseg.serving.render import compose, legend_entries, render, tile
    from hierseg.serving.visualize import save_png
    from hierseg_cli.ground_truth_view import oid_examples, prepared_examples

    hierarchy = OidPaths.from_dir(args.oid_dir).load_hierarchy() if args.oid_dir else Hierarchy.builtin()
    wanted = None
    if args.classes:
        try:
            wanted = {hierarchy.mid_of(n.strip()) for n in args.classes.split(",") if n.strip()}
        except KeyError as e:
            raise SystemExit(f"--classes: {e}") from None
    if args.oid_dir:
        examples = oid_examples(args.oid_dir, args.split, hierarchy, wanted, args.images)
    else:
        examples = prepared_examples(args.data, args.split, hierarchy, wanted, args.images)
    os.makedirs(args.out, exist_ok=True)
    pngs = []
    name = lambda m: hierarchy.name(m) if m in hierarchy else m  # noqa: E731
    for image_id, image, instances in examples:
        picture, _ = render(image, instances, long_side=args.long_side, title=image_id)
        pngs.append(os.path.join(args.out, f"{image_id}.png"))
        save_png(compose([picture], legend_entries(instances, name)), pngs[-1])
    if not pngs:
        raise SystemExit("no image matched (check --classes and --split)")
    grid = os.path.join(args.out, "grid.png")
    tile(pngs, grid, columns=args.columns)
    print(f"wrote {len(pngs)} pictures and {grid}")
    return 0
