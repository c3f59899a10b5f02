"""`hierseg model-info`: parameters per module and profiler FLOPs, for every model type the engine builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hierseg.config.experiment import ExperimentConfig
from hierseg.config.params import load, merge
from hierseg.models.model_info import OUTSIDE, build_inference_model, format_info, model_info

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "tiny_cpu.yaml")


def model_types() -> tuple[str, ...]:
    try:
        from hierseg.config.model import MODEL_TYPES
    except ImportError:
        return ("mask_rcnn",)
    return MODEL_TYPES


def tiny(model_type: str, size: int | None = None):
    """The shipped tiny CPU config of a model type (configs/tiny_cpu_<type>.yaml, tiny_cpu.yaml for Mask
    R-CNN), with 3 classes and optionally another input size."""
    name = {"mask_rcnn": "tiny_cpu", "deeplab_v3plus": "tiny_cpu_deeplab"}.get(model_type, f"tiny_cpu_{model_type}")
    config = load(ExperimentConfig, str(Path(TINY).parent / f"{name}.yaml"))
    config = merge(config, {"model": {"num_classes": 3, "type": model_type}})
    return merge(config, {"data": {"output_size": size}}) if size else config


@pytest.mark.parametrize(
    "model_type", [t if t == "mask_rcnn" else pytest.param(t, marks=pytest.mark.slow) for t in model_types()]
)
def test_params_per_module_add_up_and_flops_are_counted(model_type):
    try:
        info = model_info(tiny(model_type))
    except NotImplementedError as e:
        pytest.skip(str(e))
    model, _ = build_inference_model(tiny(model_type))
    assert info["total_params"] == model.count_params()
    names = [m.name for m in info["modules"]]
    assert "backbone" in names and names[-1] == OUTSIDE
    backbone = info["modules"][names.index("backbone")]
    assert backbone.params == model.backbone.count_params() > 0
    assert 0 < backbone.trainable <= backbone.params
    assert all(m.flops > 0 for m in info["modules"] if m.params)  # every module with weights computes
    assert info["total_flops"] == sum(m.flops for m in info["modules"])
    text = format_info(info)
    size = tiny(model_type).data.output_size
    assert f"model {model_type}, 3 classes, input {size}x{size}" in text and "GFLOPs/image" in text


@pytest.mark.slow
def test_backbone_flops_grow_with_the_input_area_and_params_do_not():
    small, large = model_info(tiny("mask_rcnn", 128)), model_info(tiny("mask_rcnn", 256))
    s = next(m for m in small["modules"] if m.name == "backbone")
    b = next(m for m in large["modules"] if m.name == "backbone")
    assert s.params == b.params
    assert b.flops / s.flops == pytest.approx(4.0, rel=0.02)  # convolutions: FLOPs proportional to H x W


def test_command_needs_the_number_of_classes(capsys):
    from hierseg_cli.main import main

    assert main(["model-info", "--config_file", TINY]) != 0
    assert "num_classes" in capsys.readouterr().err


def test_command_prints_the_table(capsys):
    from hierseg_cli.main import main

    assert main(["model-info", "--config_file", TINY, "--num_classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "model mask_rcnn, 3 classes, input 128x128" in out and "backbone" in out and "total" in out
