"""The strict typed-config machinery: YAML files, --params_override in both forms, errors naming keys."""

from __future__ import annotations

import dataclasses

import pytest

from hierseg.config import ConfigError, load, merge, parse_override, save, to_dict
from hierseg.config.experiment import ExperimentConfig


@dataclasses.dataclass
class Inner:
    steps: int = 10  # an int
    lrs: list[float] = dataclasses.field(default_factory=lambda: [0.1, 0.01])  # a list of floats
    mode: str = "a"  # a string


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    flag: bool = False
    maybe: float | None = None


def test_flat_override_form_sets_nested_keys_and_lists():
    cfg = merge(Outer(), parse_override("inner.steps=3,inner.lrs=[1, 2.5],flag=true,maybe=0.5"))
    assert cfg == Outer(Inner(steps=3, lrs=[1.0, 2.5]), flag=True, maybe=0.5)


def test_yaml_and_json_override_forms():
    assert merge(Outer(), parse_override("{inner: {mode: b}}")).inner.mode == "b"
    assert merge(Outer(), parse_override('{"inner": {"steps": 7}}')).inner.steps == 7
    assert merge(Outer(), parse_override("inner:\n  steps: 8\n")).inner.steps == 8


@pytest.mark.parametrize(
    "override, key",
    [
        ("inner.stepz=3", "inner.stepz"),
        ("nope=1", "nope"),
        ("inner.steps=abc", "inner.steps"),
        ("flag=3", "flag"),
        ("inner.lrs=[a]", "inner.lrs[0]"),
    ],
)
def test_unknown_key_or_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        merge(Outer(), parse_override(override))


def test_malformed_flat_override_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("inner.steps")


def test_file_then_overrides_in_order_and_save_round_trip(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("train:\n  total_steps: 5\nmodel:\n  anchor:\n    num_scales: 2\n")
    cfg = load(ExperimentConfig, str(f), ["train.total_steps=6", "{data: {output_size: 256}}"])
    assert (cfg.train.total_steps, cfg.model.anchor.num_scales, cfg.data.output_size) == (6, 2, 256)
    out = tmp_path / "effective.yaml"
    save(cfg, str(out))
    assert load(ExperimentConfig, str(out)) == cfg
    assert to_dict(cfg)["train"]["total_steps"] == 6


def test_error_from_a_file_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  totl_steps: 5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.totl_steps"):
        load(ExperimentConfig, str(f))
