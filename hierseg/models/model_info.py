"""Model facts for ``hierseg model-info``: parameters per module and FLOPs per image at the configured
input size.

Parameters are counted per top-level sub-layer of the built model (``backbone``, ``fpn``, heads, ...).
FLOPs come from the TensorFlow profiler (``tf.compat.v1.profiler`` float-operation view) run on the
graph of one inference call on a ``[1, S, S, 3]`` image, S = ``data.output_size``; the profiler counts
the ops that register a FLOP statistic (convolutions, matmuls, element-wise arithmetic, ...) and counts a
multiply-add as 2 FLOPs. Ops are attributed to the module whose name scope they run in; the rest
(proposal generation, RoIAlign gathers, post-processing) is ``(outside modules)``. Heads that run per
proposal or per detection are counted at the configured ``post_nms_topk_test`` / ``max_detections``
(every slot is computed: shapes are static).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import tensorflow as tf

from hierseg.config.experiment import ExperimentConfig

OUTSIDE = "(outside modules)"


@dataclass
class ModuleInfo:
    """One row: ``params`` all weights, ``trainable`` the trainable ones, ``flops`` per image."""

    name: str
    params: int
    trainable: int
    flops: int


def build_inference_model(config: ExperimentConfig) -> tuple[keras.Model, dict[str, tf.Tensor]]:
    """The model of ``config`` (variables created) and a zero inference batch of one image."""
    size = config.data.output_size
    try:
        from hierseg.models import factory
    except ImportError:  # before the model factory: Mask R-CNN only
        from hierseg.training.loop import build_model

        model = build_model(config)
        info = tf.constant([[[size, size], [size, size], [1.0, 1.0], [0.0, 0.0]]], tf.float32)
        from hierseg import features

        return model, {features.IMAGE: tf.zeros([1, size, size, 3]), features.IMAGE_INFO: info}
    return factory.build_model(config.model, size), factory.inference_inputs(size)


def _count(weights) -> int:
    return int(sum(int(tf.size(w)) for w in weights))


def inference_flops(model: keras.Model, inputs: dict[str, tf.Tensor]) -> dict[str, int]:
    """{top-level name scope: profiler float ops} of one inference call (graph mode, static shapes)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda feats: model(feats, training=False))
    graph = fn.get_concrete_function({k: tf.TensorSpec(v.shape, v.dtype) for k, v in inputs.items()}).graph
    from tensorflow.python.util import deprecation

    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with deprecation.silence():  # the v1 profiler is the one that counts FLOPs; its notice is noise
        profile = model_analyzer.profile(graph, options=options)
    out: dict[str, int] = {}

    def walk(node) -> None:
        for child in node.children:
            parts = child.name.split("/")
            # "<model>_1/backbone_1/...": the scope right under the model's own, minus Keras' call suffix.
            scope = re.sub(r"_\d+$", "", parts[1]) if len(parts) > 2 else OUTSIDE
            out[scope] = out.get(scope, 0) + int(child.float_ops)
            walk(child)

    walk(profile)
    return out


def model_info(config: ExperimentConfig) -> dict:
    """{"type", "image_size", "num_classes", "modules": [ModuleInfo...], "total_params", "total_flops"}.

    Raises:
      UsageError: ``model.num_classes`` is 0 (resolve it from the label map first).
      ValueError: the factory refuses the config.
    """
    from hierseg.errors import UsageError

    if config.model.num_classes < 1:
        raise UsageError("model.num_classes is 0: give --data_dir (its label map) or --num_classes")
    model, inputs = build_inference_model(config)
    flops = inference_flops(model, inputs)
    modules = []
    for layer in model.layers:
        modules.append(
            ModuleInfo(layer.name, _count(layer.weights), _count(layer.trainable_weights), flops.pop(layer.name, 0))
        )
    own = [w for w in model.weights if not any(w is x for layer in model.layers for x in layer.weights)]
    modules.append(ModuleInfo(OUTSIDE, _count(own), 0, sum(flops.values())))
    return {
        "type": getattr(config.model, "type", "mask_rcnn"),
        "image_size": config.data.output_size,
        "num_classes": config.model.num_classes,
        "modules": modules,
        "total_params": sum(m.params for m in modules),
        "total_flops": sum(m.flops for m in modules),
    }


def format_info(info: dict) -> str:
    """An aligned table: module, parameters, trainable, GFLOPs per image and share."""
    total = max(info["total_flops"], 1)
    lines = [
        f"model {info['type']}, {info['num_classes']} classes, input {info['image_size']}x{info['image_size']}",
        f"{'module':<20}{'params':>13}{'trainable':>13}{'GFLOPs/image':>14}{'FLOPs %':>9}",
    ]
    for m in info["modules"]:
        lines.append(
            f"{m.name:<20}{m.params:>13,}{m.trainable:>13,}{m.flops / 1e9:>14.3f}{100 * m.flops / total:>9.1f}"
        )
    lines.append(
        f"{'total':<20}{info['total_params']:>13,}{sum(m.trainable for m in info['modules']):>13,}"
        f"{info['total_flops'] / 1e9:>14.3f}{100.0:>9.1f}"
    )
    lines.append("FLOPs: TensorFlow profiler float ops of one inference call (a multiply-add is 2 FLOPs)")
    return "\n".join(lines)
