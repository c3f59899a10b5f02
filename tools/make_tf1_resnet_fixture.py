"""Writes the TF1 Cloud TPU ResNet fixture of ``tests/test_pretrained_tf1.py`` with the TPU's own code.

Run ONCE by a developer, in a separate virtualenv with TensorFlow (never a dependency of hierseg or its
tests), with the ``models/official/resnet`` folder of https://github.com/tensorflow/tpu on the command
line (its ``resnet_model.py`` and ``resnet_layers.py`` are imported from there, not copied)::

    python3 -m venv /work/venv-mg && /work/venv-mg/bin/pip install tf-models-official==2.20.0
    /work/venv-mg/bin/python tools/make_tf1_resnet_fixture.py \
        --resnet_model_dir /path/to/tpu/models/official/resnet --out tests/data/pretrained/tf1_resnet50

It builds ``resnet_model.resnet_v1(50)`` under ``tf.compat.v1`` inside ``variable_scope("resnet50")``
(the scope of the TPU detection checkpoints, e.g. ``gs://cloud-tpu-checkpoints/retinanet/
resnet50-checkpoint-2018-02-07``), so every variable has its real TF1 name (``resnet50/conv2d_17/kernel``,
``resnet50/batch_normalization_5/moving_variance``, ``global_step``, the classifier's ``dense``). To keep
the fixture small every conv is 8x narrower: ``conv2d_fixed_padding`` is wrapped to divide ``filters``
by 8 (the graph, layer order and names are unchanged; hierseg's ``width_multiplier = 0.125``). Every
variable then gets random values (BN statistics too, so inference-mode BN is not the identity), the
checkpoint is saved with ``tf.compat.v1.train.Saver`` and the block-group outputs (C2..C5) of a fixed
input are stored in ``outputs.npz`` (NHWC, inference mode).

Outputs (about 1.7 MB): ``OUT/model.ckpt.{index,data-00000-of-00001}``, ``OUT/outputs.npz`` with keys
``images`` [8, 64, 64, 3] and ``c2``..``c5``, ``OUT/README.txt`` (what and how).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

WIDTH_DIVISOR = 8
BATCH, SIZE = 8, 64  # resnet_model reshapes the pooled features to [-1, 2048]: 8 * 256 channels fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--resnet_model_dir", required=True, help="tpu/models/official/resnet (holds resnet_model.py)")
    p.add_argument("--out", required=True, help="output folder, e.g. tests/data/pretrained/tf1_resnet50")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1.layers needs tf_keras (Keras 2)
    sys.path.insert(0, os.path.abspath(args.resnet_model_dir))
    import resnet_model  # the TPU's own code
    import tensorflow.compat.v1 as tf

    tf.disable_eager_execution()
    original = resnet_model.conv2d_fixed_padding

    def narrow_conv(inputs, filters, kernel_size, strides, data_format="channels_first"):
        return original(inputs, filters // WIDTH_DIVISOR, kernel_size, strides, data_format=data_format)

    resnet_model.conv2d_fixed_padding = narrow_conv
    rng = np.random.default_rng(args.seed)
    images = rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf.train.get_or_create_global_step()
        x = tf.constant(images)
        with tf.variable_scope("resnet50"):
            net = resnet_model.resnet_v1(50, num_classes=10, data_format="channels_last")
            net(x, is_training=False)
        outs = {f"c{i + 2}": graph.get_tensor_by_name(f"resnet50/block_group{i + 1}:0") for i in range(4)}
        variables = tf.global_variables()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for v in variables:
                shape = v.shape.as_list()
                name = v.op.name
                if name.endswith("moving_variance") or name.endswith("gamma"):
                    value = rng.uniform(0.5, 1.5, size=shape)
                elif name.endswith(("moving_mean", "beta", "bias")):
                    value = rng.normal(scale=0.1, size=shape)
                elif name.endswith("kernel"):
                    value = rng.normal(scale=np.sqrt(1.0 / np.prod(shape[:-1])), size=shape)
                else:
                    continue  # global_step
                v.load(value.astype(np.float32), sess)
            os.makedirs(args.out, exist_ok=True)
            tf.train.Saver(variables).save(sess, os.path.join(args.out, "model.ckpt"), write_meta_graph=False)
            values = sess.run(outs)
    np.savez_compressed(os.path.join(args.out, "outputs.npz"), images=images, **values)
    with open(os.path.join(args.out, "README.txt"), "w") as f:
        f.write(
            "Written by tools/make_tf1_resnet_fixture.py with tensorflow/tpu models/official/resnet/resnet_model.py\n"
            f"(resnet_v1(50), channels_last, widths / {WIDTH_DIVISOR}, random variables, inference mode).\n"
            f"TensorFlow {tf.__version__}. outputs.npz: images [8, 64, 64, 3] and block groups c2..c5 (NHWC).\n"
        )
    print({k: v.shape for k, v in values.items()}, len(variables), "variables")


if __name__ == "__main__":
    main()
