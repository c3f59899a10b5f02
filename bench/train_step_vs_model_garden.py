"""hierseg vs TF Model Garden: training-step time and peak memory at a matched Mask R-CNN, plus a profile.

    python bench/train_step_vs_model_garden.py --mg_python /work/venv-mg/bin/python [--steps 5] [--rounds 2]
    python bench/train_step_vs_model_garden.py --mg_python /work/venv-mg/bin/python --quick   # smoke run

Matched config (issue 12 §4): ResNet-50-FPN (P2-P6), 512x512, global batch 2, float32, no XLA, trainable
(non-synchronized) batch norm, the 2-fc box head (1024 units), RPN 256 anchors/image at 1/2 positives,
2000 pre-NMS / 1000 proposals, 512 ROIs/image at 1/4 foreground, 1 sample per ROIAlign bin, the 4-conv
256-filter mask head (hierseg's default: on at most 32 foreground ROIs per image; a second hierseg row at
--compare_max_rois, by default 0 = all 128 foreground slots, as Model Garden's 128 mask samples),
90 classes (Model Garden: 91 with the background), SGD momentum 0.9. ``--quick``: the same structure at
128 px, ResNet-50 x1/8, 32-filter FPN, 64 ROIs, 2 steps (checks the script runs; not a measurement).

Each measurement runs in its own subprocess (its ``ru_maxrss`` is its own peak), hierseg and Model
Garden alternating ``--rounds`` times (Model Garden from the separate virtualenv given by ``--mg_python``,
with tf-models-official; never a dependency of hierseg). Each builds its model, one training step
(tracing, not timed), then ``--steps`` timed steps on one synthetic batch that went through its own
input parser once. Then a per-op-group profile of hierseg's step (``--no_profile`` skips it): steps cut
after each group (backbone, FPN, RPN = head + proposals + its losses, ROIAlign incl. the ROI sampling,
heads, the Fast R-CNN and mask losses incl. the mask targets), each with its backward pass and the
optimizer update, are timed; a group's time is the difference to the previous cut, the optimizer's is
the update alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 90


def sizes(quick: bool) -> dict:
    if quick:
        return dict(size=128, width=0.125, fpn=32, rois=64, proposals=(200, 100), fc=64, mask_filters=16, steps=2)
    return dict(size=512, width=1.0, fpn=256, rois=512, proposals=(2000, 1000), fc=1024, mask_filters=256, steps=None)


# ------------------------------------------------------------------------------------------ hierseg
def hierseg_setup(quick: bool, max_rois: int | None = None):
    """(model, optimizer, variables, batch) of hierseg at the matched config; ``max_rois`` sets
    ``mask_head.max_rois`` (None = the shipped default, 32 foreground ROIs per image; 0 = all 128
    foreground slots, as Model Garden's mask sampler with its ``num_sampled_masks`` = 128)."""
    import tensorflow as tf

    sys.path.insert(0, str(REPO / "tests"))
    from tiny_layer import write_tiny_layer  # the tests' writer of a prepared layer (shapes + masks)

    from hierseg.config import load, merge
    from hierseg.config.experiment import ExperimentConfig
    from hierseg.input.pipeline import build_dataset
    from hierseg.models.factory import build_model, build_train_targets
    from hierseg.training.optimizer import MomentumSGD, trainable_variables

    s = sizes(quick)
    cfg = merge(
        load(ExperimentConfig, str(REPO / "configs/layer0_maskrcnn_r50_fpn.yaml")),
        {
            "data": {"output_size": s["size"], "max_instances": 8, "aug": {"scale_min": 1.0, "scale_max": 1.0}},
            "model": {
                "num_classes": NUM_CLASSES,
                "backbone": {"norm": "batch", "width_multiplier": s["width"], "norm_momentum": 0.997},
                "fpn": {"num_filters": s["fpn"]},
                "rpn": {"pre_nms_topk_train": s["proposals"][0], "post_nms_topk_train": s["proposals"][1]},
                "roi_sampling": {"num_samples": s["rois"]},
                # 1 bilinear sample per ROIAlign bin, as Model Garden's multilevel_crop_and_resize.
                "box_head": {"num_convs": 0, "num_fcs": 2, "fc_dims": s["fc"], "sampling_ratio": 1},
                "mask_head": {"num_filters": s["mask_filters"], "sampling_ratio": 1}
                | ({} if max_rois is None else {"max_rois": max_rois}),
            },
            "train": {"global_batch_size": 2, "precision": "float32", "jit_compile": False, "init": {"path": ""}},
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        layer = write_tiny_layer(Path(tmp) / "layer", num_images=2, height=s["size"] * 3 // 4, width=s["size"])
        targets = build_train_targets(cfg.model, cfg.data.output_size)
        ds = build_dataset(
            str(layer / "train-*"), cfg.data, is_training=True, batch_size=2, seed=0, train_targets=targets
        )
        batch = next(iter(ds))
    tf.keras.utils.set_random_seed(0)
    model = build_model(cfg.model, cfg.data.output_size)
    variables = trainable_variables(model, "")
    return model, MomentumSGD(variables, 0.9), variables, batch


def hierseg_step_fn(model, optimizer, variables):
    import tensorflow as tf

    @tf.function(jit_compile=False)
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model(batch, training=True)["total_loss"]
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, tf.constant(0.01))
        return loss

    return step


def run_hierseg(quick: bool, steps: int, max_rois: int | None = None) -> dict:
    model, optimizer, variables, batch = hierseg_setup(quick, max_rois)
    step = hierseg_step_fn(model, optimizer, variables)
    return _time(lambda: step(batch), steps)


# ------------------------------------------------------------------------------------- Model Garden
def mg_example(size: int):
    """One serialized tf.Example (OD API keys) with three box+mask objects, for MG's own parser."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    h, w = size * 3 // 4, size
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    boxes, pngs = [], []
    for i in range(3):
        y0, x0 = int(h * 0.1 + i * h * 0.25), int(w * 0.1 + i * w * 0.25)
        y1, x1 = y0 + h // 5, x0 + w // 5
        mask = np.zeros((h, w, 1), np.uint8)
        mask[y0:y1, x0:x1] = 255
        boxes.append((y0 / h, x0 / w, y1 / h, x1 / w))
        pngs.append(tf.io.encode_png(mask).numpy())

    def f(v, kind):
        if kind == "b":
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
        if kind == "f":
            return tf.train.Feature(float_list=tf.train.FloatList(value=v))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    b = np.asarray(boxes, np.float32)
    feature = {
        "image/encoded": f([tf.io.encode_jpeg(image).numpy()], "b"),
        "image/source_id": f([b"1"], "b"),
        "image/height": f([h], "i"),
        "image/width": f([w], "i"),
        "image/object/bbox/ymin": f(b[:, 0], "f"),
        "image/object/bbox/xmin": f(b[:, 1], "f"),
        "image/object/bbox/ymax": f(b[:, 2], "f"),
        "image/object/bbox/xmax": f(b[:, 3], "f"),
        "image/object/class/label": f([1, 2, 3], "i"),
        "image/object/is_crowd": f([0, 0, 0], "i"),
        "image/object/area": f([1.0, 1.0, 1.0], "f"),
        "image/object/mask": f(pngs, "b"),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def run_model_garden(quick: bool, steps: int) -> dict:
    import tensorflow as tf
    import tf_keras
    from official.vision.configs import maskrcnn as maskrcnn_cfg
    from official.vision.dataloaders import maskrcnn_input, tf_example_decoder
    from official.vision.tasks.maskrcnn import MaskRCNNTask

    s = sizes(quick)
    exp = maskrcnn_cfg.maskrcnn_resnetfpn_coco()
    task_cfg = exp.task
    task_cfg.init_checkpoint = ""
    m = task_cfg.model
    m.num_classes = NUM_CLASSES + 1
    m.input_size = [s["size"], s["size"], 3]
    m.backbone.resnet.depth_multiplier = s["width"]
    m.norm_activation.use_sync_bn = False
    m.decoder.fpn.num_filters = s["fpn"]
    m.rpn_head.num_filters = s["fpn"]
    m.roi_generator.pre_nms_top_k, m.roi_generator.num_proposals = s["proposals"]
    m.roi_sampler.num_sampled_rois = s["rois"]
    m.mask_sampler.num_sampled_masks = s["rois"] // 4
    m.detection_head.num_convs, m.detection_head.num_fcs, m.detection_head.fc_dims = 0, 2, s["fc"]
    m.mask_head.num_filters = s["mask_filters"]
    task = MaskRCNNTask(task_cfg)
    model = task.build_model()
    parser = maskrcnn_input.Parser(
        output_size=[s["size"], s["size"]],
        min_level=m.min_level,
        max_level=m.max_level,
        num_scales=m.anchor.num_scales,
        aspect_ratios=m.anchor.aspect_ratios,
        anchor_size=m.anchor.anchor_size,
        include_mask=True,
        dtype="float32",
    )
    decoded = tf_example_decoder.TfExampleDecoder(include_mask=True).decode(tf.constant(mg_example(s["size"])))
    image, labels = parser.parse_fn(is_training=True)(decoded)
    batch = tf.nest.map_structure(lambda t: tf.stack([t, t]), (image, labels))
    optimizer = tf_keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)

    @tf.function(jit_compile=False)
    def step(inputs):
        return task.train_step(inputs, model, optimizer)["loss"]

    return _time(lambda: step(batch), steps)


# ------------------------------------------------------------------------------------------ timing
def _time(fn, steps: int) -> dict:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = fn()
        float(loss)
        times.append(time.perf_counter() - t0)
    return {
        "step_seconds": statistics.median(times),
        "first_step_seconds": first,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": float(loss),
    }


# ----------------------------------------------------------------------------------------- profile
PROFILE_GROUPS = ("backbone", "fpn", "rpn", "roi_align", "heads", "losses")


def profile_hierseg(quick: bool, steps: int) -> dict:
    """Seconds per op group of hierseg's step, by cutting the forward pass after each group (see docstring)."""
    import tensorflow as tf

    from hierseg import features as F
    from hierseg.models import losses as L
    from hierseg.models.roi_heads import select_class_boxes, select_class_masks
    from hierseg.models.rpn import generate_proposals
    from hierseg.ops.target_sampling import box_targets, crop_mask_targets, mask_training_rois, sample_rois

    model, optimizer, variables, batch = hierseg_setup(quick)
    cfg = model.config

    def forward(features, upto: str) -> tf.Tensor:
        """The training forward pass up to group ``upto``; returns a scalar depending on all of it."""
        info = tf.cast(features[F.IMAGE_INFO], tf.float32)
        image_hw = info[:, 1, :]
        c = model.backbone(features[F.IMAGE], training=True)
        if upto == "backbone":
            return tf.add_n([tf.reduce_mean(v) for v in c.values()])
        pyramid = model.fpn(c, training=True)
        if upto == "fpn":
            return tf.add_n([tf.reduce_mean(v) for v in pyramid.values()])
        # RPN = head, proposals (top-k, decode, NMS) and its losses.
        scores, deltas = model.rpn_head(pyramid, training=True)
        rpn = cfg.rpn
        proposals, _, valid = generate_proposals(
            scores,
            deltas,
            tf.constant(model.anchors),
            model.level_sizes,
            image_hw,
            rpn.pre_nms_topk_train,
            rpn.post_nms_topk_train,
            rpn.nms_iou,
            rpn.min_size,
            rpn.box_coding_weights,
        )
        roi_features = {lv: pyramid[lv] for lv in model.roi_levels}
        w = tf.ones([tf.shape(image_hw)[0]])
        targets = tf.cast(features[F.RPN_SCORE_TARGETS], tf.int32)
        loss = L.rpn_score_loss(scores, targets, w) + L.rpn_box_loss(deltas, features[F.RPN_BOX_TARGETS], targets, w)
        if upto == "rpn":
            return loss
        gt_boxes = F.boxes_to_input_pixels(features[F.GT_BOXES], info)
        s = sample_rois(
            proposals,
            valid,
            gt_boxes,
            features[F.GT_CLASSES],
            features[F.GT_VALID],
            features[F.GT_IS_CROWD],
            cfg.roi_sampling,
        )
        m = mask_training_rois(s, cfg.roi_sampling, cfg.mask_head.max_rois)  # as the model: <= 32 fg ROIs
        box_feats = model._roi_align(roi_features, s["rois"], cfg.box_head)
        mask_feats = model._roi_align(roi_features, m["rois"], cfg.mask_head)
        if upto == "roi_align":
            return loss + tf.reduce_mean(box_feats) + tf.reduce_mean(mask_feats)
        logits, class_deltas = model.box_head(box_feats, training=True)
        masks = model.mask_head(mask_feats, training=True)
        if upto == "heads":
            return loss + tf.reduce_mean(logits) + tf.reduce_mean(class_deltas) + tf.reduce_mean(masks)
        t = box_targets(s["matched_boxes"], s["rois"], s["is_fg"], cfg.box_coding_weights)
        loss += L.fast_rcnn_class_loss(logits, s["classes"], s["sample_weights"], w)
        loss += L.fast_rcnn_box_loss(
            select_class_boxes(class_deltas, s["classes"]), t, s["classes"], s["sample_weights"], w
        )
        mt = crop_mask_targets(features[F.GT_MASKS], gt_boxes, m["matched_index"], m["rois"], cfg.mask_head.mask_size)
        return loss + L.mask_loss(select_class_masks(masks, m["classes"]), mt, m["is_fg"], w)

    def cut(upto):
        @tf.function(jit_compile=False)
        def step(features):
            with tf.GradientTape() as tape:
                loss = forward(features, upto)
            grads = tape.gradient(loss, variables)
            grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables)]
            optimizer.apply(grads, tf.constant(0.0))
            return loss

        return step

    @tf.function(jit_compile=False)
    def update_only():
        optimizer.apply([tf.zeros_like(v) for v in variables], tf.constant(0.0))
        return tf.constant(0.0)

    cuts = {"optimizer": _time(update_only, steps)["step_seconds"]}
    for group in PROFILE_GROUPS:
        step = cut(group)
        cuts[group] = _time(lambda step=step: step(batch), steps)["step_seconds"]
    # A group's time is its cut minus the previous cut; on a busy machine a difference can come out
    # negative (noise): it is reported as is, so the rows always sum to the full step.
    names = ["optimizer", *PROFILE_GROUPS]
    groups = {n: cuts[n] - (cuts[names[i - 1]] if i else 0.0) for i, n in enumerate(names)}
    return {"cuts": cuts, "groups": groups, "total": cuts[PROFILE_GROUPS[-1]]}


# ------------------------------------------------------------------------------------------- main
def _child(python: str, kind: str, args) -> dict:
    cmd = [python, __file__, "--_child", kind, "--steps", str(args.steps)] + (["--quick"] if args.quick else [])
    cmd += ["--compare_max_rois", str(args.compare_max_rois)] if kind == "hierseg_compare" else []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    if kind == "model_garden":
        env["TF_USE_LEGACY_KERAS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][7:])


def _label(row: str, args) -> str:
    if row == "hierseg":
        return "hierseg (default)"
    if row == "hierseg_compare":
        return f"hierseg max_rois={args.compare_max_rois}" + (" (all)" if args.compare_max_rois == 0 else "")
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mg_python", help="python of a virtualenv with tf-models-official (e.g. /work/venv-mg/bin/python)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=2, help="hierseg / Model Garden alternations")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps, 1 round: checks that the script runs")
    p.add_argument("--no_profile", action="store_true", help="skip hierseg's per-op-group profile")
    p.add_argument(
        "--compare_max_rois",
        type=int,
        default=0,
        help="also time hierseg at this mask_head.max_rois (default 0: the mask head on all 128 foreground "
        "slots, as before issue 16 and as Model Garden's 128 mask samples); -1 = skip that row",
    )
    p.add_argument(
        "--_child", choices=["hierseg", "hierseg_compare", "model_garden", "profile"], help=argparse.SUPPRESS
    )
    args = p.parse_args()
    if args.quick:
        args.steps, args.rounds = sizes(True)["steps"], 1
    if args._child:
        if args._child == "hierseg_compare":
            result = run_hierseg(args.quick, args.steps, args.compare_max_rois)
        else:
            run = {"hierseg": run_hierseg, "model_garden": run_model_garden, "profile": profile_hierseg}[args._child]
            result = run(args.quick, args.steps)
        print("RESULT " + json.dumps(result))
        return 0
    rows: dict[str, list[dict]] = {"hierseg": [], "hierseg_compare": [], "model_garden": []}
    for _ in range(args.rounds):
        rows["hierseg"].append(_child(sys.executable, "hierseg", args))
        if args.compare_max_rois >= 0:
            rows["hierseg_compare"].append(_child(sys.executable, "hierseg_compare", args))
        if args.mg_python:
            rows["model_garden"].append(_child(args.mg_python, "model_garden", args))
    s = sizes(args.quick)
    print(
        f"\nMask R-CNN R50-FPN x{s['width']}, {s['size']}x{s['size']}, global batch 2, float32, no XLA, 2fc box head, "
        f"{s['rois']} ROIs; median of {args.steps} steps, {args.rounds} alternating round(s), {os.cpu_count()} core(s)"
    )
    print(f"{'implementation':<28}{'s/step':>9}{'1st step s':>12}{'peak RSS MB':>13}")
    summary = {}
    for name, results in rows.items():
        if not results:
            continue
        step = statistics.median(r["step_seconds"] for r in results)
        peak = max(r["peak_rss_mb"] for r in results)
        first = statistics.median(r["first_step_seconds"] for r in results)
        summary[name] = (step, peak)
        label = _label(name, args)
        print(f"{label:<28}{step:>9.2f}{first:>12.1f}{peak:>13.0f}")
    for name in ("hierseg", "hierseg_compare"):
        if name in summary and "model_garden" in summary:
            label = _label(name, args)
            mg, ours = summary["model_garden"], summary[name]
            print(f"ratio Model Garden / {label}: s/step {mg[0] / ours[0]:.2f}, peak RSS {mg[1] / ours[1]:.2f}")
    if not args.no_profile:
        prof = _child(sys.executable, "profile", args)
        print(f"\nhierseg step by op group (forward + backward, cumulative cuts; full step {prof['total']:.3f} s)")
        print(f"  {'group':<10}{'cut s':>9}{'group s':>10}{'% of step':>11}")
        for group in ("optimizer", *PROFILE_GROUPS):
            share = 100 * prof["groups"][group] / max(prof["total"], 1e-9)
            print(f"  {group:<10}{prof['cuts'][group]:>9.3f}{prof['groups'][group]:>10.3f}{share:>10.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
