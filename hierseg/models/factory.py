"""The model factory: every model of the engine by ``model_config.type``, behind one small contract.

The loop, evaluation, export and predict build models only through :func:`build_model` and the
per-example training targets only through :func:`build_train_targets`; they never name a model class.

Contract of a model ``m = build_model(model_config, image_size)`` (a ``keras.Model`` whose variables
exist, S = ``image_size``, batched feature dicts keyed by :mod:`hierseg.features`):

* ``m(features, training=True)`` -> dict of float32 scalar losses, keys ``m.loss_keys``, always
  including ``"total_loss"`` (per-replica means, no weight decay). ``features`` is a batch of the
  training input pipeline after the :func:`build_train_targets` map.
* ``m(features, training=False)`` needs only IMAGE ``[B, S, S, 3]`` and IMAGE_INFO ``[B, 4, 2]`` and
  returns batched outputs named by features.py keys: DET_* for detectors, the semantic keys for
  semantic segmentation.
* ``m.backbone``: the ResNet (a ``keras.Model``), for starts from a pretrained checkpoint.
* ``m.output_kind``: ``"masks"`` (instance masks + boxes), ``"boxes"`` or ``"semantic"``.

A new model type adds one builder pair below and its own config section (one field of ModelConfig).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from hierseg import features
from hierseg.config.model import MODEL_TYPES, ModelConfig

OUTPUT_KINDS = ("masks", "boxes", "semantic")


# ------------------------------------------------------------------------------ one pair per type
def _mask_rcnn(model_config: ModelConfig, image_size: int) -> keras.Model:
    from hierseg.models.mask_rcnn import MaskRCNN

    return MaskRCNN(model_config, num_classes=model_config.num_classes, image_size=image_size)


def _mask_rcnn_targets(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    from hierseg.input.anchor_targets import rpn_targets_map

    return rpn_targets_map(model_config.anchor, model_config.rpn, image_size)


def _retinanet(model_config: ModelConfig, image_size: int) -> keras.Model:
    from hierseg.models.retinanet import RetinaNet

    return RetinaNet(model_config, num_classes=model_config.num_classes, image_size=image_size)


def _retinanet_targets(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    from hierseg.models.retinanet_targets import retinanet_targets_map

    return retinanet_targets_map(model_config, image_size)


def _shapemask(model_config: ModelConfig, image_size: int) -> keras.Model:
    from hierseg.models.shapemask import ShapeMask

    return ShapeMask(model_config, num_classes=model_config.num_classes, image_size=image_size)


def _shapemask_targets(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    from hierseg.models.shapemask_targets import shapemask_targets_map

    return shapemask_targets_map(model_config, image_size)


def _deeplab(model_config: ModelConfig, image_size: int) -> keras.Model:
    from hierseg.models.deeplab import DeepLabV3Plus

    return DeepLabV3Plus(model_config.backbone, model_config.deeplab, model_config.num_classes, image_size)


def _deeplab_targets(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    from hierseg.models.deeplab import semantic_train_targets

    return semantic_train_targets


# model type -> (model builder, training-targets builder); each builder imports its model lazily.
_BUILDERS: dict[str, tuple[Callable, Callable]] = {
    "mask_rcnn": (_mask_rcnn, _mask_rcnn_targets),
    "retinanet": (_retinanet, _retinanet_targets),
    "shapemask": (_shapemask, _shapemask_targets),
    "deeplab_v3plus": (_deeplab, _deeplab_targets),
}


def _builders(model_config: ModelConfig) -> tuple[Callable, Callable]:
    kind = model_config.type
    if kind not in MODEL_TYPES:
        raise ValueError(f"model.type={kind!r} is not one of {list(MODEL_TYPES)}")
    if kind not in _BUILDERS:
        raise NotImplementedError(
            f"model.type={kind!r} is not implemented in this build (implemented: {sorted(_BUILDERS)})"
        )
    if model_config.num_classes < 1:
        raise ValueError(
            f"model.num_classes is {model_config.num_classes}: load the config with "
            "hierseg.config.experiment.resolve_num_classes (reads data.label_map) or set it"
        )
    return _BUILDERS[kind]


# ------------------------------------------------------------------------------------ the factory
def inference_inputs(image_size: int, batch: int = 1) -> dict[str, tf.Tensor]:
    """A zero batch of inference inputs (IMAGE, IMAGE_INFO of an unscaled S x S image) to create variables."""
    image = tf.zeros([batch, image_size, image_size, 3], tf.float32)
    info = features.make_image_info(image_size, image_size, image_size, image_size, 0, 0)
    return {features.IMAGE: image, features.IMAGE_INFO: tf.tile(info[None], [batch, 1, 1])}


def build_model(model_config: ModelConfig, image_size: int) -> keras.Model:
    """The model of ``model_config.type`` for ``image_size`` x ``image_size`` inputs, variables created.

    Variables must exist before a checkpoint restore and before the optimizer's slots are made, and
    they must be created in cross-replica context (under ``strategy.scope()``, not inside
    ``strategy.run``), hence one eager inference call on zeros here.

    Raises:
      ValueError: unknown ``model.type``, ``num_classes`` < 1, or a size the model cannot take.
      NotImplementedError: a known type whose model is not part of this build.
    """
    build, _ = _builders(model_config)
    model = build(model_config, image_size)
    for attr in ("loss_keys", "output_kind", "backbone"):
        if not hasattr(model, attr):
            raise TypeError(f"model.type={model_config.type!r}: the model has no '{attr}' (see the factory contract)")
    if model.output_kind not in OUTPUT_KINDS or "total_loss" not in model.loss_keys:
        raise TypeError(f"model.type={model_config.type!r}: bad output_kind or loss_keys without total_loss")
    model(inference_inputs(image_size), training=False)
    return model


def build_train_targets(model_config: ModelConfig, image_size: int) -> Callable[[dict], dict]:
    """The per-example ``tf.data`` map adding the model's own training targets.

    The returned function takes one (unbatched) training example of the input pipeline (keys of
    :mod:`hierseg.features`, plus TARGETS_SEED, an int64 ``[2]`` stateless seed) and returns it with
    the model's targets added (RPN_SCORE_TARGETS / RPN_BOX_TARGETS for Mask R-CNN, ...), all static.
    """
    _, targets = _builders(model_config)
    return targets(model_config, image_size)
