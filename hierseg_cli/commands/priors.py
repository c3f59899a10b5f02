"""ShapeMask shape priors of a prepared layer: per class, k-means of the training masks cropped to their
boxes and resized to SIZE x SIZE, written as float32 [num_classes, K, SIZE, SIZE] .npy (local or gs://).
Set the file as model.shapemask.shape_prior_path."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="a prepared layer folder (hierseg prepare OUT/layer0), local or gs://")
    p.add_argument("--out", required=True, help="the .npy file to write (replaced atomically)")
    p.add_argument("--k", type=int, default=20, help="shape clusters per class")
    p.add_argument("--size", type=int, default=32, help="prior side (= model.shapemask.mask_crop_size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask sampling and the k-means")
    p.add_argument("--max_per_class", type=int, default=2000, help="masks sampled per class for the k-means")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from hierseg.priors import compute_priors, write_priors
    from hierseg_cli.experiment_args import data_dir_overrides, setup_logging

    setup_logging()
    paths = data_dir_overrides(args.data)
    priors = compute_priors(
        paths["data"]["train_file_pattern"],
        paths["model"]["num_classes"],
        args.k,
        size=args.size,
        seed=args.seed,
        max_per_class=args.max_per_class,
        show_progress=not args.no_progress,
    )
    write_priors(priors, args.out)
    print(f"wrote {args.out}: shape priors {list(priors.shape)}")
    return 0
