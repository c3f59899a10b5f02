"""Checkpoints of the engine: where they are, which step, restoring a model, pretrained starts.

* **Format**: a ``tf.train.Checkpoint`` of every model variable keyed by its Keras path without the
  model's name (:func:`variables_by_path`), plus the optimizer and step when training. Files
  ``model_dir/ckpt-<step>.{index,data-*}`` (``CHECKPOINT_NAME``); :func:`checkpoint_step` is the one
  parser of a step out of a checkpoint path.
* **Restore**: :func:`checkpoint_path` (a prefix, or a directory's latest), :func:`restore_weights`
  and :func:`restore_model` (the factory's model of a config with a checkpoint's weights).
* **Pretrained starts** (``train.init``, :func:`init_from_pretrained`, which delegates to
  :mod:`hierseg.training.checkpoint_readers` for every source and module): the backbone
  (:func:`init_backbone`: a hierseg checkpoint, a name-based one with ``prefix``, or a TF1 ResNet mapped
  by creation order, below) or the whole model (:func:`init_whole_model`: every variable of a hierseg
  checkpoint whose path and shape match).

TF1 ResNet checkpoints -- Initialising our ResNet from a TF1 name-based ImageNet ResNet checkpoint (the TPU RetinaNet / detection ones).

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

from hierseg.config.experiment import ExperimentConfig
from hierseg.config.training import CheckpointInitConfig
from hierseg.layout import CHECKPOINT_PREFIX
from hierseg.models.resnet import ResNet

log = logging.getLogger(__name__)

CHECKPOINT_NAME = CHECKPOINT_PREFIX  # checkpoint files: model_dir/ckpt-<step>.{index,data-*} (hierseg.layout)


# ------------------------------------------------------------------------------ format and paths
def variables_by_path(model: keras.Model, under: str = "") -> dict[str, tf.Variable]:
    """The model's variables keyed by their Keras path without the model's own name (``backbone/stem_conv/kernel``).

    Checkpoints hold THIS mapping rather than the Keras object graph: Keras 3 keeps sub-layers held in
    Python lists/dicts in its own trackers, which ``tf.train.Checkpoint`` does not traverse, so saving
    ``model`` itself would silently drop e.g. every residual block. Paths do not depend on the model's
    instance name, so any copy of the same architecture restores from them.

    Args:
      under: only paths starting with this prefix (e.g. "backbone/").
    """
    out: dict[str, tf.Variable] = {}
    for v in model.variables:
        key = v.path.split("/", 1)[1] if "/" in v.path else v.path
        if key in out:
            raise ValueError(f"two variables of the model share the path '{key}': checkpoints need unique paths")
        if key.startswith(under):
            out[key] = v.value if isinstance(v, keras.Variable) else v
    return out


def make_checkpoint(model: keras.Model, **extra) -> tf.train.Checkpoint:
    """A ``tf.train.Checkpoint`` of every model variable by path (see :func:`variables_by_path`) + ``extra``."""
    return tf.train.Checkpoint(model=variables_by_path(model), **extra)


def _checkpoint_key(path: str) -> str:
    """The name under which :func:`make_checkpoint` stores the variable of ``path`` (object-graph escaping)."""
    return "model/" + path.replace(".", "..").replace("/", ".S") + "/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_path(checkpoint_or_dir: str) -> str:
    """A checkpoint prefix, or the latest checkpoint of a directory; error when there is none."""
    if tf.io.gfile.isdir(checkpoint_or_dir):
        path = tf.train.latest_checkpoint(checkpoint_or_dir)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint_or_dir}")
        return path
    if not tf.io.gfile.exists(checkpoint_or_dir + ".index"):
        raise FileNotFoundError(f"checkpoint {checkpoint_or_dir} not found (no {checkpoint_or_dir}.index)")
    return checkpoint_or_dir


def checkpoint_step(path: str) -> int | None:
    """The step of a checkpoint prefix ``.../<name>-<step>`` (None when the name carries no step)."""
    tail = path.rstrip("/").rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def latest_step(model_dir: str) -> int | None:
    """The step of the latest checkpoint in ``model_dir`` (None when there is none)."""
    path = tf.train.latest_checkpoint(model_dir)
    return checkpoint_step(path) if path else None


def variables_fingerprint(variables: list) -> float:
    """A float summarising the variables' values (sum of |v| * position weight) to compare copies."""
    total = 0.0
    for i, v in enumerate(variables):
        total += float(np.sum(np.abs(np.asarray(v, np.float64)))) * (1.0 + 1e-3 * i)
    return total


# ------------------------------------------------------------------------------------- restoring
def restore_weights(model: keras.Model, path: str) -> None:
    """Reads every model variable from a hierseg checkpoint prefix (optimizer slots and step ignored)."""
    make_checkpoint(model).read(path).expect_partial().assert_existing_objects_matched()


