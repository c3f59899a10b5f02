"""Training and evaluation config. Owned by hierseg/training; every field commented.

The defaults are the seed's Cloud TPU v3-8 schedule for Mask R-CNN on 1024 px images (global batch 64,
45000 steps, linear warmup from 0.0067 to 0.08 over 500 steps, x0.1 at 30000 and 40000). The other pod
slices ship as override files under ``configs/tpu/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal


@dataclass
class LearningRateConfig:
    """Linear warmup then step decay (the TPU detection models' ``step_learning_rate_with_linear_warmup``).

    ``lr(step) = warmup_lr + step / warmup_steps * (init_lr - warmup_lr)`` for ``step < warmup_steps``,
    else ``init_lr * decay_factor ** (number of decay_steps <= step)``.
    """

    init_lr: float = 0.08  # peak learning rate, reached at the end of the warmup
    warmup_steps: int = 500  # steps of linear warmup from warmup_lr to init_lr (0 = no warmup)
    warmup_lr: float = 0.0067  # learning rate at step 0
    decay_steps: list[int] = field(default_factory=lambda: [30000, 40000])  # steps where lr *= decay_factor
    decay_factor: float = 0.1  # multiplier applied at each of decay_steps
    policy: Literal["step", "poly"] = "step"  # after warmup: step decay, or DeepLab's poly decay below
    poly_steps: int = 0  # poly: lr = init_lr * (1 - step / poly_steps) ** poly_power (= train.total_steps)
    poly_power: float = 0.9  # poly: exponent (DeepLab learning_power)
    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "init_lr": "> 0",
        "warmup_steps": ">= 0",
        "warmup_lr": ">= 0",
        "decay_steps": ">= 0",
        "decay_factor": "> 0",
        "poly_steps": ">= 0",
        "poly_power": "> 0",
    }


@dataclass
class CheckpointInitConfig:
    """Pretrained weights to start from when model_dir holds no checkpoint (``train.init``; README "Start from
    pretrained weights"). Readers: :mod:`hierseg.training.checkpoint_readers`.

    Sources (``source: auto`` tells them apart by variable names): a checkpoint written by hierseg (whole
    detector or some modules; class-specific layers of another class count are skipped and listed), a
    TF Model Garden TF2 Mask R-CNN (``official/vision`` ``maskrcnn_resnetfpn_coco``; the 91-class layers
    are skipped), or a TF1 Cloud TPU ResNet (backbone only, variables under ``prefix``, mapped by TF1
    creation order). After loading a table is logged: per module the variables loaded, skipped (with
    the reason) and left random. A shape or count mismatch in a module asked for is an error naming the
    variable.

    With ``architecture: source`` the model config takes the source's architecture choices before the
    model is built (``checkpoint_readers.init.source_architecture``: Model Garden = batch norm in FPN, RPN
    and heads, conv P6, 4conv1fc box head, ROIAlign without half-pixel shift; TF1 ResNet = fixed padding,
    BN epsilon 1e-5), and ``params.yaml`` records the result. The differences that remain are listed
    in README.md, "Start from pretrained weights".
    """

    path: str = ""  # checkpoint prefix or directory (latest checkpoint), local or gs:// ("" = random init)
    modules: str = "all"  # "all" or a comma list of backbone,fpn,rpn,box_head,mask_head
    prefix: str = ""  # variable-name prefix of a TF1 name-based checkpoint, e.g. "resnet50/"
    source: Literal["auto", "hierseg", "model_garden", "tf1_resnet"] = "auto"  # auto = from the variable names
    architecture: Literal["source", "config"] = "source"  # source: adopt the source's choices; config: as written


@dataclass
class TrainConfig:
    global_batch_size: int = 64  # images per step over all replicas (per replica = global / replicas)
    total_steps: int = 45000  # optimizer steps of the whole run
    steps_per_loop: int = 100  # steps per tf.function call (TPU iterations_per_loop); also the log period
    checkpoint_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 5  # most recent checkpoints kept in model_dir (older ones deleted)
    learning_rate: LearningRateConfig = field(default_factory=LearningRateConfig)  # warmup + step decay
    momentum: float = 0.9  # SGD momentum (TF1 MomentumOptimizer: accum = m * accum + g; var -= lr * accum)
    weight_decay: float = 1e-4  # L2 on kernels (rank >= 2; no batch norm, biases); the seed's 1e-4 (Model Garden: 4e-5)
    gradient_clip_norm: float = 0.0  # clip the all-reduced gradients to this global norm (0 = off)
    # auto = follow the strategy as the seed does: bfloat16 (keras "mixed_bfloat16", float32 variables) on
    # TPU, float32 on CPU/GPU; float32 / bfloat16 = that precision on every strategy. The log says which.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # XLA-compile the forward/backward pass. Off by default: on CPU XLA measured 1.34x slower per step and
    # 5.5 GiB instead of 4.1 (R50-FPN, 512 px, batch 2); TPUs always compile, whatever this says.
    jit_compile: bool = False
    init: CheckpointInitConfig = field(default_factory=CheckpointInitConfig)  # pretrained start (whole or modules)
    frozen_variables: str = ""  # regex on variable paths excluded from training ("" = train everything)
    seed: int = 42  # seed of the input shuffling/augmentation and of the model's random sampling
    summary_every: int = 100  # steps between TensorBoard scalar summaries (rounded to loop ends)
    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "global_batch_size": ">= 1",
        "total_steps": ">= 1",
        "steps_per_loop": ">= 1",
        "checkpoint_every": ">= 1",
        "keep_checkpoints": ">= 1",
        "momentum": "0..1",
        "weight_decay": ">= 0",
        "gradient_clip_norm": ">= 0",
        "summary_every": ">= 1",
    }


@dataclass
class EvalConfig:
    batch_size: int = 8  # images per eval step
    max_images: int = 0  # evaluate at most this many validation images (0 = all)
    mask_threshold: float = 0.5  # pasted mask probabilities >= this are foreground
    min_score: float = 0.0  # detections below this score are not reported
    write_predictions: bool = False  # also write predictions.jsonl (hierseg.detections) next to the metrics
    RANGES: ClassVar[dict[str, str]] = {  # checked at load (hierseg.config.params.check)
        "batch_size": ">= 1",
        "max_images": ">= 0",
        "mask_threshold": "> 0, <= 1",
        "min_score": "0..1",
    }
