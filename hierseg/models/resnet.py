"""ResNet backbone (He et al. 2016): stem, four stages C2..C5, basic (18/34) or bottleneck (50/101) blocks.

Bottlenecks stride in the 3x3 conv ("ResNet v1.5", as torchvision and the TPU models). Normalization:

* ``"frozen"``: batch norm always in inference mode with fixed gamma/beta and statistics (the usual
  choice when fine-tuning an ImageNet checkpoint with small per-device batches);
* ``"sync"``: batch norm with statistics all-reduced over replicas (``synchronized=True``);
* ``"batch"``: per-replica batch norm.

Strided convs pad ``"same"`` (TF2 / Model Garden: for an even input, one row more at the bottom than at
the top) or ``"fixed"`` (TF1 TPU ``resnet_model.py``: ``(k - 1) // 2`` before, the rest after, whatever
the input size): ``config.conv_padding``. The variables are the same either way.

The output is ``{level: feature}`` for levels 2..5 (strides 4..32). With ``output_stride`` 16 or 8
(DeepLab) the last stage(s) keep their resolution and dilate their 3x3 convs instead (atrous
convolution, same weights): level 5 (and 4) then have stride ``output_stride``.
"""

from __future__ import annotations

import keras

from hierseg.config.model import BackboneConfig

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_FILTERS = (64, 128, 256, 512)


def track_for_checkpoint(owner: keras.layers.Layer, prefix: str, layers: list) -> None:
    """Also sets each layer of a list as its own attribute ``prefix_i``.

    Keras 3 tracks layers held in lists for its own weights, but ``tf.train.Checkpoint`` only follows
    attributes that are TF trackables, which a Keras list is not: without this, checkpoints would
    silently miss every layer kept in a list.
    """
    for i, layer in enumerate(layers):
        setattr(owner, f"{prefix}_{i}", layer)


def norm_layer(config: BackboneConfig, name: str) -> keras.layers.Layer:
    """A batch norm with the backbone's settings (mode, momentum, epsilon), for FPN and heads with ``use_norm``."""
    return _norm(config, name)


def _norm(config: BackboneConfig, name: str, zero_gamma: bool = False) -> keras.layers.Layer:
    # A block's last gamma starts at 0 (Goyal et al. 2017) so each residual block starts as identity;
    # not with frozen norm, whose gamma would then stay 0 forever.
    gamma = "zeros" if zero_gamma and config.norm != "frozen" else "ones"
    layer = keras.layers.BatchNormalization(
        momentum=config.norm_momentum,
        epsilon=config.norm_epsilon,
        gamma_initializer=gamma,
        synchronized=config.norm == "sync",
        name=name,
    )
    if config.norm == "frozen":
        layer.trainable = False  # Keras 3: a non-trainable BN runs in inference mode
    return layer


