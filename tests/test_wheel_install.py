"""A wheel built from the repository installs into a fresh venv with its configs (issue 11, part 6):
`hierseg train --help` runs, and `--config_file tiny_cpu.yaml` is found from an unrelated folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_has_the_configs(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(
        REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".demo", "__pycache__", "dist")
    )
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("hierseg-*.whl")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HIERSEG_DEBUG")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=600, env=env)
    # Then the dependencies (TensorFlow, ...) come from this environment's site-packages, appended after
    # the fresh venv's own (its .pth files, e.g. an editable hierseg, are not run), so `hierseg` itself
    # can only come from the wheel. (Added after the install: pip never sees, nor touches, this environment.)
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = dict(cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)

    found = subprocess.run(
        [str(py), "-c", "from hierseg.config.shipped import find_config; print(find_config('tiny_cpu.yaml'))"], **run
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(site) and found.stdout.strip().endswith("hierseg/configs/tiny_cpu.yaml")

    help_ = subprocess.run([str(venv / "bin" / "hierseg"), "train", "--help"], **run)
    assert help_.returncode == 0 and "--config_file" in help_.stdout, help_.stderr

    # The shipped config loads by name in a folder without configs/; training then needs data.
    train = subprocess.run(
        [str(venv / "bin" / "hierseg"), "train", "--config_file", "tiny_cpu.yaml", "--model_dir", "m"], **run
    )
    assert train.returncode == 2
    assert (
        train.stderr.strip()
        .splitlines()[-1]
        .startswith("hierseg train: error: model.num_classes is 0 and data.label_map is empty")
    ), train.stderr
    missing = subprocess.run(
        [str(venv / "bin" / "hierseg"), "train", "--config_file", "nope.yaml", "--model_dir", "m"], **run
    )
    assert missing.returncode == 2 and "nope.yaml: config file not found (shipped configs: " in missing.stderr
