"""The experiment configs shipped with hierseg, found by name from any folder.

The repository keeps them in ``configs/`` (``tiny_cpu.yaml``, ``layer0_maskrcnn_r50_fpn.yaml``,
``tpu/v3-32.yaml``, ...); a built wheel carries a copy as ``hierseg/configs/`` (setup.py's build step
copies the folder in). ``--config_file tiny_cpu.yaml`` therefore works in any working directory: a
``--config_file`` that is not an existing path is looked up here (a leading ``configs/`` is ignored).
"""

from __future__ import annotations

from pathlib import Path

from hierseg.config.params import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "configs"  # installed: hierseg/configs
REPO_DIR = Path(__file__).resolve().parents[2] / "configs"  # a source checkout (editable install)


def config_dirs() -> list[Path]:
    """The folders holding shipped configs, installed copy first."""
    return [d for d in (PACKAGE_DIR, REPO_DIR) if d.is_dir()]


def shipped_names() -> list[str]:
    """Every shipped config, as the name to give (``tiny_cpu.yaml``, ``tpu/v3-8.yaml``)."""
    names = {str(p.relative_to(d)) for d in config_dirs() for p in d.rglob("*.yaml")}
    return sorted(names)


def find_config(name: str) -> str:
    """The path of a shipped config by name (``tiny_cpu.yaml``, ``configs/tpu/v3-8.yaml``).

    Raises:
      ConfigError: naming the shipped configs when there is no such one.
    """
    rel = name[len("configs/") :] if name.startswith("configs/") else name
    for d in config_dirs():
        if (d / rel).is_file():
            return str(d / rel)
    raise ConfigError(f"{name}: config file not found (shipped configs: {', '.join(shipped_names()) or 'none'})")


def resolve_config_file(path: str) -> str:
    """``path`` when it exists (or is a URL), else the shipped config of that name."""
    if "://" in path or Path(path).exists() or Path(path).is_absolute():
        return path
    return find_config(path)
