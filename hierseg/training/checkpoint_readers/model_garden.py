"""TF Model Garden TF2 Mask R-CNN checkpoints (``official/vision``, ``maskrcnn_resnetfpn_coco``) -> hierseg.

Model Garden saves ``tf.train.Checkpoint(model=MaskRCNNModel, ...)``; its variables are addressed by
object path (``model/backbone/layer_with_weights-3/_conv2/kernel/.ATTRIBUTES/VARIABLE_VALUE``):

* ``backbone`` (functional ResNet): ``layer_with_weights-0`` the stem conv, ``-1`` its batch norm, then
  one per residual block in order, with ``_shortcut`` / ``_norm0`` (projection) and ``_conv{i}`` /
  ``_norm{i}``;
* ``decoder`` (functional FPN, Keras's layer order, checked on tf-models-official 2.20): the lateral 1x1
  convs from the top backbone level down, the 3x3 output convs of the top level then the others
  upwards, the stride-2 convs of the extra levels (P6...), the batch norms of every level upwards;
* ``rpn_head``: ``_convs/{i}``, per-level ``_norms/{level}/{i}``, ``_classifier``, ``_box_regressor``;
* ``detection_head`` (saved under ``model/_config_dict/detection_head/`` or ``model/detection_head/0/``):
  ``_convs``, ``_conv_norms``, ``_fcs``, ``_fc_norms``, ``_classifier`` [fc, K + 1] (column 0 background),
  ``_box_regressor`` [fc, 4 (K + 1)];
* ``mask_head``: ``_convs``, ``_conv_norms``, ``_deconv``, ``_deconv_bn``, ``_mask_regressor`` [1, 1, f, K + 1].

Model Garden counts the background in ``num_classes``: its box and mask class layers drop the
background's 4 columns / channel 0 to become ours (and, for a sigmoid classifier, the class logits
drop column 0); with another class count (the zoo's 91 COCO classes) they are skipped and listed.
The model must be built with Model Garden's architecture choices
(:func:`hierseg.training.checkpoint_readers.init.source_architecture`), or the counts differ and
loading fails naming the first variable without counterpart.
"""

from __future__ import annotations

import numpy as np

from hierseg.training.checkpoint_readers.plan import Assignment

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
BN = ("gamma", "beta", "moving_mean", "moving_variance")
# (module, anchor variable below the module's prefix): locates each module's prefix in the checkpoint.
_ANCHORS = {
    "backbone": "backbone/layer_with_weights-0/kernel",
    "fpn": "decoder/layer_with_weights-0/kernel",
    "rpn": "rpn_head/_classifier/kernel",
    "box_head": "detection_head/_classifier/kernel",
    "mask_head": "mask_head/_mask_regressor/kernel",
}


def is_model_garden(names) -> bool:
    """True when the variable names look like a Model Garden Mask R-CNN / RetinaNet checkpoint."""
    return any(n.endswith(_ANCHORS["backbone"] + _SUFFIX) for n in names)


def _prefixes(names) -> dict[str, str]:
    """Module -> checkpoint prefix (ending in '/'), for the modules present."""
    out = {}
    for module, anchor in _ANCHORS.items():
        tail = anchor.split("/", 1)[1] + _SUFFIX
        for n in sorted(names, key=len):
            if n.endswith(anchor + _SUFFIX) and "OPTIMIZER_SLOT" not in n:
                out[module] = n[: -len(tail)]
                break
    return out


def _conv(module, prefix, rel, layer, with_bias=True) -> list[Assignment]:
    out = [Assignment(module, f"{prefix}{rel}/kernel{_SUFFIX}", layer.kernel)]
    if with_bias:
        out.append(Assignment(module, f"{prefix}{rel}/bias{_SUFFIX}", layer.bias))
    return out


def _bn(module, prefix, rel, layer) -> list[Assignment]:
    return [Assignment(module, f"{prefix}{rel}/{v}{_SUFFIX}", getattr(layer, v)) for v in BN]


def _backbone(p: str, backbone) -> list[Assignment]:
    m = "backbone"
    out = _conv(m, p, "layer_with_weights-0", backbone.stem_conv, False) + _bn(
        m, p, "layer_with_weights-1", backbone.stem_bn
    )
    for i, block in enumerate(backbone.blocks):
        rel = f"layer_with_weights-{i + 2}"
        if block.project:
            out += _conv(m, p, f"{rel}/_shortcut", block.shortcut_conv, False) + _bn(
                m, p, f"{rel}/_norm0", block.shortcut_bn
            )
        for j, (conv, bn) in enumerate(zip(block.convs, block.norms)):
            out += _conv(m, p, f"{rel}/_conv{j + 1}", conv, False) + _bn(m, p, f"{rel}/_norm{j + 1}", bn)
    return out


