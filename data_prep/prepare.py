"""`hierseg prepare`: Open Images challenge files -> one class-balanced TFRecord training set per layer.

Writes, per layer i of the hierarchy's depth grouping, one :class:`hierseg.layout.PreparedLayer`
``OUT/layer{i}/`` (its file list is there): tf.Example shards, label map, COCO validation ground
truth, manifest, balance reports and ``prepare.json``.

Stages: the annotation stage (:mod:`data_prep.plan`, vectorized, no pixels) decides every example and
its shard; the pixel stage (:mod:`data_prep.pixels`) runs locally (:mod:`data_prep.local_runner`) or on
Beam (:mod:`data_prep.beam_pipeline`). Complete shards of an earlier, interrupted run are kept; the
output is byte-identical to an uninterrupted run with the same config and seed.

Nothing is silent: inputs are checked before any work (:func:`check_inputs`, naming the flag that
overrides a missing path); what a missing optional file changes is logged and listed under ``notes``
of the summary; each layer folder records a fingerprint of its inputs and config
(:mod:`hierseg.fingerprint`), and a rerun with other inputs or config stops unless ``overwrite``; a
split that ends without any example is an error.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import tempfile
from collections import Counter

from data_prep import storage
from data_prep.coco_json import build_coco, write_coco
from data_prep.config import PrepareConfig
from data_prep.local_runner import ShardJob, run_local
from data_prep.pixels import PixelProcessor
from data_prep.plan import LayerPlan, SplitPlan, load_tables, manifest, plan_layers
from data_prep.report import write_report
from data_prep.shards import is_complete, read_stats, remove_stale, shard_name
from hierseg.config.params import to_dict
from hierseg.errors import UsageError, WorkError
from hierseg.fingerprint import check_or_record, file_identity, fingerprint
from hierseg.layout import PreparedLayer
from hierseg.oid.layout import OidPaths

log = logging.getLogger(__name__)

_CSV_FIELDS = (
    "hierarchy_json",
    "classes_csv",
    "train_masks_csv",
    "validation_masks_csv",
    "train_bbox_csv",
    "validation_bbox_csv",
)
_REQUIRED = ("hierarchy_json", "classes_csv", "train_masks_csv")
RUNNERS = ("local", "DirectRunner", "DataflowRunner")


def _localize_inputs(paths: OidPaths, cache_dir: str) -> OidPaths:
    """The layout with the annotation files downloaded when gs:// (missing optional files point to a
    local path that does not exist, so they read as absent)."""
    changes = {}
    for name in _CSV_FIELDS:
        src = getattr(paths, name)
        if not storage.is_gcs(src):
            continue
        try:
            changes[name] = storage.localize(src, cache_dir)
        except FileNotFoundError:
            changes[name] = os.path.join(cache_dir, "absent", os.path.basename(src))
    local = dataclasses.replace(paths, **changes)
    missing = [getattr(paths, n) for n in _REQUIRED if not os.path.exists(getattr(local, n))]
    if missing:
        raise FileNotFoundError(f"prepare: required input file(s) missing: {missing}")
    return local


def _flag(paths: OidPaths, path: str) -> str:
    """The prepare flag that overrides ``path`` (``--train_masks_csv``), for messages."""
    for f in dataclasses.fields(paths):
        if getattr(paths, f.name) == path:
            return f"--{f.name}"
    for split in ("train", "validation"):
        if path in paths.mask_zips(split):
            return f"--{split}_mask_zip_dir/--{split}_mask_zip_prefix"
    return "--oid_dir"


def check_inputs(paths: OidPaths, config: PrepareConfig) -> list[str]:
    """Checks every input prepare needs before any work; returns notes on optional files that are absent.

    Needed: the hierarchy JSON and class CSV, the train masks CSV, and for each annotated split read
    (train; validation when its masks CSV exists) its 16 mask zips and its image folder.

    Raises:
      UsageError: listing each missing input with the flag that overrides it.
    """
    notes: list[str] = []
    have_val = _exists(paths.masks_csv("validation"))
    read = ["train"] + (["validation"] if have_val and "validation" in config.splits else [])
    needed = [paths.hierarchy_json, paths.classes_csv]
    for split in read:
        needed += [paths.masks_csv(split), *paths.mask_zips(split), paths.image_dir(split)]
    missing = [p for p in needed if not _exists(p)]
    if missing:
        shown = "; ".join(f"{p} ({_flag(paths, p)})" for p in missing[:4])
        more = f"; and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise UsageError(f"prepare: missing input: {shown}{more}")
    if not have_val and "validation" in config.splits:
        notes.append(
            f"no validation masks CSV ({paths.masks_csv('validation')}): holding out "
            f"{config.validation_fraction:.0%} of the train images as validation (validation_fraction)"
        )
    for split in read:
        if not _exists(paths.bbox_csv(split)):
            notes.append(
                f"no {split} bbox CSV ({paths.bbox_csv(split)}): IsGroupOf is unknown, every instance is written "
                "with is_crowd 0, and non-target parent boxes without a mask are not gray-filled"
            )
        if not _exists(paths.labels_csv(split)):
            notes.append(
                f"no {split} labels CSV ({paths.labels_csv(split)}): prepare does not need it, but `hierseg "
                "oid-eval` does (it decides which classes are evaluated per image)"
            )
    return notes


def _exists(path: str) -> bool:
    """A file, or a folder (on GCS: a prefix holding objects), local or gs:// (via data_prep.storage)."""
    return storage.exists(path) or (storage.is_gcs(path) and bool(storage.listdir(path)))


