"""Model config: which model (``type``) and its sections; ResNet-FPN Mask R-CNN. Owned by hierseg/models.

Defaults follow the TPU Mask R-CNN / Detectron recipes (ResNet-50-FPN, P2-P6, 1024 px). Use
:meth:`ModelConfig.tiny` for CPU tests and demos: a ResNet-18 at quarter width with a 32-filter FPN on
P2-P5 and few ROIs; at 128 px a training step takes a fraction of a second on one CPU core.

Coordinates inside the model are pixels of the padded input image, ``(ymin, xmin, ymax, xmax)``.
``hierseg.models.factory.build_model`` builds the model named by ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hierseg.config.deeplab import DeepLabConfig
from hierseg.config.retinanet import RetinaNetConfig
from hierseg.config.shapemask import ShapeMaskConfig

# The model types of hierseg.models.factory (each new model type adds its own config section below).
MODEL_TYPES = ("mask_rcnn", "retinanet", "shapemask", "deeplab_v3plus")
ModelType = Literal["mask_rcnn", "retinanet", "shapemask", "deeplab_v3plus"]


@dataclass
class AnchorConfig:
    min_level: int = 2  # finest FPN level (stride 2**min_level)
    max_level: int = 6  # coarsest FPN level; the input size must be a multiple of 2**max_level
    num_scales: int = 1  # anchor scales per octave: sides anchor_size * stride * 2**(s / num_scales)
    aspect_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])  # width / height (TPU models)
    anchor_size: float = 8.0  # anchor side = anchor_size * stride at scale 0 (32 px on P2)


@dataclass
class BackboneConfig:
    depth: int = 50  # ResNet depth: 18, 34 (basic blocks), 50, 101 (bottlenecks)
    width_multiplier: float = 1.0  # scales every conv's filters (0.25 for tiny CPU tests); 1.0 = standard
    norm: Literal["frozen", "sync", "batch"] = "frozen"  # frozen = BN in inference mode, gamma/beta fixed
    norm_momentum: float = 0.997  # batch-norm moving-average momentum ("sync" / "batch")
    norm_epsilon: float = 1e-4  # batch-norm epsilon (TPU ResNet checkpoints use 1e-4)
    freeze_stem: bool = False  # stop gradients below conv2 (stem), as when fine-tuning from ImageNet
    conv_padding: Literal["same", "fixed"] = "same"  # strided convs: TF2/Model Garden "same" | TF1 TPU "fixed"
    # Stages kept fixed (no gradient, no update, no weight decay): 0 none, 1 the stem, 2 the stem and res2
    # (Detectron's FREEZE_AT); -1 = auto: 2 when training starts from a pretrained train.init, else 0.
    freeze_at: int = -1


@dataclass
class FPNConfig:
    num_filters: int = 256  # channels of every pyramid level P2..P6 (levels come from `anchor`)
    use_norm: bool = False  # batch norm (backbone.norm settings) on every output level; on in Model Garden
    extra_levels: Literal["max_pool", "conv"] = "max_pool"  # P6+: stride-2 max pool (paper) | 3x3 s2 conv (MG)


@dataclass
class RPNConfig:
    num_convs: int = 1  # shared 3x3 convs of the RPN head before the objectness/box 1x1 convs
    use_norm: bool = False  # a batch norm per level after each of those convs (Model Garden); off in the paper
    pre_nms_topk_train: int = 2000  # proposals kept per FPN level before NMS, training
    pre_nms_topk_test: int = 1000  # ... at inference
    post_nms_topk_train: int = 1000  # proposals per image after NMS (fixed count, padded), training
    post_nms_topk_test: int = 1000  # ... at inference
    nms_iou: float = 0.7  # IoU threshold of the proposal NMS
    min_size: float = 0.0  # proposals with a side below this (pixels) are dropped (score -> -inf)
    fg_iou: float = 0.7  # anchor target: positive when IoU >= fg_iou (or best anchor of a gt box)
    bg_iou: float = 0.3  # anchor target: negative when max IoU < bg_iou
    batch_size_per_im: int = 256  # anchors sampled per image for the RPN losses
    fg_fraction: float = 0.5  # max fraction of positives among the sampled anchors
    box_coding_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])  # (wy, wx, wh, ww)
    smooth_l1_beta: float = 1.0 / 9.0  # smooth-L1 transition point of the RPN box loss (Detectron)
    score_loss_weight: float = 1.0  # multiplier of rpn_score_loss in total_loss
    box_loss_weight: float = 1.0  # multiplier of rpn_box_loss in total_loss


@dataclass
class ROISamplingConfig:
    num_samples: int = 512  # ROIs sampled per image for the box head (fixed count)
    fg_fraction: float = 0.25  # max fraction of foreground among the sampled ROIs
    fg_iou: float = 0.5  # ROI is foreground when its best IoU with a (non-crowd) gt box >= fg_iou
    bg_iou_high: float = 0.5  # ROI is background when bg_iou_low <= best IoU < bg_iou_high
    bg_iou_low: float = 0.0  # lower bound of the background IoU range
    add_gt_boxes: bool = True  # append the ground-truth boxes to the proposals before sampling


@dataclass
class BoxHeadConfig:
    roi_size: int = 7  # ROIAlign output side for the box head
    sampling_ratio: int = 2  # bilinear samples per ROIAlign bin side: 2 = 2x2 (paper); 1 = one, ~4x cheaper ROIAlign
    num_convs: int = 0  # 3x3 convs before the fcs (0 = the paper's 2fc head)
    conv_dims: int = 256  # filters of those convs
    num_fcs: int = 2  # fully connected layers
    fc_dims: int = 1024  # units per fc
    use_norm: bool = False  # batch norm after every conv and fc, before the ReLU (Model Garden)
    smooth_l1_beta: float = 1.0  # smooth-L1 transition point of the Fast R-CNN box loss
    class_loss_weight: float = 1.0  # multiplier of frcnn_class_loss in total_loss
    box_loss_weight: float = 1.0  # multiplier of frcnn_box_loss in total_loss


@dataclass
class MaskHeadConfig:
    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "roi_size": ">= 1",
        "sampling_ratio": ">= 1",
        "num_filters": ">= 1",
        "mask_size": ">= 1",
        "max_rois": ">= 0",
        "loss_weight": ">= 0",
    }
    roi_size: int = 14  # ROIAlign output side for the mask head (upsampled x2 to mask_size)
    sampling_ratio: int = 2  # bilinear samples per ROIAlign bin side: 2 = 2x2 (paper); 1 = one, ~4x cheaper ROIAlign
    num_convs: int = 4  # 3x3 convs of the mask FCN
    num_filters: int = 256  # filters of those convs and of the deconv
    mask_size: int = 28  # side of the predicted mask (= 2 * roi_size)
    use_norm: bool = False  # batch norm after every conv and the deconv, before the ReLU (Model Garden)
    # Foreground ROIs per image the mask head trains on: a static cap, padded (TPU/XLA shapes stay fixed);
    # with more foreground, a random subset; the loss is the mean over the real ones. 32 runs the head on a
    # quarter of the sampler's 128 foreground slots (num_samples * fg_fraction) and makes the R50 step
    # faster (bench/train_step.py: r50_512 vs r50_512_all_slots). Subsampling keeps the mask loss an
    # unbiased mean over the foreground ROIs, with more variance. 0 = every slot, as the seed engine and
    # Model Garden (128 mask samples per image); caps >= the slot count change nothing (the tiny config).
    max_rois: int = 32
    loss_weight: float = 1.0  # multiplier of mask_loss in total_loss


@dataclass
class DetectionConfig:
    # per class: the ROIs with that class's best scores entering its NMS (the seed keeps 1000 per class on
    # TPU; 100 keeps CPU/GPU inference of a 300-class head cheap, and NMS rarely leaves 100 of one class)
    pre_nms_topk: int = 100
    max_detections: int = 100  # detections per image (fixed count, padded with class 0 / score 0)
    nms_iou: float = 0.5  # IoU threshold of the per-class NMS
    score_threshold: float = 0.05  # candidates below this score are dropped


@dataclass
class ModelConfig:
    type: ModelType = "mask_rcnn"  # which model hierseg.models.factory builds (one of MODEL_TYPES)
    num_classes: int = 0  # K foreground classes; 0 = read from data.label_map when the config is loaded
    anchor: AnchorConfig = field(default_factory=AnchorConfig)  # anchors and FPN levels
    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # ResNet
    fpn: FPNConfig = field(default_factory=FPNConfig)  # feature pyramid
    rpn: RPNConfig = field(default_factory=RPNConfig)  # region proposal network (targets: input pipeline)
    roi_sampling: ROISamplingConfig = field(default_factory=ROISamplingConfig)  # ROI-to-gt matching
    box_head: BoxHeadConfig = field(default_factory=BoxHeadConfig)  # Fast R-CNN head
    mask_head: MaskHeadConfig = field(default_factory=MaskHeadConfig)  # class-specific mask head
    detection: DetectionConfig = field(default_factory=DetectionConfig)  # inference post-processing
    classification: Literal["softmax", "sigmoid"] = "softmax"  # K+1-way softmax, or K sigmoids (no bg logit)
    sigmoid_loss: Literal["bce", "focal"] = "bce"  # loss of the sigmoid classifier
    focal_alpha: float = 0.25  # focal-loss alpha (sigmoid_loss = "focal")
    focal_gamma: float = 2.0  # focal-loss gamma (sigmoid_loss = "focal")
    box_coding_weights: list[float] = field(default_factory=lambda: [10.0, 10.0, 5.0, 5.0])  # Fast R-CNN deltas
    roi_align_aligned: bool = True  # ROIAlign half-pixel shift (detectron2); False = Model Garden / TPU sampling
    retinanet: RetinaNetConfig = field(default_factory=RetinaNetConfig)  # type retinanet/shapemask: dense detector
    shapemask: ShapeMaskConfig = field(default_factory=ShapeMaskConfig)  # type shapemask: prior/coarse/fine heads
    deeplab: DeepLabConfig = field(default_factory=DeepLabConfig)  # DeepLab v3+ head (type deeplab_v3plus)

    @classmethod
    def tiny(cls, num_classes: int = 0) -> ModelConfig:
        """A CPU-sized model for tests and demos (input 128-256 px, objects of 16-128 px).

        ResNet-18 at width 0.25, 32-filter FPN on P2-P5, anchors of 16-128 px, 64 sampled ROIs per
        image, a 2-conv 64-filter mask head. It can overfit a handful of synthetic images in a few
        hundred steps.
        """
        return cls(
            num_classes=num_classes,
            anchor=AnchorConfig(min_level=2, max_level=5, num_scales=1, anchor_size=4.0),
            backbone=BackboneConfig(depth=18, width_multiplier=0.25, norm="batch", norm_momentum=0.9),
            fpn=FPNConfig(num_filters=32),
            rpn=RPNConfig(
                pre_nms_topk_train=200,
                pre_nms_topk_test=200,
                post_nms_topk_train=100,
                post_nms_topk_test=100,
                batch_size_per_im=64,
            ),
            roi_sampling=ROISamplingConfig(num_samples=64),
            box_head=BoxHeadConfig(num_fcs=2, fc_dims=128),
            mask_head=MaskHeadConfig(num_convs=2, num_filters=32),
            detection=DetectionConfig(pre_nms_topk=200, max_detections=20),
        )
