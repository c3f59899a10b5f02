"""Build class-balanced Layer0/Layer1 training sets from Open Images challenge files: sharded TFRecords
(OD API layout), label map, validation COCO JSON, manifest, balance report and prepare.json per layer
under OUT/layer{i}/. Inputs and outputs may be gs:// paths. Re-running after a crash finishes the
missing shards only; the result is byte-identical to an uninterrupted run. A rerun into a folder written
with other inputs or config stops with the keys that differ (--overwrite starts afresh)."""

from __future__ import annotations

import argparse
import dataclasses

from data_prep.config import PrepareConfig
from data_prep.prepare import RUNNERS, format_summary, prepare
from hierseg.config.params import load
from hierseg.oid.layout import OidPaths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--oid_dir", required=True, help="dataset folder in the challenge 2019 layout (local or gs://)")
    p.add_argument("--out", required=True, help="output folder; OUT/layer{i}/ is written per layer (local or gs://)")
    p.add_argument("--config_file", help="YAML with PrepareConfig fields (see configs/prepare.yaml)")
    p.add_argument(
        "--params_override",
        action="append",
        default=[],
        help="config overrides, 'a.b=1,c=x' or a YAML/JSON mapping; repeatable, applied in order",
    )
    p.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="local worker processes for the pixel stage (default: all cores; 1 = in process)",
    )
    p.add_argument(
        "--runner", default="local", choices=RUNNERS, help="'local' multiprocessing, or an Apache Beam runner"
    )
    p.add_argument(
        "--beam_option",
        action="append",
        default=[],
        help="extra Beam pipeline option passed through, e.g. --beam_option=--project=my-proj; repeatable",
    )
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--overwrite", action="store_true", help="start afresh in layer folders written with other inputs or config"
    )
    for f in dataclasses.fields(OidPaths):
        if f.name in ("root", "image_ext"):
            continue
        what = "file name before -{shard}.zip of the mask zips" if f.name.endswith("_prefix") else "path"
        p.add_argument(f"--{f.name}", default=None, help=f"override the {what} of {f.name}; default: from --oid_dir")


def run(args: argparse.Namespace) -> int:
    config = load(PrepareConfig, args.config_file, args.params_override)
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(OidPaths)
        if f.name not in ("root", "image_ext") and getattr(args, f.name) is not None
    }
    summary = prepare(
        args.oid_dir,
        args.out,
        config,
        num_workers=args.num_workers,
        runner=args.runner,
        beam_options=args.beam_option,
        show_progress=not args.no_progress,
        overwrite=args.overwrite,
        **overrides,
    )
    print(format_summary(summary))
    print(f"wrote {args.out}/layer{{{','.join(str(k) for k in summary['layers'])}}}/")
    return 0
