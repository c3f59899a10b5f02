"""Initialising our ResNet from a TF1 name-based ImageNet ResNet checkpoint (the TPU RetinaNet / detection ones).

Those checkpoints (e.g. ``gs://cloud-tpu-checkpoints/retinanet/resnet50-checkpoint-2018-02-07``) were written by
tensorflow/tpu's ``resnet_model.py``, built with ``tf.layers`` inside ``variable_scope("resnet50")``: every
variable is named by the layer's creation index, not by its role::

    resnet50/conv2d/kernel, resnet50/conv2d_1/kernel, ..., resnet50/conv2d_52/kernel          [kh, kw, in, out]
    resnet50/batch_normalization{,_1,...}/{gamma,beta,moving_mean,moving_variance}          [channels]

Creation order in that code: the stem conv (7x7) and its batch norm; then for every stage and block, when the
block has a projection, the shortcut conv (1x1) and its batch norm FIRST, then conv1 (1x1) + bn, conv2 (3x3) +
bn, conv3 (1x1) + bn. Convs and batch norms are numbered independently (``conv2d_k`` / ``batch_normalization_k``),
an unsuffixed name being index 0.

:func:`load_tf1_resnet` lists our backbone's (conv, batch norm) pairs by role in that same order (independent of
the order in which our own layers were created), pairs them with the checkpoint's sorted convs and batch norms,
checks every shape (kernels are HWIO on both sides) and only then assigns.
"""

from __future__ import annotations

import logging
import re

import keras
import numpy as np
import tensorflow as tf

from hierseg.models.resnet import ResNet

log = logging.getLogger(__name__)

_CONV = re.compile(r"^conv2d(?:_(\d+))?/kernel$")
_BN = re.compile(r"^batch_normalization(?:_(\d+))?/(gamma|beta|moving_mean|moving_variance)$")
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


def tf1_resnet_layers(shapes: dict[str, list[int]], prefix: str) -> tuple[list[str], list[str]] | None:
    """The TF1 layer scopes under ``prefix``, each sorted by creation index, or None when there are none.

    Args:
      shapes: ``tf.train.load_checkpoint(path).get_variable_to_shape_map()``.
      prefix: e.g. ``"resnet50/"``.

    Returns:
      ``(convs, norms)``: full scope names such as ``["resnet50/conv2d", "resnet50/conv2d_1", ...]`` and
      ``["resnet50/batch_normalization", ...]``. Optimizer slots (``.../kernel/Momentum``), ``global_step``
      and layers of other kinds (the classifier's ``dense``) are ignored.
    """
    convs: dict[int, str] = {}
    norms: dict[int, str] = {}
    for name in shapes:
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        if m := _CONV.match(rel):
            convs[int(m.group(1) or 0)] = prefix + rel.rsplit("/", 1)[0]
        elif m := _BN.match(rel):
            norms[int(m.group(1) or 0)] = prefix + rel.rsplit("/", 1)[0]
    if not convs and not norms:
        return None
    return [convs[i] for i in sorted(convs)], [norms[i] for i in sorted(norms)]


def resnet_layers_in_tf1_order(backbone: ResNet) -> list[tuple[str, keras.layers.Layer, keras.layers.Layer]]:
    """Our backbone's ``(role, conv, batch norm)`` triples in the TF1 creation order (see the module docstring).

    Roles read like ``"stem"``, ``"stage3_0/shortcut"``, ``"stage3_0/conv2"``; listed by role, so the result
    does not depend on the order in which :class:`~hierseg.models.resnet.ResidualBlock` creates its layers.
    """
    layers = [("stem", backbone.stem_conv, backbone.stem_bn)]
    for block in backbone.blocks:
        if block.project:
            layers.append((f"{block.name}/shortcut", block.shortcut_conv, block.shortcut_bn))
        for i, (conv, bn) in enumerate(zip(block.convs, block.norms)):
            layers.append((f"{block.name}/conv{i + 1}", conv, bn))
    return layers


def load_tf1_resnet(backbone: keras.Model, reader: tf.train.CheckpointReader, prefix: str, path: str) -> int | None:
    """Sets ``backbone`` (a built :class:`ResNet`) from a TF1 name-based ResNet checkpoint; returns #variables set.

    Returns None (nothing assigned) when the backbone is not a ResNet or the checkpoint holds no
    ``<prefix>conv2d*`` / ``<prefix>batch_normalization*`` variables, so the caller can report its own error.

    Raises:
      ValueError: naming the checkpoint ``path`` when the number of convs / batch norms differs from the
        backbone's (e.g. a ResNet-101 checkpoint for a ResNet-50), or when a shape differs (naming both the
        checkpoint variable and ours). Nothing is assigned unless every variable matches.
    """
    if not isinstance(backbone, ResNet):
        return None
    shapes = reader.get_variable_to_shape_map()
    found = tf1_resnet_layers(shapes, prefix)
    if found is None:
        return None
    tf1_convs, tf1_norms = found
    ours = resnet_layers_in_tf1_order(backbone)
    if len(tf1_convs) != len(ours) or len(tf1_norms) != len(ours):
        raise ValueError(
            f"{path}: the TF1 ResNet under '{prefix}' has {len(tf1_convs)} conv2d and {len(tf1_norms)} "
            f"batch_normalization layers, the backbone (depth {backbone.config.depth}) has {len(ours)} of each"
        )
    pairs = []  # (checkpoint variable name, our variable), all checked before any assignment
    for (role, conv, bn), tf1_conv, tf1_bn in zip(ours, tf1_convs, tf1_norms):
        pairs.append((f"{tf1_conv}/kernel", conv.kernel, role))
        for attr in BN_VARIABLES:
            pairs.append((f"{tf1_bn}/{attr}", getattr(bn, attr), role))
    for name, var, role in pairs:
        if name not in shapes:
            raise ValueError(f"{path}: {name} is missing (needed for the backbone's {var.path}, {role})")
        if list(shapes[name]) != list(var.shape):
            raise ValueError(
                f"{path}: variable {name} has shape {list(shapes[name])}, the backbone's {var.path} ({role}) "
                f"has {list(var.shape)}; the TF1 creation order does not match this backbone"
            )
    for name, var, _ in pairs:
        var.assign(np.asarray(reader.get_tensor(name)).astype(var.dtype))
    log.info(
        "backbone initialised from %s: %d variables of a TF1 ResNet under '%s' mapped by creation order",
        path,
        len(pairs),
        prefix,
    )
    return len(pairs)
