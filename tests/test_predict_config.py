"""ensembles.config.PredictConfig: `hierseg predict`, `ensemble` and `submit` load it whole and strictly;
command-line flags override the file; ranges are checked."""

from __future__ import annotations

import argparse

import pytest

from ensembles.config import EnsembleConfig, PredictConfig, SubmissionConfig
from hierseg.config.params import ConfigError, load
from hierseg_cli.main import main

COMMANDS = {
    "predict": ["predict", "--layer0", "no/l0", "--layer1", "no/l1", "--images", "no/imgs", "--out", "no/out"],
    "ensemble": ["ensemble", "--layer0", "no/l0.jsonl", "--layer1", "no/l1.jsonl", "--out", "no/out.jsonl"],
    "submit": ["submit", "--predictions", "no/p.jsonl", "--out", "no/sub.csv"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "override, named",
    [
        ("submision.score_threshold=0.99", "submision"),  # a misspelled section was silently ignored before
        ("ensemble.iou_treshold=0.4", "ensemble.iou_treshold"),
        ("submission.max_per_image=-1", "max_per_image"),
        ("ensemble.min_layer1_score=1.5", "min_layer1_score"),
    ],
)
def test_every_command_refuses_a_bad_key_or_value_naming_it(command, override, named):
    with pytest.raises(ConfigError, match=named):
        main([*COMMANDS[command], "--params_override", override, "--debug"])  # --debug: raise, not exit 2


def test_a_config_file_with_an_unknown_section_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "predict.yaml"
    path.write_text("ensemble:\n  iou_threshold: 0.6\nsubmision:\n  score_threshold: 0.99\n")
    with pytest.raises(ConfigError, match=r"predict\.yaml.*submision"):
        main([*COMMANDS["submit"], "--config_file", str(path), "--debug"])


def test_one_file_configures_all_three_commands(tmp_path):
    path = tmp_path / "predict.yaml"
    path.write_text(
        "ensemble: {iou_threshold: 0.6, mask_source: union, min_layer0_score: 0.1}\n"
        "submission: {score_threshold: 0.2, max_per_image: 300}\n"
        "batch_size: 8\nvisualize_min_score: 0.5\n"
    )
    cfg = load(PredictConfig, str(path), ["ensemble.score_source=max"])
    assert cfg.ensemble == EnsembleConfig(0.6, "union", "max", 0.1, 0.0)
    assert cfg.submission == SubmissionConfig(0.2, 300)
    assert (cfg.batch_size, cfg.visualize_min_score, cfg.apply_exif, cfg.visualize) == (8, 0.5, True, False)


def test_flags_override_the_file_and_the_overrides(tmp_path):
    from hierseg_cli.commands import predict
    from hierseg_cli.ensemble_args import load_predict_config

    path = tmp_path / "predict.yaml"
    path.write_text("submission: {score_threshold: 0.2, max_per_image: 300}\nbatch_size: 8\n")
    p = argparse.ArgumentParser()
    predict.add_arguments(p)
    base = COMMANDS["predict"][1:] + ["--config_file", str(path)]
    cfg = load_predict_config(p.parse_args(base))
    assert (cfg.batch_size, cfg.submission.score_threshold, cfg.submission.max_per_image) == (8, 0.2, 300)
    assert cfg.ensemble.min_layer0_score == cfg.ensemble.min_layer1_score == 0.0
    argv = [
        *base,
        *("--params_override", "submission.max_per_image=100", "--max_per_image", "7", "--batch_size", "2"),
        *("--layer_min_score", "0.05", "--visualize", "--no_exif", "--visualize_min_score", "0.9"),
    ]
    cfg = load_predict_config(p.parse_args(argv))
    assert (cfg.batch_size, cfg.submission.score_threshold, cfg.submission.max_per_image) == (2, 0.2, 7)
    assert cfg.ensemble.min_layer0_score == cfg.ensemble.min_layer1_score == 0.05
    assert (cfg.visualize, cfg.apply_exif, cfg.visualize_min_score) == (True, False, 0.9)
    with pytest.raises(ConfigError, match=r"^--batch_size: 0 is out of range \(must be >= 1\)$"):
        load_predict_config(p.parse_args([*base, "--batch_size", "0"]))
    with pytest.raises(ConfigError, match=r"^--layer_min_score: 2.0 is out of range"):
        load_predict_config(p.parse_args([*base, "--layer_min_score", "2"]))
