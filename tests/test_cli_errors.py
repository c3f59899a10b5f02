"""Every user error of the `hierseg` command is one line without a traceback, with exit status 2 (usage)
or 1 (failed work); Ctrl-C exits 130; --debug / HIERSEG_DEBUG=1 show the traceback (issue 11, part 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hierseg_cli.main import main

REPO = Path(__file__).resolve().parents[1]
OID_DATA = REPO / "tests" / "data" / "oid"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and " WARNING " not in ln and " INFO " not in ln]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return code, lines[0]


@pytest.mark.parametrize(
    "override, message",
    [
        ("/missing.yaml", "--params_override: file /missing.yaml not found"),
        ("[1,", "--params_override: not valid YAML: expected the node content, but found '<stream end>'"),
        ("!!python/object:os.system", "--params_override: not valid YAML: could not determine a constructor"),
        ("train=1,train.total_steps=2", "--params_override: 'train' is given both a value and sub-keys"),
        ("train.checkpoint_every=0", "train.checkpoint_every: 0 is out of range (must be >= 1)"),
        ("train.steps_per_loop=0", "train.steps_per_loop: 0 is out of range (must be >= 1)"),
        ("train.total_steps=-5", "train.total_steps: -5 is out of range (must be >= 1)"),
        ("train.global_batch_size=0", "train.global_batch_size: 0 is out of range (must be >= 1)"),
        ("model.mask_head.max_rois=-1", "model.mask_head.max_rois: -1 is out of range (must be >= 0)"),
        ("train.learning_rate.init_lr=.nan", "train.learning_rate.init_lr: nan is not a finite number"),
        ("train.learning_rate.init_lr=nan", "train.learning_rate.init_lr: expected a number, got 'nan'"),
        ("train.bogus=1", "unknown config key 'train.bogus'"),
    ],
)
def test_train_config_errors_name_the_key(capsys, tmp_path, override, message):
    code, line = run_cli(capsys, "train", "--model_dir", str(tmp_path / "m"), "--params_override", override)
    assert code == 2
    assert line.startswith("hierseg train: error: ") and message in line, line


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--data_dir", "prepared/nope"],
            "--data_dir prepared/nope: no such folder (give a prepared layer folder, e.g. OUT/layer0)",
        ),
        (["--config_file", "/nope/x.yaml"], "/nope/x.yaml: config file not found"),
        ([], "model.num_classes is 0 and data.label_map is empty: give --data_dir (a layer folder written by"),
        (["--strategy", "tpu", "--data_dir", "{layer}"], "--strategy tpu needs --tpu"),
    ],
)
def test_train_usage_errors(capsys, tmp_path, argv, message):
    layer = tmp_path / "layer0"
    layer.mkdir()
    (layer / "label_map.pbtxt").write_text('item {\n  id: 1\n  name: "/m/01g317"\n  display_name: "Person"\n}\n')
    argv = [a.format(layer=layer) for a in argv]
    code, line = run_cli(capsys, "train", "--model_dir", str(tmp_path / "m"), *argv)
    assert code == 2 and message in line, line


def test_data_dir_without_label_map_is_named(capsys, tmp_path):
    code, line = run_cli(capsys, "train", "--model_dir", str(tmp_path / "m"), "--data_dir", str(tmp_path))
    assert code == 2 and f"--data_dir {tmp_path}: no label_map.pbtxt: not a layer folder" in line


def test_export_and_evaluate_without_a_model(capsys, tmp_path):
    code, line = run_cli(capsys, "export", "--model_dir", "/nope", "--export_dir", str(tmp_path / "e"))
    assert (code, line) == (2, "hierseg export: error: --model_dir /nope: no such folder")
    code, line = run_cli(capsys, "evaluate", "--model_dir", str(tmp_path))
    assert code == 2 and "no checkpoint yet" in line
    code, line = run_cli(capsys, "export", "--checkpoint", str(tmp_path / "ckpt-3"), "--export_dir", "x")
    assert code == 2 and f"--checkpoint {tmp_path}/ckpt-3: no such checkpoint" in line


def test_hierarchy_errors(capsys):
    code, line = run_cli(capsys, "hierarchy", "--hierarchy", "/nope.json")
    assert (code, line) == (2, "hierseg hierarchy: error: /nope.json: file not found")
    # The 600-class box hierarchy is 5 levels deep: the default grouping 0;1,2 does not cover it.
    code, line = run_cli(capsys, "hierarchy", "--hierarchy", str(OID_DATA / "bbox_labels_600_hierarchy.json"))
    assert code == 2 and "has depth 4, in no group of [[0], [1, 2]]: give depth groups covering depths 0..4" in line


def test_predict_without_images_or_exports(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "out")
    code, line = run_cli(capsys, "predict", "--layer0", "a", "--layer1", "b", "--images", str(empty), "--out", out)
    assert code == 2 and f"no images found at {empty}" in line
    (empty / "x.jpg").write_bytes(b"")
    code, line = run_cli(
        capsys, "predict", "--layer0", "exports/nope", "--layer1", "b", "--images", str(empty), "--out", out
    )
    assert code == 2 and "exports/nope: not an export directory" in line


def test_submit_negative_max_per_image(capsys, tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text("")
    code, line = run_cli(
        capsys, "submit", "--predictions", str(preds), "--out", str(tmp_path / "s.csv"), "--max_per_image", "-3"
    )
    assert (code, line) == (2, "hierseg submit: error: --max_per_image: -3 is out of range (must be >= 0)")


def test_unexpected_errors_ctrl_c_and_debug(capsys, monkeypatch, tmp_path):
    import hierseg_cli.commands.hierarchy as cmd

    def boom(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cmd, "run", boom)
    code, line = run_cli(capsys, "hierarchy")
    assert code == 1
    assert line == ("hierseg hierarchy: error: unsupported operand (TypeError; rerun with --debug for the traceback)")
    with pytest.raises(TypeError):
        main(["hierarchy", "--debug"])
    monkeypatch.setenv("HIERSEG_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["hierarchy"])
    monkeypatch.delenv("HIERSEG_DEBUG")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "run", interrupted)
    code, line = run_cli(capsys, "hierarchy")
    assert (code, line) == (130, "hierseg hierarchy: interrupted")


def test_a_usage_error_in_a_fresh_process_prints_one_line(tmp_path):
    """Run as a user does: TensorFlow's start-up log lines are silenced, stderr holds one line."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("HIERSEG_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "hierseg_cli.main", "export", "--model_dir", "/nope", "--export_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["hierseg export: error: --model_dir /nope: no such folder"], proc.stderr