def _fpn(p: str, fpn) -> list[Assignment]:
    m = "fpn"
    levels = fpn.backbone_levels
    top = len(levels) - 1
    order = [("conv", fpn.lateral[i]) for i in reversed(range(len(levels)))]
    order += [("conv", fpn.output_convs[i]) for i in [top, *range(top)]]
    order += [("conv", c) for c in fpn.extra_convs] + [("bn", n) for n in fpn.norms]
    out = []
    for k, (kind, layer) in enumerate(order):
        rel = f"layer_with_weights-{k}"
        out += _conv(m, p, rel, layer) if kind == "conv" else _bn(m, p, rel, layer)
    return out


def _rpn(p: str, head) -> list[Assignment]:
    m = "rpn"
    out = []
    for i, conv in enumerate(head.convs):
        out += _conv(m, p, f"_convs/{i}", conv)
    n = len(head.convs)
    for k, bn in enumerate(head.level_norms):
        out += _bn(m, p, f"_norms/{k // n}/{k % n}", bn)
    return out + _conv(m, p, "_classifier", head.objectness) + _conv(m, p, "_box_regressor", head.deltas)


def _drop_first(axis_size: int):
    """Drops the background's leading ``axis_size`` entries of the last axis."""
    return lambda v: v[..., axis_size:]


def _box_head(p: str, head, sigmoid: bool) -> list[Assignment]:
    m = "box_head"
    out = []
    for i, conv in enumerate(head.convs):
        out += _conv(m, p, f"_convs/{i}", conv) + _bn(m, p, f"_conv_norms/{i}", head.conv_norms[i])
    for i, fc in enumerate(head.fcs):
        out += _conv(m, p, f"_fcs/{i}", fc) + _bn(m, p, f"_fc_norms/{i}", head.fc_norms[i])
    logits = _drop_first(1) if sigmoid else None
    for var in ("kernel", "bias"):
        out.append(Assignment(m, f"{p}_classifier/{var}{_SUFFIX}", getattr(head.class_logits, var), logits, True))
        out.append(
            Assignment(m, f"{p}_box_regressor/{var}{_SUFFIX}", getattr(head.box_deltas, var), _drop_first(4), True)
        )
    return out


def _mask_head(p: str, head) -> list[Assignment]:
    m = "mask_head"
    out = []
    n = len(head.convs)
    for i, conv in enumerate(head.convs):
        out += _conv(m, p, f"_convs/{i}", conv) + _bn(m, p, f"_conv_norms/{i}", head.norms[i])
    out += _conv(m, p, "_deconv", head.deconv) + _bn(m, p, "_deconv_bn", head.norms[n])
    for var in ("kernel", "bias"):
        out.append(
            Assignment(m, f"{p}_mask_regressor/{var}{_SUFFIX}", getattr(head.predictor, var), _drop_first(1), True)
        )
    return out


def model_garden_assignments(model, names) -> tuple[list[Assignment], dict[str, list[str]]]:
    """(assignments for every module the checkpoint has, checkpoint variables per module).

    Raises:
      ValueError: a module needs norms the model was built without (``use_norm``) -- see the module docstring.
    """
    prefixes = _prefixes(names)
    builders = {
        "backbone": lambda p: _backbone(p, model.backbone),
        "fpn": lambda p: _fpn(p, model.fpn),
        "rpn": lambda p: _rpn(p, model.rpn_head),
        "box_head": lambda p: _box_head(p, model.box_head, model.config.classification == "sigmoid"),
        "mask_head": lambda p: _mask_head(p, model.mask_head),
    }
    assignments: list[Assignment] = []
    per_module: dict[str, list[str]] = {}
    for module, prefix in prefixes.items():
        per_module[module] = sorted(
            n for n in names if n.startswith(prefix) and n.endswith(_SUFFIX) and "OPTIMIZER_SLOT" not in n
        )
        try:
            assignments += builders[module](prefix)
        except IndexError as e:  # e.g. the checkpoint has head norms and the model none
            raise ValueError(f"module {module}: the model lacks layers the Model Garden checkpoint has ({e})") from e
    return assignments, per_module


def class_count(names, shapes) -> int | None:
    """Model Garden's num_classes (incl. background) from the detection head's classifier, if present."""
    for n in names:
        if n.endswith("detection_head/_classifier/bias" + _SUFFIX):
            return int(np.prod(shapes[n]))
    return None
