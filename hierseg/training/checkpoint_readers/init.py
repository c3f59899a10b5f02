"""``initialize``: one entry point for every pretrained start, and the architecture each source implies.

Sources (``source = "auto"`` tells them apart by variable names):

* ``hierseg``: a checkpoint written by hierseg (:mod:`.hierseg_ckpt`), any modules;
* ``model_garden``: a TF Model Garden TF2 Mask R-CNN (:mod:`.model_garden`), any modules;
* ``tf1_resnet``: a TF1 name-based TPU ResNet under ``prefix`` (backbone only), mapped by creation order
  (:func:`hierseg.training.checkpoints.load_tf1_resnet`).

:func:`source_architecture` lists the model-config values under which a source's weights compute what
they computed at their source (the config docs list what still differs).
"""

from __future__ import annotations

import logging

import tensorflow as tf

from hierseg.training.checkpoint_readers import hierseg_ckpt, model_garden
from hierseg.training.checkpoint_readers.plan import InitReport, apply_assignments, module_variables, parse_modules
from hierseg.training.checkpoints import checkpoint_path

log = logging.getLogger(__name__)
SOURCES = ("auto", "hierseg", "model_garden", "tf1_resnet")


def detect_source(names) -> str:
    """``hierseg`` / ``model_garden`` / ``tf1_resnet`` from a checkpoint's variable names."""
    if model_garden.is_model_garden(names):
        return "model_garden"
    if hierseg_ckpt.is_hierseg(names):
        return "hierseg"
    return "tf1_resnet"


def source_architecture(source: str) -> dict[str, object]:
    """Model-config overrides (dotted keys under ``model.``) that reproduce the source's computation.

    Model Garden: "same" padding, BN epsilon 1e-4 / momentum 0.997, batch norm on every FPN level, in the
    RPN (per level) and in both heads, a stride-2 conv for P6, ROIAlign without the half-pixel shift and
    one sample per bin, a 4conv1fc box head. TF1 TPU ResNet: fixed padding, BN epsilon 1e-5 (TPU
    resnet_model.py; the detection checkpoints' own epsilon is 1e-4, hierseg's default).
    """
    if source == "model_garden":
        return {
            "backbone.conv_padding": "same",
            "backbone.norm_epsilon": 1e-4,  # maskrcnn_resnetfpn_coco's norm_activation (not MG's 1e-3 default)
            "backbone.norm_momentum": 0.997,
            "fpn.use_norm": True,
            "fpn.extra_levels": "conv",
            "rpn.use_norm": True,
            "box_head.use_norm": True,
            "box_head.num_convs": 4,
            "box_head.num_fcs": 1,
            "box_head.sampling_ratio": 1,
            "mask_head.use_norm": True,
            "mask_head.sampling_ratio": 1,
            "roi_align_aligned": False,
        }
    if source == "tf1_resnet":
        return {"backbone.conv_padding": "fixed", "backbone.norm_epsilon": 1e-5}
    return {}


def apply_source_architecture(model_config, source: str) -> list[str]:
    """Sets :func:`source_architecture` on a ModelConfig in place; returns ``["key: old -> new", ...]``."""
    changes = []
    for dotted, value in source_architecture(source).items():
        *parents, leaf = dotted.split(".")
        owner = model_config
        for p in parents:
            owner = getattr(owner, p)
        old = getattr(owner, leaf)
        if old != value:
            setattr(owner, leaf, value)
            changes.append(f"model.{dotted}: {old} -> {value}")
    return changes


def with_source_architecture(config):
    """The experiment config with ``train.init``'s source architecture applied (a copy; unchanged when
    there is no init path or ``train.init.architecture == "config"``). Each change is logged."""
    import copy

    init = config.train.init
    if not init.path or init.architecture != "source":
        return config
    source = init.source
    if source == "auto":
        source = detect_source(list(tf.train.load_checkpoint(checkpoint_path(init.path)).get_variable_to_shape_map()))
    config = copy.deepcopy(config)
    for change in apply_source_architecture(config.model, source):
        log.info("train.init (%s checkpoint): %s", source, change)
    return config


def initialize(model, path: str, modules="all", prefix: str = "", source: str = "auto") -> InitReport:
    """Initialises ``modules`` of a built ``model`` from the checkpoint at ``path``; logs and returns the report.

    Args:
      model: a built detector with ``backbone``, ``fpn``, ``rpn_head``, ``box_head``, ``mask_head``.
      path: checkpoint prefix or directory (latest), local or gs://.
      modules: ``"all"``, a comma-separated subset of :data:`.plan.MODULES`, or a list.
      prefix: variable-name prefix of a TF1 checkpoint (e.g. ``"resnet50/"``).
      source: one of :data:`SOURCES`.

    Raises:
      ValueError: an unknown source or module, a TF1 checkpoint asked for more than the backbone, or any
        mismatch :func:`.plan.apply_assignments` reports (naming the variable).
    """
    if source not in SOURCES:
        raise ValueError(f"init source '{source}' is not one of {', '.join(SOURCES)}")
    wanted = parse_modules(modules)
    path = checkpoint_path(path)
    reader = tf.train.load_checkpoint(path)
    names = list(reader.get_variable_to_shape_map())
    if source == "auto":
        source = detect_source(names)
    if source == "tf1_resnet":
        return _tf1(model, reader, path, prefix, wanted, explicit=modules != "all")
    if source == "model_garden":
        assignments, per_module = model_garden.model_garden_assignments(model, names)
    else:
        assignments, per_module = hierseg_ckpt.hierseg_assignments(model, names)
    absent = [m for m in wanted if m not in per_module]
    if absent and modules != "all":
        raise ValueError(f"{path}: the {source} checkpoint has no module {absent[0]} (it has {', '.join(per_module)})")
    return apply_assignments(
        model, reader, assignments, per_module, [m for m in wanted if m in per_module], path, source
    )


def _tf1(model, reader, path: str, prefix: str, wanted, explicit: bool) -> InitReport:
    from hierseg.training.checkpoints import load_tf1_resnet

    if explicit and wanted != ("backbone",):
        raise ValueError(f"{path}: a TF1 ResNet checkpoint holds only a backbone; use --init_modules backbone")
    loaded = load_tf1_resnet(model.backbone, reader, prefix, path)
    if loaded is None:
        raise ValueError(
            f"{path}: not a hierseg, Model Garden or TF1 ResNet checkpoint under prefix '{prefix}' "
            f"(it has e.g. {sorted(reader.get_variable_to_shape_map())[:3]})"
        )
    report = InitReport(path, "tf1_resnet", ("backbone",), loaded={"backbone": loaded})
    for m in ("fpn", "rpn", "box_head", "mask_head"):
        report.left_random[m] = [v.path for v in module_variables(model, m)]
    log.info("%s", report.table())
    return report
