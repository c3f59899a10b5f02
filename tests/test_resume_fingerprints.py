"""Resume only what matches (issue 11, part 3): `hierseg train` records what its checkpoints were trained
from and refuses a rerun with other data or config (--overwrite starts afresh), while a longer schedule
resumes; leftovers of killed runs (``ckpt-N_temp/``, ``EXPORT.tmp-PID/``, ``*.tmp-PID``) are removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tiny_layer import write_tiny_layer

from hierseg.atomic_write import remove_leftovers
from hierseg_cli.main import main

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def train(capsys, layer: Path, model_dir: Path, *overrides: str) -> tuple[int, str]:
    code = main(
        ["train", "--config_file", "tiny_cpu.yaml", "--data_dir", str(layer), "--model_dir", str(model_dir)]
        + ["--strategy", "cpu", "--no_progress", "--params_override"]
        + [",".join(["train.global_batch_size=2,train.steps_per_loop=1,train.checkpoint_every=1", *overrides])]
    )
    return code, capsys.readouterr().err


def test_train_resumes_only_matching_checkpoints(capsys, tmp_path):
    layer = write_tiny_layer(tmp_path / "layer", num_images=4)
    model_dir = tmp_path / "model"
    assert train(capsys, layer, model_dir, "train.total_steps=1")[0] == 0
    # A killed run's checkpoint staging folder and temporary file are removed by the next run.
    (model_dir / "ckpt-7_temp").mkdir()
    (model_dir / "ckpt-7_temp" / "part-00000-of-00001").write_bytes(b"half")
    (model_dir / f"params.yaml.tmp-{dead_pid()}-1").write_text("half")
    assert train(capsys, layer, model_dir, "train.total_steps=2")[0] == 0  # a longer schedule resumes
    assert not (model_dir / "ckpt-7_temp").exists() and not list(model_dir.glob("*.tmp-*"))
    assert (model_dir / "ckpt-2.index").exists()
    code, err = train(capsys, layer, model_dir, "train.total_steps=3", "train.learning_rate.init_lr=0.5")
    assert code == 2
    assert f"hierseg train: error: {model_dir}: written by an earlier hierseg train run with other inputs or " in err
    assert "(differs: config.train.learning_rate.init_lr); give --overwrite to start afresh" in err
    other = write_tiny_layer(tmp_path / "other", num_images=5)
    code, err = train(capsys, other, model_dir, "train.total_steps=3")
    assert code == 2 and "differs: " in err and "files." in err
    code = main(
        ["train", "--config_file", "tiny_cpu.yaml", "--data_dir", str(other), "--model_dir", str(model_dir)]
        + ["--strategy", "cpu", "--no_progress", "--overwrite", "--params_override"]
        + ["train.global_batch_size=2,train.steps_per_loop=1,train.checkpoint_every=1,train.total_steps=1"]
    )
    assert code == 0 and not (model_dir / "ckpt-2.index").exists() and (model_dir / "ckpt-1.index").exists()


def test_remove_leftovers_keeps_live_writers(tmp_path):
    export_tmp = tmp_path / f"export.tmp-{dead_pid()}"
    export_tmp.mkdir()
    (export_tmp / "saved_model.pb").write_bytes(b"x")
    live = tmp_path / f"submission.csv.tmp-{os.getpid()}-1"
    live.write_text("being written")
    dead = tmp_path / f"submission.csv.tmp-{dead_pid()}-1"
    dead.write_text("left behind")
    (tmp_path / "ckpt-3_temp").mkdir()
    removed = remove_leftovers(str(tmp_path))
    assert sorted(removed) == sorted([str(dead), str(export_tmp)])
    assert live.exists() and (tmp_path / "ckpt-3_temp").exists()  # staging folders only with temp_dirs
    assert remove_leftovers(str(tmp_path), temp_dirs=True) == [str(tmp_path / "ckpt-3_temp")]


def test_predict_resumes_only_matching_outputs(tmp_path, capsys):
    from test_predict import MAN, PERSON, TEDDY, TOY, WOMAN, make_fake_export, write_image_folder

    l0 = make_fake_export(str(tmp_path / "l0"), [PERSON, TOY], ["Person", "Toy"], [[0.1, 0.1, 0.5, 0.5]] * 2, [1, 2])
    l1 = make_fake_export(
        str(tmp_path / "l1"), [MAN, WOMAN, TEDDY], ["Man", "Woman", "Teddy bear"], [[0.1, 0.1, 0.5, 0.5]] * 3, [1, 2, 3]
    )
    write_image_folder(tmp_path / "imgs", n=3, broken=False)
    out = tmp_path / "out"
    base = ["predict", "--images", str(tmp_path / "imgs" / "*.jpg"), "--out", str(out), "--no_progress"]

    def predict(*extra: str) -> tuple[int, str]:
        code = main([*base, *extra])
        return code, capsys.readouterr().err

    assert predict("--layer0", l0, "--layer1", l1)[0] == 0
    (out / f"submission.csv.tmp-{dead_pid()}-1").write_text("left by a killed run")
    assert predict("--layer0", l0, "--layer1", l1, "--batch_size", "1")[0] == 0  # resumes
    assert not list(out.glob("*.tmp-*"))
    code, err = predict("--layer0", l0, "--layer1", l1, "--layer_min_score", "0.5")
    assert code == 2
    assert f"hierseg predict: error: {out}: written by an earlier hierseg predict run with other inputs or " in err
    assert "(differs: config.ensemble.min_layer0_score, config.ensemble.min_layer1_score)" in err
    code, err = predict("--layer0", l1, "--layer1", l0)
    assert code == 2 and "differs: inputs.layer0.path, inputs.layer1.path" in err
    # Afresh, the swapped exports are refused by the hierarchy check, naming both flags.
    code, err = predict("--layer0", l1, "--layer1", l0, "--overwrite")
    assert code == 2 and "the exports are given in swapped order?" in err
    assert predict("--layer0", l0, "--layer1", l1, "--layer_min_score", "0.5", "--overwrite")[0] == 0