def _identity(path: str):
    """A file's identity for the fingerprint: gs:// generation and size, local size and mtime."""
    if storage.is_gcs(path):
        try:
            return storage.object_version(path)
        except FileNotFoundError:
            return None
    return file_identity(path)


def _layer_has_outputs(layer: PreparedLayer) -> bool:
    return bool(storage.listdir(layer.root) or storage.listdir(layer.state_dir))


def _clear_layer(layer: PreparedLayer) -> None:
    for folder in (layer.root, layer.state_dir):
        for name in storage.listdir(folder):
            storage.remove(storage.join(folder, name))


def _check_fingerprint(layer: PreparedLayer, paths: OidPaths, config: PrepareConfig, overwrite: bool) -> None:
    """Stops a rerun whose inputs or config differ from the run that wrote ``layer`` (which layers
    are written is left out: layers are independent)."""
    inputs = {f.name: getattr(paths, f.name) for f in dataclasses.fields(paths) if f.name != "root"}
    zips = [z for split in ("train", "validation") for z in paths.mask_zips(split)]
    current = fingerprint({k: v for k, v in to_dict(config).items() if k != "layers"}, inputs, zips, _identity)
    check_or_record(
        layer.state_dir,
        current,
        overwrite=overwrite,
        has_outputs=_layer_has_outputs(layer),
        clear=lambda: _clear_layer(layer),
        read=lambda p: storage.read_bytes(p).decode() if storage.exists(p) else _missing(p),
        write=storage.write_text,
        what="hierseg prepare",
    )


def _missing(path: str) -> str:
    raise FileNotFoundError(path)


def _jobs(out_dir: str, plan: LayerPlan) -> tuple[list[ShardJob], dict[str, list[str]]]:
    """Shards still to write for one layer, and every shard name per split."""
    layer_dir = PreparedLayer.of(out_dir, plan.layer).root
    existing = set(storage.listdir(layer_dir))
    jobs, names = [], {}
    for split, sp in plan.splits.items():
        names[split] = [shard_name(split, s, sp.num_shards) for s in range(sp.num_shards)]
        counts = sp.examples.groupby("shard").size().to_dict()
        for s, name in enumerate(names[split]):
            if is_complete(layer_dir, name, existing):
                continue
            jobs.append(ShardJob(layer_dir, name, int(counts.get(s, 0)), lambda sp=sp, s=s: sp.shard_tasks(s)))
    return jobs, names


def _split_counts(sp: SplitPlan, stats: list[dict]) -> dict:
    skips: Counter = Counter()
    for st in stats:
        skips.update(st["skips"])
    return {
        "images_with_targets": int(len(sp.images)),
        "instances": int(len(sp.instances)),
        "gray_boxes": int(len(sp.gray_boxes)),
        "examples_planned": int(len(sp.examples)),
        "examples_written": int(sum(st["num_examples"] for st in stats)),
        "instances_written": int(sum(st.get("num_instances", 0) for st in stats)),
        "num_shards": sp.num_shards,
        "dropped": sp.dropped,
        "skips": dict(sorted(skips.items())),
    }


