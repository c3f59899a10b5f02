"""ShapeMask config (Kuo et al., ICCV 2019). Owned by hierseg/models.

The section ``model.shapemask`` of ``model.type: shapemask``: a RetinaNet detector (``model.retinanet``)
plus the shape-prior, coarse-mask and fine-mask heads. Defaults are the seed's (tensorflow/tpu
``configs/shapemask_config.py``): 32x32 instance crops on P3-P5 of outer boxes 1.25x the box, 128
channels, 4 convs per mask head, x4 upsampling (128x128 fine masks), 8 jittered training boxes per
image (noise 0.025), class-specific shape priors, loss weights prior 0.1 / coarse 1 / fine 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from hierseg.config.params import ConfigError


@dataclass
class ShapeMaskConfig:
    shape_prior_path: str = ""  # float32 [num_classes, K, S, S] .npy from `hierseg priors`; "" = one all-zero prior
    mask_crop_size: int = 32  # S: side of the instance feature crop, the priors and the coarse mask
    upsample_factor: int = 4  # the fine mask is S * upsample_factor pixels per side (deconv stride)
    num_downsample_channels: int = 128  # channels of the instance features and of the mask heads
    num_convs: int = 4  # 3x3 conv + BN + ReLU layers in each of the coarse and fine mask decoders
    use_category_for_mask: bool = True  # class-specific prior weights and mask logits (False: one for all)
    outer_box_scale: float = 1.25  # instance features are cropped on the box scaled by this about its centre
    mask_min_level: int = 3  # finest FPN level instance features are cropped from
    mask_max_level: int = 5  # coarsest such level (boxes are assigned by size as in ROIAlign)
    sampling_ratio: int = 1  # bilinear samples per crop bin side (1 = the seed's crop_and_resize)
    num_sampled_masks: int = 8  # instances sampled (with repetition when fewer) per training image
    box_jitter_scale: float = 0.025  # std of the jitter of sampled boxes (centre by side, log side), training
    prior_loss_weight: float = 0.1  # multiplier of shapemask_prior_loss (MSE of the detection prior)
    coarse_loss_weight: float = 1.0  # multiplier of shapemask_coarse_loss (sigmoid cross-entropy)
    fine_loss_weight: float = 1.0  # multiplier of shapemask_fine_loss (sigmoid cross-entropy)

    def __post_init__(self) -> None:
        if self.mask_crop_size < 4 or self.upsample_factor < 1 or self.num_downsample_channels < 1:
            raise ConfigError("shapemask: mask_crop_size >= 4, upsample_factor >= 1, num_downsample_channels >= 1")
        if self.outer_box_scale < 1.0:
            raise ConfigError(f"shapemask.outer_box_scale must be >= 1, got {self.outer_box_scale}")
        if self.mask_min_level > self.mask_max_level or self.mask_min_level < 2 or self.mask_max_level > 5:
            raise ConfigError(
                f"shapemask: need 2 <= mask_min_level ({self.mask_min_level}) <= mask_max_level "
                f"({self.mask_max_level}) <= 5"
            )
        if self.num_sampled_masks < 1 or self.box_jitter_scale < 0 or self.sampling_ratio < 1:
            raise ConfigError("shapemask: num_sampled_masks >= 1, sampling_ratio >= 1, box_jitter_scale >= 0")
