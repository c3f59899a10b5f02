"""tf.distribute: MirroredStrategy over 2 logical CPUs matches 1 device; 2 MultiWorkerMirrored workers
on 127.0.0.1 train, write a loadable checkpoint and agree on every variable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiny_layer import write_tiny_layer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny_cpu.yaml"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=f"{REPO}:{REPO / 'tests'}")

# Runs in a fresh process: the logical devices must be configured before TensorFlow initialises.
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
    from hierseg.training import checkpoints, loop, optimizer
    from hierseg_cli.experiment_args import data_dir_overrides

    layer, config_file = sys.argv[1], sys.argv[2]
    cfg = merge(load(ExperimentConfig, config_file), data_dir_overrides(layer))
    # Sync batch norm (statistics over the global batch) and ROI sampling that takes every candidate
    # (no random subset), so that one device and two replicas compute the very same function.
    every_roi = cfg.model.rpn.post_nms_topk_train + cfg.data.max_instances
    cfg = merge(cfg, {"model": {"backbone": {"norm": "sync"},
                                "roi_sampling": {"num_samples": every_roi, "fg_fraction": 1.0}},
                      "train": {"global_batch_size": 2, "weight_decay": 1e-3}})
    targets = build_train_targets(cfg.model, cfg.data.output_size)
    batch = next(iter(build_dataset(cfg.data.train_file_pattern, cfg.data, is_training=True,
                                    batch_size=2, seed=0, train_targets=targets)))

    def losses_and_grads(strategy, weights=None):
        with strategy.scope():
            model = build_model(cfg.model, cfg.data.output_size)
            if weights is not None:  # the same starting point on both strategies
                for v, w in zip(model.variables, weights):
                    v.assign(w)
        initial = [v.numpy() for v in model.variables]
        variables = optimizer.trainable_variables(model, "")
        gradient_fn = loop.make_gradient_fn(model, variables, cfg.train, strategy.num_replicas_in_sync)

        def replica_fn(b):
            losses, grads = gradient_fn(b)
            grads, _ = loop.all_reduce_gradients(grads, 0.0)
            return losses["loss"], grads

        n = strategy.num_replicas_in_sync
        dist = strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group::n] for k, v in batch.items()})
        loss, grads = tf.function(lambda d: strategy.run(replica_fn, args=(d,)))(dist)  # as in the train loop
        loss = float(strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None))
        per_replica = [[g.numpy() for g in strategy.experimental_local_results(x)] for x in grads]
        return loss, per_replica, initial

    loss1, grads1, vars1 = losses_and_grads(tf.distribute.OneDeviceStrategy("/cpu:0"))
    loss2, grads2, _ = losses_and_grads(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), vars1)
    same_on_replicas = max(float(np.max(np.abs(g[0] - g[1]))) for g in grads2)
    scale = max(float(np.max(np.abs(g[0]))) for g in grads1)
    diff = max(float(np.max(np.abs(a[0] - b[0]))) for a, b in zip(grads1, grads2))
    print("RESULT " + json.dumps({"loss1": loss1, "loss2": loss2, "grad_scale": scale, "grad_diff": diff,
                                  "replica_diff": same_on_replicas, "num_grads": len(grads1)}))
""")


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    return write_tiny_layer(tmp_path_factory.mktemp("tiny_layer"), num_images=4)


@pytest.mark.slow
def test_mirrored_two_devices_equal_one_device(layer):
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_PROGRAM, str(layer), str(TINY)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][0][7:])
    print("mirrored vs one device:", r)
    assert r["loss1"] == pytest.approx(r["loss2"], rel=1e-4, abs=1e-6), r
    assert r["replica_diff"] == 0.0, r  # the all-reduce leaves identical gradients on both replicas
    assert r["grad_diff"] <= 1e-4 * r["grad_scale"] + 1e-6, r


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_processes_train_and_agree(layer, tmp_path):
    model_dir = tmp_path / "model"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hierseg_cli.main",
                    "train",
                    "--config_file",
                    str(TINY),
                    "--data_dir",
                    str(layer),
                    "--model_dir",
                    str(model_dir),
                    "--strategy",
                    "multi_worker",
                    "--no_progress",
                    "--params_override",
                    "train.global_batch_size=2,train.total_steps=4,train.steps_per_loop=2,train.checkpoint_every=2",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=300)
        finally:
            p.kill()
        assert p.returncode == 0, err[-4000:]
        done = [x for x in err.splitlines() if " done: " in x]
        results.append(json.loads(done[-1].split(" done: ", 1)[1]))
    assert [r["step"] for r in results] == [4, 4]
    assert results[0]["metrics"]["loss"] == results[1]["metrics"]["loss"]
    assert results[0]["variables_fingerprint"] == results[1]["variables_fingerprint"]
    assert sorted(os.listdir(model_dir)) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
        "fingerprint.json",  # hierseg train's record of its data and config (hierseg.fingerprint)
        "params.yaml",
        "train",
    ]
    # The chief's checkpoint loads into a fresh model and holds exactly the trained variables.
    check = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        from hierseg.config import load
        from hierseg.config.experiment import ExperimentConfig
        from hierseg.models.factory import build_model
        from hierseg.training import checkpoints, loop, optimizer
        cfg = load(ExperimentConfig, "{model_dir}/params.yaml")
        model = build_model(cfg.model, cfg.data.output_size)
        checkpoints.make_checkpoint(model).read("{model_dir}/ckpt-4").expect_partial().assert_existing_objects_matched()
        print("RESULT " + json.dumps(checkpoints.variables_fingerprint(model.trainable_variables)))
    """)
    proc = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads([x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][0][7:])
    assert loaded == pytest.approx(results[0]["variables_fingerprint"], rel=1e-12)