def test_every_user_error_name_is_an_exception_class_defined_there():
    """USER_ERRORS matches by (module, qualified name) along the MRO: an entry naming an alias or a
    moved class never matches and silently turns that error into a 'bug' (this happened to
    ensembles.prediction_io.PredictionFormatError, now an alias of hierseg.prediction_file.PredictionFileError)."""
    import importlib

    from hierseg_cli.main import USER_ERRORS

    for (module, qualname), code in USER_ERRORS.items():
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        assert isinstance(cls, type) and issubclass(cls, BaseException), (module, qualname)
        assert (cls.__module__, cls.__qualname__) == (module, qualname), f"{module}.{qualname} is an alias of {cls}"
        assert code in (1, 2)


def test_bad_input_files_exit_codes():
    """A malformed prediction or submission file named by --predictions/--submission is a wrong input (2,
    like a missing one), as is an undecodable mask; an unusable file of the dataset folder (OidFormatError)
    is failed work (1)."""
    from ensembles.prediction_io import PredictionFormatError
    from hierseg.oid.errors import OidFormatError
    from hierseg.oid.mask_codec import MaskCodecError
    from hierseg.prediction_file import PredictionFileError
    from hierseg_cli.main import exit_code_of

    assert exit_code_of(PredictionFileError("p.jsonl:3: bad JSON")) == 2
    assert exit_code_of(PredictionFormatError("p.jsonl:3: bad JSON")) == 2
    assert exit_code_of(FileNotFoundError(2, "No such file", "p.jsonl")) == 2
    assert exit_code_of(OidFormatError("masks.csv:3: bad row")) == 1
    assert exit_code_of(MaskCodecError("bad mask")) == 2  # an undecodable RLE/EncodedMask: hierseg.rle.RleError


def test_submit_with_a_malformed_predictions_file(capsys, tmp_path):
    from ensembles.prediction_io import write_predictions
    from hierseg.detections import Detections

    preds = tmp_path / "p.jsonl"
    write_predictions(str(preds), [Detections.empty("a", 4, 4)])
    with open(preds, "a") as f:
        f.write("{not json\n")
    out = str(tmp_path / "s.csv")
    code, line = run_cli(capsys, "submit", "--predictions", str(preds), "--out", out, "--no_progress")
    assert code == 2 and line.startswith(f"hierseg submit: error: {preds}:2: "), line
    assert not (tmp_path / "s.csv").exists()
