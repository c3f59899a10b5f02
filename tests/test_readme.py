"""The README cannot drift from the code: every `hierseg` command it shows parses with today's flags,
and it opens with exactly the two set-up commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hierseg_cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    cmds = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("hierseg "):
                cmds.append(shlex.split(line)[1:])
    return cmds


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    assert [ln.split("#")[0].strip() for ln in first_block.strip().splitlines()] == ["make demo", "make test"]


def test_readme_shows_every_stage():
    shown = {c[0] for c in readme_commands()}
    assert {
        "hierarchy",
        "prepare",
        "train",
        "evaluate",
        "export",
        "predict",
        "validate-submission",
        "oid-eval",
    } <= shown


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_command_parses(argv):
    assert argv[0] in COMMANDS
    build_parser(argv[0]).parse_args(argv[1:])


def test_readme_names_shipped_config_files():
    for path in re.findall(r"(configs/[\w./-]+\.yaml)", README):
        assert (REPO / path).is_file(), path
