"""ShapeMask and RetinaNet in the shared engine (all slow: each trains a model): the tiny ShapeMask overfits
6 images to COCO mask AP >= 0.5 and RetinaNet to box AP >= 0.5 through `hierseg evaluate`; the priors go
into the model dir and the export; exports have Mask R-CNN's output structure (RetinaNet: boxes only, and
`predict` refuses it); 2 MirroredStrategy replicas give one device's loss; a ShapeMask Layer0 with a Mask
R-CNN Layer1 runs through `hierseg predict` and `hierseg oid-eval`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tiny_layer import write_tiny_layer

from hierseg import features as F
from hierseg.config import load, merge
from hierseg.config.experiment import ExperimentConfig
from hierseg.training import loop
from hierseg.training.strategy import make_strategy
from hierseg_cli.experiment_args import data_dir_overrides
from hierseg_cli.main import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
pytestmark = pytest.mark.slow
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=f"{REPO}:{REPO / 'tests'}")


def tiny(kind: str, layer: Path, **overrides) -> ExperimentConfig:
    cfg = merge(load(ExperimentConfig, str(CONFIGS / f"tiny_cpu_{kind}.yaml")), data_dir_overrides(str(layer)))
    return merge(cfg, overrides)


def overfit_schedule(steps: int) -> dict:
    """XLA-compiled, batch 4, warmup 30 steps to lr 0.02, x0.1 at 80% and 93% of the steps, no scale jitter."""
    return {
        "data": {"aug": {"flip_prob": 0.5, "scale_min": 1.0, "scale_max": 1.0}},
        "train": {
            "total_steps": steps,
            "steps_per_loop": steps // 2,
            "checkpoint_every": steps,
            "summary_every": steps // 2,
            "jit_compile": True,
            "learning_rate": {"warmup_steps": 30, "decay_steps": [int(steps * 0.8), int(steps * 0.93)]},
        },
    }


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    return write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=6)


@pytest.fixture(scope="module")
def shapemask_trained(layer, tmp_path_factory):
    """Priors from `hierseg priors` (k=4, 16 x 16), then 200 XLA-compiled steps. -> (config, model_dir)."""
    priors = tmp_path_factory.mktemp("priors") / "priors.npy"
    assert (
        main(["priors", "--data", str(layer), "--k", "4", "--size", "16", "--out", str(priors), "--no_progress"]) == 0
    )
    model_dir = tmp_path_factory.mktemp("shapemask")
    cfg = merge(tiny("shapemask", layer), overfit_schedule(200))
    cfg = merge(cfg, {"model": {"shapemask": {"shape_prior_path": str(priors)}}})
    result = loop.train(cfg, str(model_dir), make_strategy("cpu"), show_progress=False)
    assert result["step"] == 200 and np.isfinite(result["metrics"]["loss"])
    return cfg, model_dir


@pytest.fixture(scope="module")
def retinanet_trained(layer, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("retinanet")
    cfg = merge(tiny("retinanet", layer), overfit_schedule(150))
    result = loop.train(cfg, str(model_dir), make_strategy("cpu"), show_progress=False)
    assert result["step"] == 150 and set(result["metrics"]) >= {"retinanet_class_loss", "retinanet_box_loss"}
    return cfg, model_dir


def _evaluate(model_dir: Path, tmp_path: Path) -> dict:
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model_dir", str(model_dir), "--output_json", str(out), "--no_progress"]) == 0
    return json.loads(out.read_text())


def test_shapemask_overfits_to_mask_ap_05_and_keeps_its_priors(shapemask_trained, tmp_path):
    cfg, model_dir = shapemask_trained
    saved = load(ExperimentConfig, str(model_dir / "params.yaml"))
    assert saved.model.shapemask.shape_prior_path == str(model_dir / "shape_priors.npy")
    np.testing.assert_array_equal(
        np.load(model_dir / "shape_priors.npy"), np.load(cfg.model.shapemask.shape_prior_path)
    )
    metrics = _evaluate(model_dir, tmp_path)
    print(f"tiny ShapeMask overfit, 200 steps: box AP {metrics['box/AP']:.3f}, mask AP {metrics['mask/AP']:.3f}")
    assert metrics["num_images"] == 6 and metrics["mask/AP"] >= 0.5, metrics


def test_retinanet_overfits_to_box_ap_05(retinanet_trained, tmp_path):
    _, model_dir = retinanet_trained
    metrics = _evaluate(model_dir, tmp_path)
    print(f"tiny RetinaNet overfit, 150 steps: box AP {metrics['box/AP']:.3f}")
    assert metrics["num_images"] == 6 and metrics["box/AP"] >= 0.5, metrics


def _jpeg() -> bytes:
    """The same noise JPEG on every call."""
    pixels = np.random.default_rng(1).integers(0, 255, [83, 117, 3]).astype(np.uint8)
    return tf.io.encode_jpeg(pixels).numpy()


def test_shapemask_export_has_mask_rcnn_structure_and_priors(shapemask_trained, tmp_path):
    from hierseg.serving.export import export_saved_model

    cfg, model_dir = shapemask_trained
    saved = load(ExperimentConfig, str(model_dir / "params.yaml"))
    export_dir = Path(export_saved_model(saved, str(model_dir), str(tmp_path / "export")))
    exported = load(ExperimentConfig, str(export_dir / "export_config.yaml"))
    assert exported.model.shapemask.shape_prior_path == str(export_dir / "shape_priors.npy")
    assert (export_dir / "shape_priors.npy").exists()
    imported = tf.saved_model.load(str(export_dir))
    out = imported.signatures["serving_default"](image_bytes=tf.constant(_jpeg()))
    assert sorted(out) == sorted([F.DET_BOXES, F.DET_CLASSES, F.DET_SCORES, F.DET_MASKS, F.NUM_DETECTIONS])
    n = int(out[F.NUM_DETECTIONS])
    assert out[F.DET_MASKS].dtype == tf.uint8 and tuple(out[F.DET_MASKS].shape) == (n, 83, 117)
    assert out[F.DET_CLASSES].dtype == tf.int32 and tuple(out[F.DET_BOXES].shape) == (n, 4)
    from hierseg.input.preprocess import decode_image, resize_and_pad

    image, info = resize_and_pad(decode_image(tf.constant(_jpeg())), cfg.data.output_size)
    batched = imported.signatures["serve_images"](images=image[None], image_info=info[None])
    fine = cfg.model.shapemask.mask_crop_size * cfg.model.shapemask.upsample_factor
    assert tuple(batched[F.DET_MASKS].shape)[2:] == (fine, fine) and batched[F.DET_MASKS].dtype == tf.float32
    np.testing.assert_array_equal(batched[F.DET_CLASSES][0, :n].numpy(), out[F.DET_CLASSES].numpy())


def test_retinanet_exports_boxes_and_predict_refuses_it(retinanet_trained, tmp_path, capsys):
    from hierseg.serving.export import export_saved_model

    _, model_dir = retinanet_trained
    saved = load(ExperimentConfig, str(model_dir / "params.yaml"))
    export_dir = export_saved_model(saved, str(model_dir), str(tmp_path / "retinanet"))
    out = tf.saved_model.load(export_dir).signatures["serving_default"](image_bytes=tf.constant(_jpeg()))
    assert sorted(out) == sorted([F.DET_BOXES, F.DET_CLASSES, F.DET_SCORES, F.NUM_DETECTIONS])
    images = tmp_path / "images"
    images.mkdir()
    (images / "0123456789abcdef.jpg").write_bytes(_jpeg())
    code = main(["predict", "--layer0", export_dir, "--layer1", export_dir, "--images", str(images),
                 "--out", str(tmp_path / "pred")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2  # a usage error: the export given cannot make a submission
    assert re.fullmatch(
        r"hierseg predict: error: --layer0 .*: a box-only model .* cannot make a segmentation-track .*", err[-1]
    )


MIRRORED_PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from hierseg.config import load, merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.input.pipeline import build_dataset
    from hierseg.models.factory import build_model, build_train_targets
    from hierseg.training import loop
    from hierseg_cli.experiment_args import data_dir_overrides

    layer, config_file = sys.argv[1], sys.argv[2]
    cfg = merge(load(ExperimentConfig, config_file), data_dir_overrides(layer))
    # Sync batch norm: statistics over the global batch, so both runs compute the very same function.
    cfg = merge(cfg, {"model": {"backbone": {"norm": "sync"}}, "train": {"global_batch_size": 2}})
    targets = build_train_targets(cfg.model, cfg.data.output_size)
    batch = next(iter(build_dataset(cfg.data.train_file_pattern, cfg.data, is_training=True, batch_size=2,
                                    seed=0, train_targets=targets)))

    def loss_on(strategy, weights=None):
        with strategy.scope():
            model = build_model(cfg.model, cfg.data.output_size)
            for v, w in zip(model.variables, weights or []):
                v.assign(w)
        variables = loop.trainable_variables(model, "")
        gradient_fn = loop.make_gradient_fn(model, variables, cfg.train, strategy.num_replicas_in_sync)

        def replica_fn(b):
            losses, grads = gradient_fn(b)
            grads, _ = loop.all_reduce_gradients(grads, 0.0)
            return losses, grads

        n = strategy.num_replicas_in_sync
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group::n] for k, v in batch.items()})
        losses, grads = tf.function(lambda d: strategy.run(replica_fn, args=(d,)))(dist)
        losses = {k: float(strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)) for k, v in losses.items()}
        first = [strategy.experimental_local_results(g)[0].numpy() for g in grads]
        return losses, first, [v.numpy() for v in model.variables]

    one, g1, start = loss_on(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two, g2, _ = loss_on(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), start)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(g1, g2))
    scale = max(float(np.max(np.abs(a))) for a in g1)
    print("RESULT " + json.dumps({"one": one, "two": two, "grad_diff": diff, "grad_scale": scale}))
""")