def restore_model(config: ExperimentConfig, checkpoint: str) -> keras.Model:
    """A float32 model of ``config`` (``hierseg.models.factory``) with the weights of ``checkpoint`` (a prefix or a model_dir)."""
    from hierseg.models.factory import build_model

    path = checkpoint_path(checkpoint)
    model = build_model(config.model, config.data.output_size)
    restore_weights(model, path)
    log.info("restored %s", path)
    return model


# ----------------------------------------------------------------------------- pretrained starts
def init_from_pretrained(model: keras.Model, init: CheckpointInitConfig) -> int:
    """``train.init``: the modules ``init.modules`` of ``model`` from ``init.path`` (any source, see
    :mod:`hierseg.training.checkpoint_readers`, which logs the table); returns #variables set."""
    from hierseg.training.checkpoint_readers import initialize

    return initialize(model, init.path, init.modules, init.prefix, init.source).num_loaded


def _resolve(path: str) -> str:
    return (tf.train.latest_checkpoint(path) or path) if tf.io.gfile.isdir(path) else path


def init_whole_model(model: keras.Model, path: str) -> int:
    """Sets every variable of ``model`` whose path and shape match a hierseg checkpoint; returns the count.

    For starting one detector from another (e.g. a layer from a model trained on another layer): the
    variables that differ (class-dependent heads of another ``num_classes``) keep their initialisation
    and are logged. Error when nothing matches (not a hierseg checkpoint of this architecture).
    """
    path = _resolve(path)
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    loaded, skipped = 0, []
    for key, var in variables_by_path(model).items():
        name = _checkpoint_key(key)
        if name in shapes and list(shapes[name]) == list(var.shape):
            var.assign(np.asarray(reader.get_tensor(name)).astype(var.dtype.as_numpy_dtype))
            loaded += 1
        else:
            skipped.append(key)
    if loaded == 0:
        raise ValueError(f"{path}: no variable of the model found (not a hierseg checkpoint of this architecture?)")
    log.info(
        "model initialised from %s: %d variables loaded, %d kept their init%s",
        path,
        loaded,
        len(skipped),
        f" (e.g. {skipped[:3]})" if skipped else "",
    )
    return loaded


def init_backbone(model: keras.Model, init: CheckpointInitConfig) -> int:
    """Loads ``model.backbone`` from a pretrained checkpoint; returns the number of variables set.

    With ``init.prefix``: by name (TF1 name-based checkpoints): the variable whose path relative to the
    backbone is ``a/b`` is read from ``<prefix>a/b``; unmatched backbone variables keep their init and
    are logged; a shape mismatch is an error naming the variable. When no such name exists, a TF1 ResNet
    (``<prefix>conv2d_k/kernel``, ``<prefix>batch_normalization_k/...``) is mapped by creation order
    (:func:`load_tf1_resnet`). Without: a TF2 object-based checkpoint written by hierseg
    (``model/backbone/...``), every backbone variable must match.
    """
    path = _resolve(init.path)
    backbone = model.backbone
    if not init.prefix:
        mine = variables_by_path(model, under="backbone/")
        status = tf.train.Checkpoint(model=mine).read(path)
        status.expect_partial().assert_existing_objects_matched()
        log.info("backbone initialised from %s (hierseg checkpoint, %d variables)", path, len(mine))
        return len(mine)
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    loaded, missing = 0, []
    for v in backbone.variables:
        rel = v.path.split(f"{backbone.name}/", 1)[-1]
        name = init.prefix + rel
        if name not in shapes:
            missing.append(name)
            continue
        if list(shapes[name]) != list(v.shape):
            raise ValueError(
                f"{path}: variable {name} has shape {shapes[name]}, the backbone's {v.path} has {list(v.shape)}"
            )
        v.assign(reader.get_tensor(name).astype(v.dtype))
        loaded += 1
    if loaded == 0:
        # Not our variable paths: a TF1 name-based ResNet (the TPU ImageNet ones), mapped by creation order.
        tf1_loaded = load_tf1_resnet(backbone, reader, init.prefix, path)
        if tf1_loaded is not None:
            return tf1_loaded
        raise ValueError(
            f"{path}: no backbone variable found under prefix '{init.prefix}' "
            f"(looked for e.g. {missing[:3]}; the checkpoint has e.g. {sorted(shapes)[:3]})"
        )
    log.info(
        "backbone initialised from %s: %d variables loaded, %d not in the checkpoint%s",
        path,
        loaded,
        len(missing),
        f" (e.g. {missing[:3]})" if missing else "",
    )
    return loaded


# ------------------------------------------------------------------- TF1 ResNet by creation order
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
