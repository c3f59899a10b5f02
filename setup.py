"""Installs hierseg (engine), data_prep, ensembles and the `hierseg` command."""

import importlib.metadata
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def tensorflow_requirement() -> str:
    """tensorflow, tensorflow-cpu and tensorflow-tpu all provide the `tensorflow` module: require the
    one already installed (so pip never pulls a second copy), else plain tensorflow. `make` installs
    with --no-build-isolation so this sees the target environment."""
    for dist in ("tensorflow-cpu", "tensorflow-tpu", "tensorflow"):
        try:
            importlib.metadata.version(dist)
            return f"{dist}>=2.16"
        except importlib.metadata.PackageNotFoundError:
            pass
    return "tensorflow>=2.16"


class BuildWithConfigs(build_py):
    """Copies the repository's configs/ (YAML, symlinks resolved) into the built package as hierseg/configs/,
    so an installed hierseg finds `--config_file tiny_cpu.yaml` from any folder (hierseg.config.shipped)."""

    def run(self) -> None:
        super().run()
        source = os.path.join(HERE, "configs")
        target = os.path.join(self.build_lib, "hierseg", "configs")
        for folder, _, files in os.walk(source):
            for name in files:
                if name.endswith(".yaml"):
                    rel = os.path.relpath(os.path.join(folder, name), source)
                    os.makedirs(os.path.dirname(os.path.join(target, rel)), exist_ok=True)
                    shutil.copyfile(os.path.join(folder, name), os.path.join(target, rel))  # follows symlinks


setup(
    name="hierseg",
    version="0.1.0",
    description="Hierarchical, large-vocabulary instance segmentation for the Open Images challenge",
    python_requires=">=3.10",
    packages=find_packages(include=["hierseg*", "data_prep*", "ensembles*", "hierseg_cli*"]),
    package_data={"hierseg": ["resources/*.json", "resources/*.csv"]},
    cmdclass={"build_py": BuildWithConfigs},
    install_requires=[
        tensorflow_requirement(),
        "pycocotools>=2.0.7",
        "pandas>=2.0",
        "numpy>=1.24",
        "pyarrow>=14",
        "google-cloud-storage>=2.10",
        "absl-py>=1.4",
        "scikit-learn>=1.3",
        "pillow>=10",
        "tqdm>=4.65",
        "pyyaml>=6",
        "matplotlib>=3.7",
        "tensorboard>=2.16",
    ],
    extras_require={
        "beam": ["apache-beam>=2.55"],
        "test": ["pytest>=7", "pytest-timeout>=2", "gcp-storage-emulator>=2024.1", "ruff>=0.5", "apache-beam>=2.55"],
    },
    entry_points={"console_scripts": ["hierseg=hierseg_cli.main:main"]},
)
