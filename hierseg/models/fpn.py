"""Feature Pyramid Network (Lin et al. 2017): top-down pathway with lateral connections, P2..P6.

``P_l = conv3x3(lateral_l(C_l) + upsample2x(inner_{l+1}))`` for the backbone levels (up to 5); levels
above 5 (P6) are a stride-2 max-pool of the coarsest output, as in Mask R-CNN's FPN (used by the RPN
only; ROIAlign stays on P2..P5).

Model Garden's FPN (``config.extra_levels = "conv"``, ``config.use_norm``): P6 is a 3x3 stride-2 conv of
P5 (before its norm; a ReLU before each further level), and every output level gets a batch norm.
"""

from __future__ import annotations

import keras

from hierseg.config.model import AnchorConfig, BackboneConfig, FPNConfig
from hierseg.models.resnet import norm_layer, track_for_checkpoint

BACKBONE_MAX_LEVEL = 5


class FPN(keras.layers.Layer):
    """``FPN(config, anchor)({2: C2, ..., 5: C5}) -> {min_level: P, ..., max_level: P}``, each with num_filters."""

    def __init__(self, config: FPNConfig, anchor: AnchorConfig, norm: BackboneConfig | None = None, **kw):
        """``norm``: batch-norm settings (the backbone's) used when ``config.use_norm``."""
        super().__init__(**kw)
        self.min_level = anchor.min_level
        self.max_level = anchor.max_level
        self.backbone_levels = list(range(anchor.min_level, min(anchor.max_level, BACKBONE_MAX_LEVEL) + 1))

        def init():  # Kaiming-uniform(a=1) as detectron2; a fresh instance per layer (Keras 3 repeats values)
            return keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")

        # Lists (not int-keyed dicts) so Keras and tf.train.Checkpoint track the layers.
        self.lateral = [
            keras.layers.Conv2D(config.num_filters, 1, kernel_initializer=init(), name=f"lateral_p{lv}")
            for lv in self.backbone_levels
        ]
        self.output_convs = [
            keras.layers.Conv2D(config.num_filters, 3, padding="same", kernel_initializer=init(), name=f"output_p{lv}")
            for lv in self.backbone_levels
        ]
        track_for_checkpoint(self, "lateral", self.lateral)
        track_for_checkpoint(self, "output_conv", self.output_convs)
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest")
        self.pool = keras.layers.MaxPooling2D(1, 2, padding="valid")
        top = self.backbone_levels[-1]
        self.extra_convs = []
        if config.extra_levels == "conv":
            self.extra_convs = [
                keras.layers.Conv2D(
                    config.num_filters, 3, strides=2, padding="same", kernel_initializer=init(), name=f"coarser_p{lv}"
                )
                for lv in range(top + 1, self.max_level + 1)
            ]
            track_for_checkpoint(self, "extra_conv", self.extra_convs)
        self.norms = []
        if config.use_norm:
            if norm is None:
                raise ValueError("fpn.use_norm needs the batch-norm settings (FPN(..., norm=model.backbone))")
            self.norms = [norm_layer(norm, f"norm_p{lv}") for lv in range(self.min_level, self.max_level + 1)]
            track_for_checkpoint(self, "norm", self.norms)

    def call(self, features, training=None):
        inner = None
        outputs = {}
        for i in reversed(range(len(self.backbone_levels))):
            lv = self.backbone_levels[i]
            lateral = self.lateral[i](features[lv])
            inner = lateral if inner is None else lateral + self.upsample(inner)
            outputs[lv] = self.output_convs[i](inner)
        top = self.backbone_levels[-1]
        for i, lv in enumerate(range(top + 1, self.max_level + 1)):
            if self.extra_convs:
                x = outputs[lv - 1] if lv == top + 1 else keras.ops.relu(outputs[lv - 1])
                outputs[lv] = self.extra_convs[i](x)
            else:
                outputs[lv] = self.pool(outputs[lv - 1])
        levels = range(self.min_level, self.max_level + 1)
        if self.norms:
            return {lv: bn(outputs[lv], training=training) for lv, bn in zip(levels, self.norms)}
        return {lv: outputs[lv] for lv in levels}
