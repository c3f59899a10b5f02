"""Flags shared by `hierseg ensemble`, `submit`, `validate-submission` and `oid-eval`: which hierarchy
and which image set."""

from __future__ import annotations

import argparse

from hierseg.hierarchy import Hierarchy


def add_hierarchy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hierarchy",
        help="hierarchy JSON; default: the one in --oid_dir if given, else the shipped 300-class challenge hierarchy",
    )
    p.add_argument("--classes", help="class-description CSV (MID,Name, no header) to go with --hierarchy")


def load_hierarchy(args: argparse.Namespace) -> Hierarchy:
    """--hierarchy (+ --classes), else the dataset folder's files, else the shipped hierarchy."""
    if getattr(args, "hierarchy", None):
        return Hierarchy.from_files(args.hierarchy, args.classes)
    if getattr(args, "oid_dir", None):
        from hierseg.oid.layout import OidPaths

        return OidPaths.from_dir(args.oid_dir).load_hierarchy()
    return Hierarchy.builtin()


def add_image_set_arguments(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--oid_dir",
        help=f"dataset folder (challenge 2019 layout): {what} are the images of "
        "DIR/<split>/, and its hierarchy is used",
    )
    p.add_argument(
        "--split", default="test", help="split of --oid_dir whose images form the set (train, validation or test)"
    )
    p.add_argument("--images", help=f"an image folder: {what} are its images (instead of --oid_dir)")
    p.add_argument(
        "--image_sizes_cache",
        help="optional ImageID,Width,Height CSV caching the image sizes read from the image headers",
    )


def load_image_set(args: argparse.Namespace) -> dict[str, tuple[int, int]] | None:
    """ImageID -> (height, width) of the chosen image set, or None when neither flag was given."""
    from ensembles.image_set import image_sizes_for_split, image_sizes_from_dir

    if args.images and args.oid_dir:
        raise SystemExit("give --images or --oid_dir/--split, not both")
    if args.images:
        return image_sizes_from_dir(args.images, cache_csv=args.image_sizes_cache, show_progress=True)
    if args.oid_dir:
        return image_sizes_for_split(args.oid_dir, args.split, cache_csv=args.image_sizes_cache, show_progress=True)
    return None


def add_config_arguments(p: argparse.ArgumentParser, example: str) -> None:
    """--config_file and --params_override of :class:`ensembles.config.PredictConfig`."""
    p.add_argument(
        "--config_file",
        help="YAML of ensembles.config.PredictConfig: sections `ensemble:` and `submission:` and the predict "
        "options; loaded whole (an unknown section or key is an error naming it)",
    )
    p.add_argument(
        "--params_override",
        action="append",
        default=[],
        help=f"overrides after --config_file, e.g. '{example}', or a YAML/JSON mapping or file; may be repeated",
    )


# Flags that override one PredictConfig key when given (dest -> dotted keys).
_FLAG_KEYS = {
    "batch_size": ("batch_size",),
    "visualize_min_score": ("visualize_min_score",),
    "score_threshold": ("submission.score_threshold",),
    "max_per_image": ("submission.max_per_image",),
    "layer_min_score": ("ensemble.min_layer0_score", "ensemble.min_layer1_score"),
}


def load_predict_config(args: argparse.Namespace):
    """PredictConfig defaults <- --config_file <- each --params_override <- the flags given on the command
    line (those of _FLAG_KEYS that are not None, --visualize, --no_exif). A bad flag value is an error
    naming the flag (``--max_per_image: -3 is out of range (must be >= 0)``)."""
    from ensembles.config import PredictConfig
    from hierseg.config.params import ConfigError, check, load, merge

    config = load(PredictConfig, args.config_file, args.params_override)
    for dest, keys in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        flags: dict = {}
        for key in keys:
            section, _, name = key.rpartition(".")
            (flags.setdefault(section, {}) if section else flags)[name] = value
        try:
            config = check(merge(config, flags))
        except ConfigError as e:
            raise ConfigError(f"--{dest}: {str(e).split(': ', 1)[-1]}") from None
    if getattr(args, "visualize", False):
        config = merge(config, {"visualize": True})
    if getattr(args, "no_exif", False):
        config = merge(config, {"apply_exif": False})
    return config