def _start_layers(
    out_dir: str, plans: list[LayerPlan], paths: OidPaths, config: PrepareConfig, overwrite: bool
) -> tuple[list[ShardJob], dict[int, dict[str, list[str]]]]:
    """Readies each layer folder (fingerprint checked, an interrupted run's temporaries removed, label
    map written); returns the shards still to write over all layers, and every shard name per layer
    and split."""
    all_jobs, shard_names = [], {}
    for lp in plans:
        layer = PreparedLayer.of(out_dir, lp.layer)
        storage.makedirs(layer.root)
        storage.makedirs(layer.state_dir)
        _check_fingerprint(layer, paths, config, overwrite)
        if remove_stale(layer.root):
            log.info("%s: removed temporary files of an interrupted run", layer.root)
        storage.write_text(layer.label_map, lp.label_map.to_pbtxt())
        jobs, shard_names[lp.layer] = _jobs(out_dir, lp)
        all_jobs += jobs
    return all_jobs, shard_names


def _write_shards(
    jobs: list[ShardJob],
    paths: OidPaths,
    config: PrepareConfig,
    cache_dir: str,
    *,
    runner: str,
    num_workers: int | None,
    beam_options: list[str] | None,
    show_progress: bool,
) -> None:
    """The pixel stage: writes every shard of ``jobs``, locally or on Beam."""
    processor = PixelProcessor(
        paths,
        gray_value=config.gray_value,
        jpeg_quality=config.jpeg_quality,
        verify_images=config.verify_images,
        drop_empty_masks=config.drop_empty_masks,
        cache_dir=os.path.join(cache_dir, "masks"),
    )
    if runner == "local":
        run_local(jobs, processor, num_workers=num_workers, show_progress=show_progress)
    else:
        from data_prep.beam_pipeline import run_beam

        run_beam(jobs, processor, runner=runner, beam_options=beam_options)


def _summarize_layer(out_dir: str, lp: LayerPlan, shard_names: dict[str, list[str]], config: PrepareConfig):
    """One layer's summary from its written shards, plus its balance reports and (validation split)
    COCO ground truth. Returns ``(summary, MaskPaths the pixel stage dropped)``."""
    layer = PreparedLayer.of(out_dir, lp.layer)
    layer_sum = {"classes": lp.label_map.num_classes, "splits": {}}
    dropped: set[str] = set()
    for split, sp in lp.splits.items():
        stats = [read_stats(layer.root, n) for n in shard_names[split]]
        for st in stats:
            dropped.update(st["dropped_masks"])
        layer_sum["splits"][split] = _split_counts(sp, stats)
        write_report(
            sp.report,
            layer.balance_csv(split),
            layer.balance_png(split),
            f"layer{lp.layer} {split}: images per class ({config.balance.mode if split == 'train' else 'none'})",
        )
        if split == "validation":
            coco = build_coco([storage.join(layer.root, n) for n in shard_names[split]], lp.label_map)
            write_coco(coco, layer.validation_coco_json)
    return layer_sum, dropped


def _write_manifests_and_summaries(
    out_dir: str, plans: list[LayerPlan], summary: dict, dropped_masks: dict[int, set[str]]
) -> None:
    """Each layer's ``manifest.parquet`` (its rows of the manifest) and ``prepare.json``."""
    man = manifest(plans, dropped_masks)
    for lp in plans:
        layer = PreparedLayer.of(out_dir, lp.layer)
        buf = io.BytesIO()
        man[man["layer"] == lp.layer].reset_index(drop=True).to_parquet(buf, index=False)
        storage.write_bytes(layer.manifest_parquet, buf.getvalue())
        layer_json = {k: v for k, v in summary.items() if k != "layers"}
        layer_json.update({"layer": lp.layer, **summary["layers"][lp.layer]})
        storage.write_text(layer.prepare_json, json.dumps(layer_json, indent=1))


