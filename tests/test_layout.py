"""hierseg.layout: the prepared-layer, model-dir and export-dir names are the ones the writers use."""

from __future__ import annotations

import glob

from hierseg.layout import ExportDir, ModelDir, PreparedLayer, shard_name


def test_prepared_layer_names_every_file_prepare_writes(prepared_dir):
    for index in (0, 1):
        layer = PreparedLayer.of(prepared_dir, index)
        assert layer.root == f"{prepared_dir}/layer{index}"
        named = [layer.label_map, layer.validation_coco_json, layer.manifest_parquet, layer.prepare_json]
        named.append(layer.fingerprint_json)
        named += [f(s) for s in ("train", "validation") for f in (layer.balance_csv, layer.balance_png)]
        shards = {s: sorted(glob.glob(layer.shard_pattern(s))) for s in ("train", "validation")}
        assert shards["train"] and shards["validation"]
        stats = [layer.shard_stats_json(p.rsplit("/", 1)[-1]) for s in shards.values() for p in s]
        written = set(glob.glob(f"{layer.root}/*")) | set(glob.glob(f"{layer.state_dir}/*"))
        assert set(named) | set(stats) | set(shards["train"]) | set(shards["validation"]) == written
        n = len(shards["train"])
        assert shards["train"][-1] == layer.shard("train", n - 1, n)


def test_names_and_gcs_joins():
    assert shard_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    layer = PreparedLayer("gs://b/out/layer1/")
    assert layer.label_map == "gs://b/out/layer1/label_map.pbtxt"
    assert layer.shard_pattern("validation") == "gs://b/out/layer1/validation-*.tfrecord"
    md = ModelDir("gs://b/m")
    assert (md.params_yaml, md.checkpoint(20), md.eval_metrics_json(20)) == (
        "gs://b/m/params.yaml",
        "gs://b/m/ckpt-20",
        "gs://b/m/eval/metrics-20.json",
    )
    assert ExportDir("/x/e").required_files() == (
        "/x/e/label_map.pbtxt",
        "/x/e/export_config.yaml",
        "/x/e/saved_model.pb",
    )
