"""Experiment configs: every YAML under configs/ loads strictly, the TPU schedule table is exact, the
learning-rate schedule is exact at its boundaries, and bad keys/types are errors naming them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hierseg.config import ConfigError, load, parse_override
from hierseg.config.experiment import ExperimentConfig
from hierseg.config.model import ModelConfig
from hierseg.config.training import LearningRateConfig
from hierseg.training.schedule import WarmupStepDecay
from hierseg.training.strategy import effective_precision

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))

# The seed's Cloud TPU schedules: cores, batch, steps, warmup, init LR, decay steps.
TPU_TABLE = {
    "v3-8": (8, 64, 45000, 500, 0.08, [30000, 40000]),
    "v3-32": (32, 256, 11250, 1600, 0.24, [7500, 10000]),
    "v3-128": (128, 1024, 2813, 1093, 0.64, [2188, 2656]),
    "v3-256": (256, 2048, 1800, 600, 0.64, [1200, 1600]),
}
LAYER_CONFIGS = [f"layer{i}_maskrcnn_r{d}_fpn.yaml" for i in (0, 1) for d in (50, 101)]


def test_configs_folder_holds_the_expected_files():
    names = {str(p.relative_to(CONFIGS)) for p in ALL_YAML}
    assert set(LAYER_CONFIGS) | {f"tpu/{t}.yaml" for t in TPU_TABLE} | {"tiny_cpu.yaml"} <= names


def _config_class(command: str):
    """The typed config a command loads its --config_file into (strict: unknown keys are errors)."""
    if command == "train":
        return ExperimentConfig
    if command == "prepare":
        from data_prep.config import PrepareConfig

        return PrepareConfig
    raise AssertionError(f"no loader known for `hierseg {command}` configs: add it here")


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_yaml_loads_strictly_and_starts_with_its_command(path):
    first = path.read_text().splitlines()[0]
    command = re.match(r"# hierseg (\S+) ", first)
    assert command, f"{path}: the first line must be the command to run, got {first!r}"
    cfg = load(_config_class(command.group(1)), str(path))
    assert cfg is not None
    config_file = re.search(r"--config_file (\S+)", first).group(1)
    assert (CONFIGS.parent / config_file).exists()
    override = re.search(r"--params_override (\S+\.yaml)\b", first)  # a file override (key=value ones aside)
    if command.group(1) == "train" and override:
        assert (CONFIGS.parent / override.group(1)) == path


@pytest.mark.parametrize("tpu", sorted(TPU_TABLE))
def test_tpu_schedules_are_exactly_the_seed_table(tpu):
    cores, batch, steps, warmup, lr, decays = TPU_TABLE[tpu]
    base = CONFIGS / "layer0_maskrcnn_r50_fpn.yaml"
    cfg = load(ExperimentConfig, str(base), str(CONFIGS / "tpu" / f"{tpu}.yaml"))
    t = cfg.train
    assert (t.global_batch_size, t.total_steps, t.learning_rate.warmup_steps) == (batch, steps, warmup)
    assert t.learning_rate.init_lr == lr and t.learning_rate.decay_steps == decays
    assert t.learning_rate.warmup_lr == 0.0067 and t.learning_rate.decay_factor == 0.1
    assert t.global_batch_size % cores == 0  # 8 images per core on every slice
    assert cfg.data.output_size == 1024


@pytest.mark.parametrize("name", LAYER_CONFIGS)
def test_layer_configs_default_to_the_v3_8_schedule(name):
    cfg = load(ExperimentConfig, str(CONFIGS / name))
    v38 = load(ExperimentConfig, str(CONFIGS / name), str(CONFIGS / "tpu" / "v3-8.yaml"))
    assert cfg == v38
    assert cfg.model.backbone.depth == int(re.search(r"_r(\d+)_", name).group(1))
    # bfloat16 on TPU (issue 16: "auto" follows the strategy, float32 away from TPU unless forced).
    assert effective_precision(cfg.train.precision, on_tpu=True) == "bfloat16"
    if cfg.model.type == "mask_rcnn":
        assert cfg.train.precision == "auto" and effective_precision(cfg.train.precision, on_tpu=False) == "float32"


def test_tiny_cpu_config_is_the_tiny_model():
    cfg = load(ExperimentConfig, str(CONFIGS / "tiny_cpu.yaml"))
    assert cfg.model == ModelConfig.tiny()
    assert cfg.data.output_size % 2**cfg.model.anchor.max_level == 0


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.learning_rate.init_lrr=0.1", "train.learning_rate.init_lrr"),
        ("train.total_steps=many", "train.total_steps"),
        ("train.precision=float16", "train.precision"),
        ("train.learning_rate.decay_steps=[1, x]", "train.learning_rate.decay_steps[1]"),
        ("{eval: {batch_sise: 2}}", "eval.batch_sise"),
    ],
)
def test_unknown_key_or_wrong_type_in_override_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load(ExperimentConfig, str(CONFIGS / "tiny_cpu.yaml"), override)


def test_unknown_key_in_yaml_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  init:\n    pathh: x\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.init\.pathh"):
        load(ExperimentConfig, str(bad))


def test_override_file_and_flat_form_agree():
    a = load(ExperimentConfig, None, str(CONFIGS / "tpu" / "v3-32.yaml"))
    b = load(
        ExperimentConfig,
        None,
        "train.global_batch_size=256,train.total_steps=11250,"
        "train.learning_rate.warmup_steps=1600,train.learning_rate.init_lr=0.24,"
        "train.learning_rate.decay_steps=[7500,10000]",
    )
    assert a == b and parse_override("train.total_steps=3") == {"train": {"total_steps": 3}}


# ------------------------------------------------------------------------------ the LR schedule
def _lr(schedule, step) -> float:
    return float(schedule(step).numpy())


def test_schedule_is_exact_at_the_boundaries():
    s = WarmupStepDecay.from_config_section(LearningRateConfig())  # v3-8 defaults
    assert _lr(s, 0) == pytest.approx(0.0067, abs=0, rel=1e-6)
    assert _lr(s, 250) == pytest.approx(0.0067 + 0.5 * (0.08 - 0.0067), rel=1e-6)
    assert _lr(s, 499) == pytest.approx(0.0067 + 499 / 500 * (0.08 - 0.0067), rel=1e-6)
    assert _lr(s, 500) == np.float32(0.08)
    assert _lr(s, 29999) == np.float32(0.08)
    assert _lr(s, 30000) == np.float32(0.008)
    assert _lr(s, 39999) == np.float32(0.008)
    assert _lr(s, 40000) == np.float32(0.08 * 0.01)
    assert _lr(s, 45000) == np.float32(0.08 * 0.01)


def test_schedule_against_a_python_reference_on_random_steps():
    cfg = LearningRateConfig(init_lr=0.64, warmup_steps=1093, warmup_lr=0.0067, decay_steps=[2188, 2656])
    s = WarmupStepDecay.from_config_section(cfg)

    def ref(step):
        if step < cfg.warmup_steps:
            return cfg.warmup_lr + step / cfg.warmup_steps * (cfg.init_lr - cfg.warmup_lr)
        return cfg.init_lr * 0.1 ** sum(step >= b for b in cfg.decay_steps)

    for step in np.random.default_rng(0).integers(0, 3000, size=50):
        assert _lr(s, int(step)) == pytest.approx(ref(int(step)), rel=1e-6)


def test_schedule_without_warmup_and_unsorted_decays():
    s = WarmupStepDecay(0.1, 0, 0.0, [10])
    assert _lr(s, 0) == np.float32(0.1) and _lr(s, 10) == np.float32(0.1 * 0.1)
    with pytest.raises(ValueError, match="increasing"):
        WarmupStepDecay(0.1, 0, 0.0, [10, 5])


def test_precision_follows_the_strategy_unless_explicit():
    assert effective_precision("auto", on_tpu=True) == "bfloat16"
    assert effective_precision("auto", on_tpu=False) == "float32"
    assert effective_precision("bfloat16", on_tpu=False) == "bfloat16"  # explicit: forced everywhere
    assert effective_precision("float32", on_tpu=True) == "float32"
    assert ExperimentConfig().train.precision == "auto" and ExperimentConfig().train.weight_decay == 1e-4