def _check_every_split_written(summary: dict, out_dir: str) -> None:
    """A split that ends without any example is an error (a silent empty training set is worse)."""
    empty = [
        f"layer{layer} {split}"
        for layer, ls in summary["layers"].items()
        for split, c in ls["splits"].items()
        if c["examples_written"] == 0
    ]
    if empty:
        raise WorkError(
            f"prepare: no example written for {', '.join(empty)} (see the skips in {out_dir}/layer*/prepare.json: "
            "missing images or masks, or no annotated instance of the layer's classes)"
        )


def prepare(
    oid_dir: str,
    out_dir: str,
    config: PrepareConfig,
    *,
    num_workers: int | None = None,
    runner: str = "local",
    beam_options: list[str] | None = None,
    show_progress: bool = True,
    overwrite: bool = False,
    **path_overrides: str | None,
) -> dict:
    """Builds ``out_dir/layer{i}/`` for every layer; returns the per-layer summaries (as in prepare.json).

    Args:
      oid_dir: the dataset folder (challenge 2019 layout), local or gs://.
      out_dir: output folder, local or gs://.
      config: see :class:`data_prep.config.PrepareConfig`.
      num_workers: local worker processes (None = all cores, 1 = in this process).
      runner: "local", or a Beam runner ("DirectRunner", "DataflowRunner").
      beam_options: extra Beam pipeline options (``--project=...`` etc.), passed through.
      overwrite: start afresh in layer folders written with other inputs or config (else an error).
      path_overrides: per-file overrides of :class:`hierseg.oid.layout.OidPaths` fields.
    """
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    paths = OidPaths.from_dir(oid_dir, **path_overrides)
    notes = check_inputs(paths, config)
    for note in notes:
        log.warning("%s", note)
    with tempfile.TemporaryDirectory(prefix="hierseg-prepare-") as cache_dir:
        local_paths = _localize_inputs(paths, cache_dir)
        hierarchy = local_paths.load_hierarchy()
        tables = load_tables(paths, hierarchy, config, local_paths=local_paths)
        plans = plan_layers(tables, hierarchy, config)
        storage.makedirs(out_dir)
        jobs, shard_names = _start_layers(out_dir, plans, paths, config, overwrite)
        _write_shards(
            jobs,
            paths,
            config,
            cache_dir,
            runner=runner,
            num_workers=num_workers,
            beam_options=beam_options,
            show_progress=show_progress,
        )

    summary = {
        "oid_dir": str(oid_dir),
        "out_dir": str(out_dir),
        "runner": runner,
        "config": to_dict(config),
        "input_files": {f.name: getattr(paths, f.name) for f in dataclasses.fields(paths)},
        "csv_skips": {s: t.skips for s, t in tables.items()},
        "csv_skip_examples": {s: t.skip_examples for s, t in tables.items()},
        "notes": notes,
        "layers": {},
    }
    dropped_masks: dict[int, set[str]] = {}
    for lp in plans:
        summary["layers"][lp.layer], dropped_masks[lp.layer] = _summarize_layer(
            out_dir, lp, shard_names[lp.layer], config
        )
    _write_manifests_and_summaries(out_dir, plans, summary, dropped_masks)
    _check_every_split_written(summary, out_dir)
    return summary


def format_summary(summary: dict) -> str:
    """A per-layer table for the CLI (instances as written), then the CSV rows skipped per reason with
    a few ``file:line`` examples, then the notes on absent optional inputs."""
    lines = [
        f"{'layer':<7}{'split':<12}{'classes':>8}{'images':>9}{'examples':>10}{'instances':>11}{'shards':>8}  skips"
    ]
    for layer, ls in summary["layers"].items():
        for split, c in ls["splits"].items():
            skips = ", ".join(f"{k}={v}" for k, v in c["skips"].items()) or "-"
            lines.append(
                f"layer{layer:<2}{split:<12}{ls['classes']:>8}{c['images_with_targets']:>9}"
                f"{c['examples_written']:>10}{c['instances_written']:>11}{c['num_shards']:>8}  {skips}"
            )
    for split, skips in summary.get("csv_skips", {}).items():
        for reason, n in skips.items():
            lines.append(f"{split} CSV rows skipped, {reason}: {n}")
            lines += [f"    {e}" for e in summary.get("csv_skip_examples", {}).get(split, {}).get(reason, [])]
    lines += [f"note: {n}" for n in summary.get("notes", [])]
    return "\n".join(lines)