class FixedPaddingConv2D(keras.layers.Conv2D):
    """A strided conv with TF1's input-size-independent padding: ``(k - 1) // 2`` top/left, the rest
    bottom/right, then ``"valid"`` (tensorflow/tpu ``conv2d_fixed_padding``)."""

    def call(self, inputs):
        total = self.kernel_size[0] - 1
        pad = [[0, 0], [total // 2, total - total // 2], [total // 2, total - total // 2], [0, 0]]
        return super().call(keras.ops.pad(inputs, pad))


def _conv(filters: int, kernel: int, stride: int, name: str, padding: str = "same") -> keras.layers.Layer:
    fixed = padding == "fixed" and stride > 1
    return (FixedPaddingConv2D if fixed else keras.layers.Conv2D)(
        filters,
        kernel,
        strides=stride,
        padding="valid" if fixed else "same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal"),
        name=name,
    )


def _atrous(conv: keras.layers.Conv2D, dilation: int):
    """``conv`` run with stride 1 and dilation ``dilation`` (3x3) with its own weights: an atrous unit."""

    def run(x):
        if not conv.built:
            conv.build(x.shape)
        rate = dilation if conv.kernel_size[0] > 1 else 1
        kernel = keras.ops.cast(conv.kernel, x.dtype)
        return keras.ops.conv(x, kernel, strides=1, padding="same", dilation_rate=rate)

    return run


class ResidualBlock(keras.layers.Layer):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block with a projection shortcut when needed."""

    def __init__(self, filters: int, stride: int, bottleneck: bool, project: bool, config: BackboneConfig, **kw):
        super().__init__(**kw)
        out = filters * 4 if bottleneck else filters
        self.project = project
        if project:
            self.shortcut_conv = _conv(out, 1, stride, "shortcut", config.conv_padding)
            self.shortcut_bn = _norm(config, "shortcut_bn")
        if bottleneck:
            specs = [(filters, 1, 1), (filters, 3, stride), (out, 1, 1)]
        else:
            specs = [(filters, 3, stride), (out, 3, 1)]
        # Flat lists of layers (Keras tracks lists of layers, not tuples).
        self.convs = [_conv(f, k, st, f"conv{i + 1}", config.conv_padding) for i, (f, k, st) in enumerate(specs)]
        self.norms = [_norm(config, f"bn{i + 1}", zero_gamma=i == len(specs) - 1) for i in range(len(specs))]
        track_for_checkpoint(self, "conv", self.convs)
        track_for_checkpoint(self, "bn", self.norms)

    def call(self, x, training=None, dilation=1):
        shortcut = x
        if self.project:
            conv = self.shortcut_conv if dilation == 1 else _atrous(self.shortcut_conv, 1)
            shortcut = self.shortcut_bn(conv(x), training=training)
        for i, (conv, bn) in enumerate(zip(self.convs, self.norms)):
            if dilation > 1:
                conv = _atrous(conv, dilation)
            x = bn(conv(x), training=training)
            if i < len(self.convs) - 1:
                x = keras.ops.relu(x)
        return keras.ops.relu(x + shortcut)


class ResNet(keras.Model):
    """``ResNet(config)(images [B, H, W, 3]) -> {2: C2, 3: C3, 4: C4, 5: C5}`` (strides 4, 8, 16, 32)."""

    def __init__(self, config: BackboneConfig, **kw):
        super().__init__(**kw)
        if config.depth not in BLOCKS:
            raise ValueError(f"backbone.depth must be one of {sorted(BLOCKS)}, got {config.depth}")
        self.config = config
        bottleneck = config.depth >= 50
        width = config.width_multiplier
        self.stem_conv = _conv(max(8, int(64 * width)), 7, 2, "stem_conv", config.conv_padding)
        self.stem_bn = _norm(config, "stem_bn")
        self.stem_pool = keras.layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")
        self.blocks = []  # flat list of all residual blocks; self.block_levels[i] = output level of block i
        self.block_levels = []
        for s, (num_blocks, filters) in enumerate(zip(BLOCKS[config.depth], STAGE_FILTERS)):
            filters = max(8, int(filters * width))
            for b in range(num_blocks):
                stride = 2 if (b == 0 and s > 0) else 1
                project = b == 0 and (s > 0 or bottleneck)
                self.blocks.append(
                    ResidualBlock(filters, stride, bottleneck, project, config, name=f"stage{s + 2}_{b}")
                )
                self.block_levels.append(s + 2)
        track_for_checkpoint(self, "block", self.blocks)

    @property
    def channels(self) -> dict[int, int]:
        """Channels of C2..C5."""
        expansion = 4 if self.config.depth >= 50 else 1
        return {s + 2: max(8, int(f * self.config.width_multiplier)) * expansion for s, f in enumerate(STAGE_FILTERS)}

    def call(self, images, training=None, output_stride=32, multi_grid=(1,)):
        """``output_stride`` 32, 16 or 8; ``multi_grid`` multiplies the dilation of the C5 units in turn."""
        if output_stride not in (8, 16, 32):
            raise ValueError(f"ResNet output_stride must be 8, 16 or 32, got {output_stride}")
        x = keras.ops.relu(self.stem_bn(self.stem_conv(images), training=training))
        frozen = max(self.config.freeze_at, 1 if self.config.freeze_stem else 0)  # -1 (unresolved) = none
        if frozen >= 1:
            x = keras.ops.stop_gradient(x)
        x = self.stem_pool(x)
        outputs = {}
        unit = 0
        for block, level in zip(self.blocks, self.block_levels):
            # Stages past the output stride run unstrided with dilation 2 (and 4) in place of stride 2.
            rate = max(1, 2**level // output_stride)
            unit = unit + 1 if level == 5 else 0
            dilation = rate * multi_grid[(unit - 1) % len(multi_grid)] if level == 5 and rate > 1 else rate
            x = block(x, training=training, dilation=dilation)
            if level == 2 and frozen >= 2:
                x = keras.ops.stop_gradient(x)
            outputs[level] = x  # the last block of each stage wins
        return outputs
