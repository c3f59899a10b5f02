"""The README and --help tell the truth (issue 11, part 6): the oid-eval step scores a file a README command
writes, TensorBoard is installed, no flag shows a contradictory "(default: None)", and train says what
running without --config_file means."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hierseg_cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    """The `hierseg ...` lines of the README's bash blocks, split (without the program name)."""
    lines = [
        ln.split("#", 1)[0].strip() for b in re.findall(r"```bash\n(.*?)```", README, re.S) for ln in b.splitlines()
    ]
    return [shlex.split(ln)[1:] for ln in lines if ln.startswith("hierseg ")]


def test_oid_eval_scores_a_prediction_of_the_validation_images():
    predict_outs = {c[c.index("--out") + 1]: c[c.index("--images") + 1] for c in readme_commands() if c[0] == "predict"}
    from hierseg_cli.workflows import demo

    demo_text = Path(demo.__file__).read_text()
    for c in readme_commands():
        if c[0] == "oid-eval":
            folder = c[c.index("--submission") + 1].rsplit("/", 1)[0]
            if folder.startswith(".demo/"):  # written by `make demo` (its predict over the validation images)
                assert f'"{folder.split("/", 1)[1]}"' in demo_text, folder
                continue
            assert folder in predict_outs, f"no README command writes {folder}/submission.csv"
            assert predict_outs[folder].endswith("/validation")


def test_tensorboard_is_a_dependency():
    pytest.importorskip("tensorboard")
    assert re.search(r'"tensorboard[>=<]', (REPO / "setup.py").read_text())
    assert "TensorBoard (installed with hierseg)" in README


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_no_contradictory_defaults(name):
    text = build_parser(name).format_help()
    assert "(default: None)" not in text and "(default: [])" not in text and "(default: False)" not in text
    assert not re.search(r"default: [^)]*\)\s*\(default:", text.replace("\n", " "))


def test_train_help_says_what_no_config_file_means():
    text = " ".join(build_parser("train").format_help().split())
    assert "default: the built-in defaults, i.e. Mask R-CNN ResNet-50 FPN at 1024 px on the Cloud TPU v3-8" in text
    assert "not meant for a CPU" in text
