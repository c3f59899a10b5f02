"""Writes the TF Model Garden Mask R-CNN fixture of ``tests/test_pretrained_model_garden.py`` with MG's code.

Run ONCE by a developer in a separate virtualenv (never a dependency of hierseg or its tests)::

    python3 -m venv /work/venv-mg && /work/venv-mg/bin/pip install tf-models-official==2.20.0
    /work/venv-mg/bin/python tools/make_model_garden_fixture.py --out tests/data/pretrained/model_garden_maskrcnn

It takes the ``maskrcnn_resnetfpn_coco`` experiment of ``official.vision`` (the config of the Model Garden
zoo's Mask R-CNN checkpoints), shrinks it (ResNet-50 at depth_multiplier 0.125, 32-filter FPN on P2-P6,
64-unit box head with MG's default 4 convs + 1 fc, 16-filter mask head, 3 classes + background, 128 px
input), builds it with ``official.vision.modeling.factory.build_maskrcnn``, gives every variable random
values (BN statistics too), and saves ``tf.train.Checkpoint(model=model)`` as MG's trainer does, so the
variable paths are MG's own (``model/backbone/...``, ``model/decoder/...``, ``model/rpn_head/...``,
``model/detection_head/...``, ``model/mask_head/...``). It then records, in inference mode on fixed
inputs, through MG's own layers:

* ``images`` [2, 128, 128, 3]; ``backbone_{2..5}``: ResNet endpoints; ``fpn_{2..6}``: FPN outputs;
* ``rpn_scores_{2..6}`` [2, H, W, 3] and ``rpn_boxes_{2..6}`` [2, H, W, 12]: raw RPN head outputs;
* ``rois`` [2, 6, 4] pixel boxes (ymin, xmin, ymax, xmax), ``roi_classes`` [2, 6] in 1..3;
* ``box_roi_features`` [2, 6, 7, 7, 32]: MG's ROIAligner on the FPN outputs; ``class_logits``
  [2, 6, 4] and ``box_deltas`` [2, 6, 16] of the detection head on them;
* ``mask_roi_features`` [2, 6, 14, 14, 32] and ``mask_logits`` [2, 6, 28, 28] (the ROI class's channel).

Outputs (about 2 MB): ``OUT/ckpt-1.{index,data-00000-of-00001}``, ``OUT/outputs.npz``, ``OUT/README.txt``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

SIZE, BATCH = 128, 2
NUM_CLASSES = 4  # Model Garden counts the background: 3 foreground classes


def small_config():
    from official.vision.configs import maskrcnn as maskrcnn_cfg

    model = maskrcnn_cfg.maskrcnn_resnetfpn_coco().task.model
    model.num_classes = NUM_CLASSES
    model.input_size = [SIZE, SIZE, 3]
    model.min_level, model.max_level = 2, 6
    model.backbone.resnet.model_id = 50
    model.backbone.resnet.depth_multiplier = 0.125
    model.decoder.fpn.num_filters = 32
    model.rpn_head.num_filters = 32
    model.detection_head.num_filters = 32
    model.detection_head.fc_dims = 64
    model.mask_head.num_filters = 16
    return model


def randomize(variables, rng: np.random.Generator) -> None:
    """Random values for every variable (BN statistics too, so inference-mode BN is not an identity)."""
    for v in variables:
        shape = v.shape.as_list()
        name = v.name
        if "moving_variance" in name or "gamma" in name:
            value = rng.uniform(0.5, 1.5, size=shape)
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            value = rng.normal(scale=0.1, size=shape)
        else:  # kernels: unit-variance outputs keep the deep features in a sane range
            value = rng.normal(scale=np.sqrt(1.0 / max(1, np.prod(shape[:-1]))), size=shape)
        v.assign(value.astype(np.float32))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder, e.g. tests/data/pretrained/model_garden_maskrcnn")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import tensorflow as tf
    import tf_keras
    from official.vision.modeling import factory

    rng = np.random.default_rng(args.seed)
    config = small_config()
    input_specs = tf_keras.layers.InputSpec(shape=[None, SIZE, SIZE, 3])
    model = factory.build_maskrcnn(input_specs, config)

    images = tf.constant(rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32))
    # ROIs inside the image (MG and hierseg clamp out-of-map samples differently), sizes spanning P2..P4.
    rois = np.zeros((BATCH, 6, 4), np.float32)
    for b in range(BATCH):
        for r, side in enumerate((12.0, 20.0, 30.0, 45.0, 70.0, 100.0)):
            y0, x0 = rng.uniform(2.0, SIZE - side - 2.0, size=2)
            h, w = side * rng.uniform(0.7, 1.3, size=2)
            rois[b, r] = [y0, x0, min(y0 + h, SIZE - 2.0), min(x0 + w, SIZE - 2.0)]
    roi_classes = rng.integers(1, NUM_CLASSES, size=(BATCH, 6)).astype(np.int32)

    def forward():
        backbone = model.backbone(images, training=False)
        fpn = model.decoder(backbone, training=False)
        scores, boxes = model.rpn_head(fpn, training=False)
        box_feats = model.roi_aligner(fpn, tf.constant(rois))
        class_logits, box_deltas = model.detection_head[0](box_feats, training=False)
        mask_feats = model.mask_roi_aligner(fpn, tf.constant(rois))
        mask_logits = model.mask_head([mask_feats, tf.constant(roi_classes)], training=False)
        out = {"images": images.numpy(), "rois": rois, "roi_classes": roi_classes}
        out.update({f"backbone_{k}": v.numpy() for k, v in backbone.items()})
        out.update({f"fpn_{k}": v.numpy() for k, v in fpn.items()})
        out.update({f"rpn_scores_{k}": v.numpy() for k, v in scores.items()})
        out.update({f"rpn_boxes_{k}": v.numpy() for k, v in boxes.items()})
        out.update(
            box_roi_features=box_feats.numpy(),
            class_logits=class_logits.numpy(),
            box_deltas=box_deltas.numpy(),
            mask_roi_features=mask_feats.numpy(),
            mask_logits=mask_logits.numpy(),
        )
        return out

    forward()  # builds the heads
    randomize(model.variables, rng)
    outputs = forward()
    os.makedirs(args.out, exist_ok=True)
    step = tf.Variable(1, dtype=tf.int64)
    path = tf.train.Checkpoint(model=model, global_step=step).save(os.path.join(args.out, "ckpt"))
    np.savez_compressed(os.path.join(args.out, "outputs.npz"), **outputs)
    with open(os.path.join(args.out, "README.txt"), "w") as f:
        f.write(
            "Written by tools/make_model_garden_fixture.py with tf-models-official "
            f"(TensorFlow {tf.__version__}): official.vision maskrcnn_resnetfpn_coco shrunk to ResNet-50 x0.125,\n"
            "FPN 32 on P2-P6, 4conv1fc box head (32 filters, 64 units), mask head 16 filters, 3 classes + background,\n"
            "128 px; random variables; outputs.npz holds MG's inference-mode outputs (see the script docstring).\n"
        )
    for stale in ("checkpoint",):  # the 'checkpoint' state file names an absolute path on some versions
        if os.path.exists(os.path.join(args.out, stale)):
            os.remove(os.path.join(args.out, stale))
    print(path, {k: v.shape for k, v in outputs.items()})


if __name__ == "__main__":
    main()