@pytest.mark.parametrize("kind", ["shapemask", "retinanet"])
def test_mirrored_two_devices_equal_one_device(kind, layer):
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_PROGRAM, str(layer), str(CONFIGS / f"tiny_cpu_{kind}.yaml")],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][0][7:])
    print(f"{kind} mirrored vs one device:", r)
    for key, value in r["one"].items():
        assert r["two"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert r["grad_diff"] <= 1e-4 * r["grad_scale"] + 1e-6, r


def test_mixed_shapemask_and_mask_rcnn_ensemble_through_predict_and_oid_eval(prepared_dir, synth_dir, tmp_path):
    """Layer0 a ShapeMask, Layer1 a Mask R-CNN (2 training steps each): `hierseg predict` over the validation
    images and `hierseg oid-eval` of its submission run end to end."""
    exports = []
    for layer, config in ((0, "tiny_cpu_shapemask.yaml"), (1, "tiny_cpu.yaml")):
        model_dir, export_dir = tmp_path / f"model{layer}", tmp_path / f"export{layer}"
        common = ["--config_file", str(CONFIGS / config), "--data_dir", str(prepared_dir / f"layer{layer}")]
        override = "train.total_steps=2,train.steps_per_loop=2,train.global_batch_size=2"
        assert main(["train", *common, "--model_dir", str(model_dir), "--strategy", "cpu", "--no_progress",
                     "--params_override", override]) == 0  # fmt: skip
        assert main(["export", "--model_dir", str(model_dir), "--export_dir", str(export_dir)]) == 0
        exports.append(str(export_dir))
    assert load(ExperimentConfig, f"{exports[0]}/export_config.yaml").model.type == "shapemask"
    pred = tmp_path / "pred"
    args = ["predict", "--layer0", exports[0], "--layer1", exports[1], "--images", str(synth_dir / "validation")]
    assert main([*args, "--out", str(pred), "--no_exif"]) == 0
    assert (pred / "submission.csv").exists() and (pred / "predictions.jsonl").exists()
    metrics = tmp_path / "oid.json"
    assert main(["oid-eval", "--oid_dir", str(synth_dir), "--split", "validation", "--submission",
                 str(pred / "submission.csv"), "--output_metrics", str(metrics)]) == 0  # fmt: skip
    assert 0.0 <= json.loads(metrics.read_text())["mAP"] <= 1.0
